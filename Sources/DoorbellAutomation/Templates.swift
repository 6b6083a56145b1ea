import DoorbellCore
import Foundation
import Mustache
import Synchronization

/// Mustache rendering for step inputs. Values in URLs, headers, JSON and argv are rendered as plain
/// text (no HTML escaping); `file` templates ending in .html escape HTML.
public enum Templates {
    public struct RenderError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parsed templates by source text: the same few templates render for every run, and parsing
    /// was a measurable part of each step. Bounded, so templates built from data cannot grow it.
    private static let parsed = Mutex<[String: MustacheTemplate]>([:])

    /// Renders `text` as a template over `context`; a malformed template is a `RenderError`.
    public static func render(_ text: String, _ context: [String: Any], html: Bool = false) throws -> String {
        guard text.contains("{{") else { return text }
        let source = (html ? "" : "{{% CONTENT_TYPE: TEXT}}") + text
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
