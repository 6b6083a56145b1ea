import DoorbellCore
import Foundation
import Mustache
import Synchronization

/// Mustache rendering for step inputs. Values in headers, JSON and argv are rendered as plain text
/// (no HTML escaping); `file` templates ending in .html escape HTML; values in `http` and `chat` URLs
/// are percent-encoded (`renderURL`). A triple mustache `{{{…}}}` (or `{{& …}}`) inserts a value as
/// it is, whatever the escaping.
public enum Templates {
    public struct RenderError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parsed templates by source text: the same few templates render for every run, and parsing
    /// was a measurable part of each step. Bounded, so templates built from data cannot grow it.
    private static let parsed = Mutex<[String: MustacheTemplate]>([:])

    /// Renders `text` as a template over `context`; a malformed template is a `RenderError`.
    public static func render(_ text: String, _ context: [String: Any], html: Bool = false) throws -> String {
        try render(text, context, contentType: html ? "HTML" : "TEXT")
    }

    /// Renders a URL template: every `{{value}}` is percent-encoded as one URL component (see
    /// `URLComponentEscape`), so a webhook's `../admin?x=` cannot leave its path segment or add query
    /// parameters. `{{{value}}}` inserts the value unencoded, for a value that is a whole URL or path.
    public static func renderURL(_ text: String, _ context: [String: Any]) throws -> String {
        _ = registered
        return try render(text, context, contentType: URLComponentEscape.name)
    }

    /// Registers the URL content type with swift-mustache once, before the first URL template is parsed.
    private static let registered: Bool = {
        MustacheContentTypes.register(URLComponentEscape(), named: URLComponentEscape.name)
        return true
    }()

    private static func render(_ text: String, _ context: [String: Any], contentType: String) throws -> String {
        guard text.contains("{{") else { return text }
        let source = (contentType == "HTML" ? "" : "{{% CONTENT_TYPE: \(contentType)}}") + text
        if let template = parsed.withLock({ $0[source] }) { return template.render(context) }
        do {
            let template = try MustacheTemplate(string: source)
            parsed.withLock { cache in
                if cache.count >= 1024 { cache.removeAll() }
                cache[source] = template
            }
            return template.render(context)
        } catch {
            throw RenderError(description: "template error in '\(text.prefix(80))': \(error)")
        }
    }

    /// Renders every string inside a JSON-shaped value, giving a value for JSONSerialization.
    public static func render(_ value: TemplateValue, _ context: [String: Any]) throws -> Any {
        switch value {
        case .string(let text): return try render(text, context)
        case .number(let number): return number.rounded() == number && abs(number) < 1e15 ? Int(number) as Any : number
        case .bool(let flag): return flag
        case .null: return NSNull()
        case .array(let items): return try items.map { try render($0, context) }
        case .object(let object): return try object.mapValues { try render($0, context) }
        }
    }
}

/// The escaping of values in URL templates: everything outside RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) is percent-encoded as UTF-8, so one value is one path segment or one query
/// component wherever it stands (`/ ? # & = + %` and spaces are all encoded; safe in both places).
/// A value made only of dots (`.`, `..`) is encoded too (`%2E%2E`), so it cannot be a dot segment.
struct URLComponentEscape: MustacheContentType {
    static let name = "URL_COMPONENT"

    func escapeText(_ text: String) -> String {
        let dotsOnly = !text.isEmpty && text.allSatisfy { $0 == "." }
        var encoded = ""
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: ".") where !dotsOnly:
                encoded.append(".")
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                encoded.unicodeScalars.append("%")
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                encoded.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0F)]))
            }
        }
        return encoded
    }
}
