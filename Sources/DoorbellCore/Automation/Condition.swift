import Foundation
import Synchronization

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
    public func evaluate(_ context: [String: Any]) -> Bool {
        switch self {
        case .all(let conditions): return conditions.allSatisfy { $0.evaluate(context) }
        case .any(let conditions): return conditions.contains { $0.evaluate(context) }
        case .not(let condition): return !condition.evaluate(context)
        case .compare(let path, let op, let operand):
            let value = Condition.lookup(path, in: context)
            return Condition.apply(op, value, operand)
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
            guard let text = value.flatMap(string), case .string(let pattern) = operand,
                let expression = RegexBound.compiled(pattern)
            else { return false }
            return RegexBound.matches(expression, text)
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

/// Keeps `regex` conditions from stalling ingest: patterns are compiled once, a subject is cut to
/// its first `maxSubject` characters, and a match that is still backtracking after `timeLimit` is
/// stopped and counts as no match. `CatastrophicPattern` refuses the usual culprits at load.
public enum RegexBound {
    /// Characters of a value a regex looks at; a body field is hostile and may be megabytes long.
    public static let maxSubject = 4096
    /// Seconds one match may run before it is abandoned (as no match).
    public static let timeLimit = 0.05

    /// Compiled expressions by pattern: the same few patterns run for every event. Bounded, though
    /// patterns only ever come from the config.
    private static let cache = Mutex<[String: NSRegularExpression]>([:])

    static func compiled(_ pattern: String) -> NSRegularExpression? {
        if let expression = cache.withLock({ $0[pattern] }) { return expression }
        guard let expression = try? NSRegularExpression(pattern: pattern) else { return nil }
        cache.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[pattern] = expression
        }
        return expression
    }

    /// Whether `expression` matches anywhere in the first `maxSubject` characters of `text`, within
    /// `timeLimit` (ICU calls back periodically while it backtracks, so the match can be stopped).
    public static func matches(_ expression: NSRegularExpression, _ text: String, timeLimit: Double = timeLimit) -> Bool {
        let subject = text.count > maxSubject ? String(text.prefix(maxSubject)) : text
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeLimit * 1e9)
        var found = false
        expression.enumerateMatches(in: subject, options: [.reportProgress], range: NSRange(subject.startIndex..., in: subject)) { result, _, stop in
            if result != nil {
                found = true
                stop.pointee = true
            } else if DispatchTime.now().uptimeNanoseconds > deadline {
                stop.pointee = true
            }
        }
        return found
    }
}

/// Finds regex shapes whose matching time explodes on a hostile subject (catastrophic
/// backtracking), so `doorbell check` refuses them instead of ingest stalling on them: a quantified
/// group that holds another variable quantifier (`(a+)+`, `(a*)*`, `(\w+\s?)*`), a quantified
/// alternation whose branches can start alike (`(a|a)*`, `(a|ab)+`, `(\w|\d)*`), and
/// backreferences (`(a*)\1`). Atomic groups `(?>…)` and possessive quantifiers (`++`, `*+`) do not
/// backtrack and are allowed.
public enum CatastrophicPattern {
    /// Why `pattern` is refused, or nil when it looks safe.
    public static func problem(_ pattern: String) -> String? {
        var scanner = Scanner(Array(pattern))
        return scanner.run()
    }

    private struct Group {
        var atomic = false
        /// A variable quantifier (`*`, `+`, `?`, `{n,m}`) somewhere inside, not made safe by being atomic.
        var hasVariable = false
        /// The first atom of each alternative: a literal character, or nil for anything else.
        var firstAtoms: [Character?] = []
        var atAlternativeStart = true
    }

    private struct Scanner {
        let chars: [Character]
        var index = 0
        var stack: [Group] = [Group()]
        init(_ chars: [Character]) { self.chars = chars }

