import Foundation

/// An `if` condition over dotted paths (`body.data.object.amount`, `headers.x-github-event`, `event.type`).
public indirect enum Condition: Sendable, Equatable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case compare(path: String, op: Operator, operand: TemplateValue)

    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, `in`, nin, gt, gte, lt, lte, exists, regex
    }

    /// What a condition says about an event: it holds, it does not, or unknown when a `regex` could
    /// not look at all of its value (longer than `RegexBound.maxSubject`, or the event's `RegexBudget`
    /// ran out). Unknown is not false: under `not` a false turns into a pass, so a block-list would
    /// let through exactly the values it could not read.
    public enum Verdict: Sendable, Equatable {
        case holds
        case doesNotHold
        /// `path` names the value that could not be evaluated (never the value itself).
        case unknown(path: String)
    }

    /// Evaluates against a context of plain values (dictionaries, arrays, strings, numbers, bools).
    /// An unknown anywhere makes the whole condition unknown, whatever `not`, `or` or `and` around it
    /// would make of a true or false: the caller fails closed (the automation does not run). So every
    /// part is evaluated, none skipped. `regex` comparisons draw on `budget`: pass one budget for
    /// every condition of an event, so one event's regex work is bounded in total.
    public func decide(_ context: [String: Any], budget: RegexBudget = RegexBudget()) -> Verdict {
        switch self {
        case .all(let conditions), .any(let conditions):
            var verdicts: [Bool] = []
            var unknown: Verdict?
            for condition in conditions {
                switch condition.decide(context, budget: budget) {
                case .holds: verdicts.append(true)
                case .doesNotHold: verdicts.append(false)
                case .unknown(let path): unknown = unknown ?? .unknown(path: path)
                }
            }
            if let unknown { return unknown }
            if case .all = self { return verdicts.allSatisfy { $0 } ? .holds : .doesNotHold }
            return verdicts.contains(true) ? .holds : .doesNotHold
        case .not(let condition):
            switch condition.decide(context, budget: budget) {
            case .holds: return .doesNotHold
            case .doesNotHold: return .holds
            case .unknown(let path): return .unknown(path: path)
            }
        case .compare(let path, let op, let operand):
            let value = Condition.lookup(path, in: context)
            if op == .regex { return Condition.regex(value, operand, path: path, budget) }
            return Condition.apply(op, value, operand) ? .holds : .doesNotHold
        }
    }

    /// Whether the condition holds; unknown counts as not holding. Automations use `decide`, which
    /// tells the two apart.
    public func evaluate(_ context: [String: Any], budget: RegexBudget = RegexBudget()) -> Bool {
        decide(context, budget: budget) == .holds
    }

    /// Follows a dotted path; numeric segments index arrays.
    public static func lookup(_ path: String, in context: [String: Any]) -> Any? {
        var current: Any? = context
        for segment in path.split(separator: ".", omittingEmptySubsequences: false) {
            if let object = current as? [String: Any] {
                current = object[String(segment)]
            } else if let array = current as? [Any], let index = Int(segment), array.indices.contains(index) {
                current = array[index]
            } else {
                return nil
            }
        }
        if current is NSNull { return nil }
        return current
    }

    /// A `regex` comparison: unknown unless the whole value was searched within the budget.
    private static func regex(_ value: Any?, _ operand: TemplateValue, path: String, _ budget: RegexBudget) -> Verdict {
        guard case .string(let pattern) = operand, let expression = RegexBound.compiled(pattern) else { return .doesNotHold }
        // Absent: there is no text to match. Present but a list or an object: a sender could wrap the
        // text a block-list looks for (`["evil"]`), so it is unknown, never "does not match".
        guard let value, !(value is NSNull) else { return .doesNotHold }
        guard let text = string(value) else { return .unknown(path: path) }
        // Counted no further than the cap: the value may be megabytes long.
        let capped = text.utf8.count > RegexBound.maxSubject ? text.index(text.startIndex, offsetBy: RegexBound.maxSubject, limitedBy: text.endIndex) : nil
        if let capped, capped != text.endIndex { return .unknown(path: path) }
        if budget.matches(expression, text) { return .holds }
        // No match, but perhaps only because the time ran out (during this match or before it).
        return budget.isSpent ? .unknown(path: path) : .doesNotHold
    }

    private static func apply(_ op: Operator, _ value: Any?, _ operand: TemplateValue) -> Bool {
        switch op {
        case .exists:
            let wanted: Bool = if case .bool(let flag) = operand { flag } else { true }
            return (value != nil) == wanted
        case .eq: return equal(value, operand)
        case .ne: return !equal(value, operand)
        case .in:
            guard case .array(let options) = operand else { return false }
            return options.contains { equal(value, $0) }
        case .nin:
            guard case .array(let options) = operand else { return true }
            return !options.contains { equal(value, $0) }
        case .gt, .gte, .lt, .lte:
            guard let left = number(value), case .number(let right) = operand else { return false }
            switch op {
            case .gt: return left > right
            case .gte: return left >= right
            case .lt: return left < right
            default: return left <= right
            }
        case .regex:
            return false  // `regex(_:_:path:_:)` decides these.
        }
    }

    private static func equal(_ value: Any?, _ operand: TemplateValue) -> Bool {
        switch operand {
        case .null: return value == nil
        case .bool(let flag): return (value as? Bool) == flag && !(value is String)
        case .number(let number): return self.number(value) == number
        case .string(let text): return value.flatMap(string) == text
        case .array, .object: return false
        }
    }

    static func number(_ value: Any?) -> Double? {
        switch value {
        case let number as NSNumber where type(of: number) != booleanType: number.doubleValue
        case let int as Int: Double(int)
        case let double as Double: double
        case let text as String: Double(text)
        default: nil
        }
    }

    static func string(_ value: Any) -> String? {
        switch value {
        case let text as String: text
        case let number as NSNumber where type(of: number) != booleanType: number.stringValue
        default: nil
        }
    }

    private static let booleanType = type(of: NSNumber(value: true))
}
