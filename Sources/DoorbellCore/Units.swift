import Foundation

/// Parsing of the config's human units: sizes (`1MiB`, `512KB`) and durations (`5s`, `2h`).
public enum Units {
    /// Bytes in `text`: a plain number, or a number with B, KB, MB, GB (1000s) or KiB, MiB, GiB (1024s).
    public static func parseSize(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, let number = Double(digits), number >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let factor: Double
        switch unit {
        case "", "b": factor = 1
        case "k", "kb": factor = 1_000
        case "m", "mb": factor = 1_000_000
        case "g", "gb": factor = 1_000_000_000
        case "kib": factor = 1_024
        case "mib": factor = 1_048_576
        case "gib": factor = 1_073_741_824
        default: return nil
        }
        let bytes = number * factor
        guard bytes <= Double(Int.max / 2) else { return nil }
        return Int(bytes)
    }

    /// The longest duration anything accepts: 100 years. `Double` reads "inf" and "1e300", and a
    /// date that far away traps when it is turned into milliseconds, so hostile or mistyped values
    /// stop here.
    public static let maxDuration: Double = 100 * 365 * 86400

    /// Seconds in `text`: a number with ms, s, m, h or d, or several run together (`1h30m`).
    /// A bare number is seconds. Nil for anything negative, not finite or over `maxDuration`.
    public static func parseDuration(_ text: String) -> Double? {
        guard let seconds = parseUnboundedDuration(text), seconds.isFinite, seconds <= maxDuration else { return nil }
        return seconds
    }

    private static func parseUnboundedDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !trimmed.isEmpty else { return nil }
        if let plain = Double(trimmed) { return plain >= 0 ? plain : nil }
        var total = 0.0
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let number = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "ms": total += number / 1000
            case "s": total += number
            case "m": total += number * 60
            case "h": total += number * 3600
            case "d": total += number * 86400
            default: return nil
            }
        }
        return total
    }
}
