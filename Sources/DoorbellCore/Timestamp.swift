import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// ISO 8601 UTC with milliseconds (`2026-11-29T17:29:00.123Z`), by hand: Foundation's
/// `ISO8601DateFormatter` builds an ICU formatter each time and was a sixth of a delivery's CPU.
public enum Timestamp {
    /// Reads an ISO 8601 time, with or without fractional seconds (what `iso8601` writes, and what
    /// people type into `--since`/`?since=`). Not a hot path.
    public static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    /// Milliseconds since 1970, clamped to ±(year 292,000,000) instead of trapping: `Int64(_:)`
    /// of a non-finite or huge `Double` kills the process, and dates can come from hostile input.
    public static func saturatingMillis(_ date: Date, rounding rule: FloatingPointRoundingRule = .toNearestOrAwayFromZero) -> Int64 {
        let millis = (date.timeIntervalSince1970 * 1000).rounded(rule)
        guard !millis.isNaN else { return 0 }
        let limit = 9.2e18
        return Int64(min(max(millis, -limit), limit))
    }

    public static func iso8601(_ date: Date) -> String {
        let totalMillis = saturatingMillis(date, rounding: .down)
        var seconds = time_t(totalMillis / 1000)
        var millis = Int(totalMillis % 1000)
        if millis < 0 {
            millis += 1000
            seconds -= 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}