        mutating func run() -> String? {
            while index < chars.count {
                let char = chars[index]
                switch char {
                case "\\":
                    guard index + 1 < chars.count else { return nil }
                    let next = chars[index + 1]
                    if next.isNumber, next != "0" { return "backreferences (\\\(next)) can take exponential time; refused" }
                    if next == "k", index + 2 < chars.count, chars[index + 2] == "<" { return "named backreferences (\\k<…>) can take exponential time; refused" }
                    if next == "Q" {
                        // \Q…\E quotes literally.
                        noteAtom(index + 2 < chars.count ? chars[index + 2] : nil)
                        var end = index + 2
                        while end + 1 < chars.count, !(chars[end] == "\\" && chars[end + 1] == "E") { end += 1 }
                        index = end + 2
                        continue
                    }
                    noteAtom(nil)
                    index += 2
                    quantifierAfterAtom()
                case "[":
                    noteAtom(nil)
                    skipClass()
                    quantifierAfterAtom()
                case "(":
                    noteAtom(nil)
                    index += 1
                    var group = Group()
                    if index < chars.count, chars[index] == "?" {
                        // (?:  (?>  (?=  (?!  (?<=  (?<!  (?<name>  (?i:  or a bare flag setting (?i) / comment (?#…)
                        let rest = String(chars[index...].prefix(3))
                        if rest.hasPrefix("?>") { group.atomic = true }
                        if rest.hasPrefix("?#") || !(rest.hasPrefix("?:") || rest.hasPrefix("?>") || rest.hasPrefix("?=") || rest.hasPrefix("?!") || rest.hasPrefix("?<")) {
                            // Flags or a comment: up to ':' opens a group, up to ')' is no group at all.
                            while index < chars.count, chars[index] != ":", chars[index] != ")" { index += 1 }
                            if index < chars.count, chars[index] == ")" {
                                index += 1
                                continue
                            }
                            index += 1
                        } else if rest.hasPrefix("?<=") || rest.hasPrefix("?<!") {
                            index += 3
                        } else if rest.hasPrefix("?<") {
                            while index < chars.count, chars[index] != ">" { index += 1 }
                            index += 1
                        } else {
                            index += 2
                        }
                    }
                    stack.append(group)
                case ")":
                    guard stack.count > 1 else { return nil }
                    let closed = stack.removeLast()
                    index += 1
                    let quantifier = readQuantifier()
                    if let quantifier, quantifier.unbounded, !quantifier.possessive, !closed.atomic {
                        if closed.hasVariable {
                            return "a repeated group that holds another repetition (like (a+)+) can take exponential time; rewrite it, or make it atomic (?>…) or possessive (…)++"
                        }
                        let atoms = closed.firstAtoms
                        if atoms.count > 1, atoms.contains(where: { $0 == nil }) || Set(atoms.compactMap { $0 }).count < atoms.count {
                            return "a repeated alternation whose branches can start alike (like (a|ab)*) can take exponential time; rewrite it, or make it atomic (?>…)"
                        }
                    }
                    if !closed.atomic, closed.hasVariable || quantifier?.variable == true {
                        stack[stack.count - 1].hasVariable = true
                    }
                case "|":
                    stack[stack.count - 1].atAlternativeStart = true
                    index += 1
                default:
                    noteAtom("^$.".contains(char) ? nil : char)
                    index += 1
                    quantifierAfterAtom()
                }
            }
            return nil
        }

        /// Records the first atom of the current alternative.
        mutating func noteAtom(_ literal: Character?) {
            if stack[stack.count - 1].atAlternativeStart {
                stack[stack.count - 1].firstAtoms.append(literal)
                stack[stack.count - 1].atAlternativeStart = false
            }
        }

        /// Notes a variable quantifier on the atom just read.
        mutating func quantifierAfterAtom() {
            if let quantifier = readQuantifier(), quantifier.variable, !quantifier.possessive {
                stack[stack.count - 1].hasVariable = true
            }
        }

        struct Quantifier {
            var variable: Bool
            var unbounded: Bool
            var possessive: Bool
        }

        /// Reads `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` and a lazy `?` or possessive `+` after it.
        mutating func readQuantifier() -> Quantifier? {
            guard index < chars.count else { return nil }
            var quantifier: Quantifier
            switch chars[index] {
            case "*", "+":
                quantifier = Quantifier(variable: true, unbounded: true, possessive: false)
                index += 1
            case "?":
                quantifier = Quantifier(variable: true, unbounded: false, possessive: false)
                index += 1
            case "{":
                guard let close = chars[index...].firstIndex(of: "}") else { return nil }
                let inside = String(chars[(index + 1)..<close])
                let parts = inside.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count <= 2, let low = Int(parts[0]) else { return nil }
                let high = parts.count == 2 ? Int(parts[1]) : low
                quantifier = Quantifier(variable: high != low, unbounded: high == nil || high! > 16, possessive: false)
                index = close + 1
            default:
                return nil
            }
            if index < chars.count, chars[index] == "+" {
                quantifier.possessive = true
                index += 1
            } else if index < chars.count, chars[index] == "?" {
                index += 1
            }
            return quantifier
        }

        /// Skips a character class, nested classes included.
        mutating func skipClass() {
            var depth = 0
            while index < chars.count {
                switch chars[index] {
                case "\\": index += 1
                case "[": depth += 1
                case "]":
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return
                    }
                default: break
                }
                index += 1
            }
        }
    }
}
