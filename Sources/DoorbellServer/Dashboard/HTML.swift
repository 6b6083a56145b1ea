import DoorbellCore
import Foundation
import Hummingbird

/// A piece of HTML. Interpolating a `String` (or a number) escapes it; only another `HTML` goes in
/// as markup. So every value that came from a webhook — headers, bodies, errors — is shown as text
/// unless a view deliberately wraps it, and none does.
struct HTML: Sendable, ExpressibleByStringInterpolation {
    let text: String

    init(unsafe text: String) { self.text = text }
    init(stringLiteral value: String) { self.text = value }
    init(stringInterpolation: StringInterpolation) { self.text = stringInterpolation.text }

    struct StringInterpolation: StringInterpolationProtocol {
        var text = ""
        init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        mutating func appendInterpolation(_ html: HTML) { text += html.text }
        mutating func appendInterpolation(_ list: [HTML]) { for item in list { text += item.text } }
    }

    /// The one escaping function: the five characters that matter in text and in quoted attributes.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    static func + (lhs: HTML, rhs: HTML) -> HTML { HTML(unsafe: lhs.text + rhs.text) }
    static let empty = HTML(unsafe: "")

    /// `when` ? content : nothing.
    static func when(_ condition: Bool, _ content: @autoclosure () -> HTML) -> HTML { condition ? content() : .empty }
}

/// Small helpers the views share.
enum Format {
    static func time(_ date: Date) -> String { Timestamp.iso8601(date) }

    /// 50000 → "50,000".
    static func count(_ value: Int) -> String {
        let digits = Array(String(value.magnitude))
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped += "," }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// "3 min ago", for the overview.
    static func ago(_ date: Date, now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        switch seconds {
        case ..<60: return "\(seconds) s ago"
        case ..<3600: return "\(seconds / 60) min ago"
        case ..<86400: return "\(seconds / 3600) h ago"
        default: return "\(seconds / 86400) d ago"
        }
    }

    /// A body as readable text: pretty-printed JSON when it is JSON, the text when it is UTF-8,
    /// otherwise a note (never the raw bytes into the page).
    static func body(_ bytes: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]) {
            return String(decoding: pretty, as: UTF8.self)
        }
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return "(\(bytes.count) bytes of binary data)"
    }

    /// At most `limit` characters, with a mark when cut.
    static func excerpt(_ text: String, _ limit: Int = 400) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + " …"
    }

    /// A query string from name/value pairs (nil values left out), percent-encoded.
    static func query(_ pairs: [(String, String?)]) -> String {
        let parts = pairs.compactMap { name, value -> String? in
            guard let value, !value.isEmpty else { return nil }
            return "\(name)=\(PercentEncoding.encode(value))"
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}
