import Foundation

/// A URL as errors, logs, the API and the CLI show it. Many URLs are secrets themselves (a Slack or
/// Discord webhook URL, `?api_key=…`, `user:password@`), so only the parts that say where a request
/// went are kept:
/// - scheme, host and port;
/// - the first path segment, when it is at most 24 characters (a longer one may be a token, as in
///   `/bot<token>/…`); every further segment is replaced by one `…`;
/// - the names of query parameters, each value replaced by `…`;
/// - userinfo becomes `…@`; the fragment is dropped.
///
/// `https://user:pw@hooks.slack.com/services/T0/B0/XXX?token=abc#x` → `https://…@hooks.slack.com/services/…?token=…`
/// Text that is not `scheme://…` is shown as `…` (nothing in it is known to be safe).
public struct RedactedURL: CustomStringConvertible, Sendable {
    public let description: String

    public init(_ url: String) {
        description = Self.redact(url)
    }

    static let maxFirstSegment = 24

    static func redact(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "…" }
        let scheme = url[..<schemeEnd.lowerBound]
        guard !scheme.isEmpty, scheme.count <= 16, scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else { return "…" }
        var rest = url[schemeEnd.upperBound...]
        // The fragment never reaches a server; nothing in it is needed to say where a request went.
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var result = "\(scheme)://"
        if let at = authority.lastIndex(of: "@") {
            result += "…@"
            authority = authority[authority.index(after: at)...]
        }
        result += String(authority.filter { !$0.isWhitespace })
        rest = rest[authorityEnd...]
        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let path = rest[..<queryStart]
        if !path.isEmpty {
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            if let first = segments.first {
                result += "/" + (first.count <= maxFirstSegment ? String(first) : "…")
                if segments.count > 1 { result += "/…" }
            }
        }
        if queryStart < rest.endIndex {
            let query = rest[rest.index(after: queryStart)...]
            if !query.isEmpty {
                let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
                    guard let equals = parameter.firstIndex(of: "="), parameter.distance(from: parameter.startIndex, to: equals) <= maxFirstSegment else { return "…" }
                    return String(parameter[..<equals]) + "=…"
                }
                result += "?" + parameters.joined(separator: "&")
            }
        }
        return result
    }
}

extension RedactedURL {
    /// The parts of `url` that redaction hides (userinfo, path segments, query values), raw and
    /// percent-decoded, at least 6 characters long: a server's answer that echoes the request URL
    /// (`"path": "/orders?api_key=…"`) can have them taken out before it is quoted in an error.
    public static func hiddenParts(of url: String) -> [String] {
        guard let schemeEnd = url.range(of: "://") else { return url.count >= 6 ? [url] : [] }
        var rest = url[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var parts: [Substring] = []
        if let at = rest[..<authorityEnd].lastIndex(of: "@") {
            parts += rest[..<at].split(separator: ":")
        }
        let after = rest[authorityEnd...]
        let queryStart = after.firstIndex(of: "?") ?? after.endIndex
        let segments = after[..<queryStart].split(separator: "/")
        parts += segments.enumerated().filter { $0.offset > 0 || $0.element.count > maxFirstSegment }.map(\.element)
        if queryStart < after.endIndex {
            for parameter in after[after.index(after: queryStart)...].split(separator: "&") {
                if let equals = parameter.firstIndex(of: "=") { parts.append(parameter[parameter.index(after: equals)...]) } else { parts.append(parameter) }
            }
        }
        var result: [String] = []
        for part in parts where part.count >= 6 {
            result.append(String(part))
            if let decoded = part.removingPercentEncoding, decoded != part { result.append(decoded) }
        }
        return result.sorted { $0.count > $1.count }
    }
}

extension String {
    /// The text with every occurrence of `parts` replaced by `…`.
    public func hiding(_ parts: [String]) -> String {
        parts.reduce(self) { text, part in part.isEmpty ? text : text.replacingOccurrences(of: part, with: "…") }
    }

    /// Every `scheme://…` URL inside the text, redacted as `RedactedURL` shows it: for error texts
    /// that quote a URL (a library's error, a server's reply).
    public var redactingURLs: String {
        guard contains("://") else { return self }
        var result = ""
        var rest = self[...]
        while let marker = rest.range(of: "://") {
            // Back up over the scheme's letters.
            var start = marker.lowerBound
            while start > rest.startIndex {
                let previous = rest.index(before: start)
                let character = rest[previous]
                guard character.isASCII, character.isLetter || character.isNumber || "+-.".contains(character) else { break }
                start = previous
            }
            let end = rest[marker.upperBound...].firstIndex { $0.isWhitespace || "'\"<>`".contains($0) } ?? rest.endIndex
            result += String(rest[..<start])
            result += start == marker.lowerBound ? "://…" : RedactedURL(String(rest[start..<end])).description
            rest = rest[end...]
        }
        return result + rest
    }
}
