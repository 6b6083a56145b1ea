import Foundation

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
