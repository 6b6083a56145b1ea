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

    /// Evaluates against a context of plain values (dictionaries, arrays, strings, numbers, bools).
    /// `regex` comparisons draw on `budget`: pass one budget for every condition of an event, so
    /// one event's regex work is bounded in total, however many conditions it meets.
    public func evaluate(_ context: [String: Any], budget: RegexBudget = RegexBudget()) -> Bool {
        switch self {
        case .all(let conditions): return conditions.allSatisfy { $0.evaluate(context, budget: budget) }
        case .any(let conditions): return conditions.contains { $0.evaluate(context, budget: budget) }
        case .not(let condition): return !condition.evaluate(context, budget: budget)
        case .compare(let path, let op, let operand):
            let value = Condition.lookup(path, in: context)
            return Condition.apply(op, value, operand, budget)
        }
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

    private static func apply(_ op: Operator, _ value: Any?, _ operand: TemplateValue, _ budget: RegexBudget) -> Bool {
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
            guard let text = value.flatMap(string), case .string(let pattern) = operand,
                let expression = RegexBound.compiled(pattern)
            else { return false }
            return budget.matches(expression, text)
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
