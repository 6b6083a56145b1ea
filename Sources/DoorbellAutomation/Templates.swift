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
    private static let parsed = Mutex<[String: ParsedTemplate]>([:])

    /// A parsed template, and for a plain-text one made only of text and `{{a.b}}` lookups its pieces
    /// (`PlainTemplate`), which render without swift-mustache's dynamic lookups.
    private struct ParsedTemplate: Sendable {
        let mustache: MustacheTemplate
        let plain: PlainTemplate?
    }

    /// Renders `text` as a template over `context`; a malformed template is a `RenderError`, and so is
    /// one whose output would pass `limit` bytes (`RenderBudget`; `field` names it in the error).
    public static func render(_ text: String, _ context: [String: Any], html: Bool = false, field: String = "template", limit: Int = fieldLimit) throws -> String {
        try render(text, context, contentType: html ? "HTML" : "TEXT", field: field, limit: limit)
    }

    /// Renders a URL template: every `{{value}}` is percent-encoded as one URL component (see
    /// `URLComponentEscape`), so a webhook's `../admin?x=` cannot leave its path segment or add query
    /// parameters. `{{{value}}}` inserts the value unencoded, for a value that is a whole URL or path.
    ///
    /// A `{{value}}` that leaves a whole path segment `.`, `..` or empty is refused (a `RenderError`
    /// naming `field` and the tag, never the URL, which may hold a secret): servers and proxies
    /// resolve `..` even as `%2E%2E`, and merge or drop empty segments, so an `order_id` of `..`
    /// would move `/api/orders/{{order_id}}/paid` to `/api/paid`.
    public static func renderURL(_ text: String, _ context: [String: Any], field: String) throws -> String {
        // A URL without tags is the configured one (most are): no values to mark, place or check.
        guard text.contains("{{") else { return text }
        _ = registered
        let (marked, tags) = URLValueMarks.mark(text)
        let rendered = try render(marked, context, contentType: URLComponentEscape.name, field: field, limit: fieldLimit)
        let (url, values) = URLValueMarks.strip(rendered)
        if let (tag, segment) = URLValueMarks.dotOrEmptySegment(url, values: values) {
            let name = tags.indices.contains(tag) ? "{{\(tags[tag].prefix(80))}}" : "a value"
            let what = segment.isEmpty ? "an empty path segment" : "the path segment '\(segment)'"
            throw RenderError(description: "\(field): \(name) makes \(what), which servers resolve to another path; refused")
        }
        // What no single value shows: a section or a value that rendered nothing (`/api/{{#l}}…{{/l}}/x`
        // with an empty list) leaves `//`. The path as sent is checked whole.
        if let segment = dotOrEmptySegment(inPathOf: url) {
            let what = segment.isEmpty ? "an empty path segment" : "the path segment '\(segment)'"
            throw RenderError(description: "\(field): the rendered URL has \(what) (a value or section rendered empty?), which servers resolve to another path; refused")
        }
        return url
    }

    /// The first `.`, `..` or empty segment of a URL's path (percent-decoded; a trailing `/` is fine).
    static func dotOrEmptySegment(inPathOf url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }), rest[slash] == "/" else { return nil }
        let path = rest[slash...].prefix { $0 != "?" && $0 != "#" }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if segments.last == "" { segments = segments.dropLast() }
        return segments.map { $0.removingPercentEncoding ?? String($0) }.first { ["", ".", ".."].contains($0) }
    }

    /// Registers the URL content type with swift-mustache once, before the first URL template is parsed.
    private static let registered: Bool = {
        MustacheContentTypes.register(URLComponentEscape(), named: URLComponentEscape.name)
        return true
    }()

    private static func render(_ text: String, _ context: [String: Any], contentType: String, field: String, limit: Int) throws -> String {
        guard text.contains("{{") else { return text }
        let source = (contentType == "HTML" ? "" : "{{% CONTENT_TYPE: \(contentType)}}") + text
        let template = try parsed.withLock({ $0[source] }) ?? parse(text, source: source, contentType: contentType)
        if let plain = template.plain, let rendered = plain.render(context, limit: limit) { return rendered }
        return try renderBounded(template.mustache, source: text, context, contentType: contentType, field: field, limit: limit)
    }

    /// Parses `source` (`text` with its content-type pragma) and keeps it for the next render.
    private static func parse(_ text: String, source: String, contentType: String) throws -> ParsedTemplate {
        let template: ParsedTemplate
        do {
            // Mustache parses it whole first: a malformed template is refused even if it looks plain.
            template = ParsedTemplate(mustache: try MustacheTemplate(string: source), plain: contentType == "TEXT" ? PlainTemplate(text) : nil)
        } catch {
            throw RenderError(description: "template error in '\(text.prefix(80))': \(error)")
        }
        parsed.withLock { cache in
            if cache.count >= 1024 { cache.removeAll() }
            cache[source] = template
        }
        return template
    }

    /// Renders every string inside a JSON-shaped value, giving a value for JSONSerialization.
    public static func render(_ value: TemplateValue, _ context: [String: Any], field: String = "template") throws -> Any {
        switch value {
        case .string(let text): return try render(text, context, field: field)
        case .number(let number): return number.rounded() == number && abs(number) < 1e15 ? Int(number) as Any : number
        case .bool(let flag): return flag
        case .null: return NSNull()
        case .array(let items): return try items.map { try render($0, context, field: field) }
        case .object(let object): return try object.mapValues { try render($0, context, field: field) }
        }
    }
}

/// A plain-text template of one line made only of text and `{{name}}` / `{{a.b.c}}` lookups (no
/// sections, transforms, partials, pragmas or triple mustaches): what most step fields are
/// (`{{event.id}}`, `Bearer {{steps.token.body.access_token}}`). Templates with line breaks are left
/// to swift-mustache: its parser drops a first line that holds only the content-type pragma `render`
/// puts in front, and trailing blanks after the last line break. swift-mustache finds each name
/// through dynamic casts of every value on the way, ~4 % of the end-to-end benchmark's CPU for one
/// `{{event.id}}`; here a lookup walks the context's dictionaries. Only the answer that is certain is given: a value
/// that is a string, or missing (both render as swift-mustache renders them in plain text: as is, or
/// empty); for a number, a list, an object, a null, or output past the limit, `render` answers nil and
/// the caller renders through swift-mustache, which does all of that (and the budget's error).
struct PlainTemplate {
    enum Piece {
        case text(String)
        case lookup([String])
    }

    let pieces: [Piece]

    /// Nil unless `template` is plain (one line, at least one lookup).
    init?(_ template: String) {
        guard !template.utf8.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else { return nil }
        var pieces: [Piece] = []
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { pieces.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest.range(of: "}}", range: open.upperBound..<rest.endIndex) else { return nil }
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            // Letters, digits, `_` and `-` in dot-separated names; anything else (a tag kind, a
            // transform, a third brace, `.` alone) is left to swift-mustache.
            let names = name.split(separator: ".", omittingEmptySubsequences: false)
            guard !name.isEmpty, names.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(Self.isNameByte) }) else { return nil }
            pieces.append(.lookup(names.map(String.init)))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        guard pieces.contains(where: { if case .lookup = $0 { true } else { false } }) else { return nil }
        self.pieces = pieces
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    /// The rendered text, or nil when a value is not a string or missing, or the text would pass `limit` bytes.
    func render(_ context: [String: Any], limit: Int) -> String? {
        var output = ""
        for piece in pieces {
            switch piece {
            case .text(let text):
                output += text
            case .lookup(let names):
                var value: Any? = context
                for name in names {
                    guard let current = value else { break }
                    guard let dictionary = EventBody.read(current, as: [String: Any].self) else { return nil }
                    value = dictionary[name]
                }
                if let found = value {
                    guard let text = EventBody.read(found, as: String.self) else { return nil }
                    output += text
                }
            }
            if output.utf8.count > limit { return nil }
        }
        return output
    }
}

/// The escaping of values in URL templates: `PercentEncoding`, so one value is one path segment or
/// one query component wherever it stands (`/ ? # & = + %` and spaces are all encoded; safe in both
/// places). A value that is a whole dot or empty segment is refused by `renderURL`, not encoded.
struct URLComponentEscape: MustacheContentType {
    static let name = "URL_COMPONENT"

    func escapeText(_ text: String) -> String {
        PercentEncoding.encode(text)
    }
}

/// Where each `{{value}}` of a URL template landed in the rendered URL, so `renderURL` can tell a
/// value that is a whole path segment from one inside a segment or the query. Each double-mustache
/// variable is wrapped in private-use marks (`U+E000 <tag number> U+E001 … U+E002`) before rendering
/// — a missing value too, which renders empty without passing through the escaping — and the marks
/// are taken out after. An escaped value is ASCII, so no mark can come from a value inside them.
enum URLValueMarks {
    static let open: Unicode.Scalar = "\u{E000}"
    static let separator: Unicode.Scalar = "\u{E001}"
    static let close: Unicode.Scalar = "\u{E002}"

    /// The template with every `{{name}}` variable wrapped in marks, and the tags' names by number.
    /// Sections, comments, partials, triple mustaches and `{{& …}}` are left as they are.
    static func mark(_ template: String) -> (String, [String]) {
        var output = ""
        var tags: [String] = []
        var rest = Substring(template)
        while let start = rest.range(of: "{{") {
            output += rest[..<start.lowerBound]
            rest = rest[start.lowerBound...]
            let closing = rest.hasPrefix("{{{") ? "}}}" : "}}"
            guard let end = rest.range(of: closing, range: rest.index(rest.startIndex, offsetBy: 2)..<rest.endIndex) else { break }
            let tag = rest[..<end.upperBound]
            let inner = tag.dropFirst(2).dropLast(2).trimmingCharacters(in: .whitespaces)
            if closing == "}}", let first = inner.first, !"#^/!>=&%{".contains(first) {
                output += "\(open)\(tags.count)\(separator)\(tag)\(close)"
                tags.append(inner)
            } else {
                output += tag
            }
            rest = rest[end.upperBound...]
        }
        return (output + rest, tags)
    }

    /// The rendered URL without marks, and where each marked value stands in it (tag number and a
    /// range of unicode scalar offsets).
    static func strip(_ rendered: String) -> (String, [(tag: Int, range: Range<Int>)]) {
        let scalars = Array(rendered.unicodeScalars)
        var output = String.UnicodeScalarView()
        var values: [(tag: Int, range: Range<Int>)] = []
        var index = 0
        var count = 0
        while index < scalars.count {
            if scalars[index] == open, let value = markedValue(scalars, at: index) {
                output.append(contentsOf: value.text)
                values.append((value.tag, count..<count + value.text.count))
                count += value.text.count
                index = value.next
            } else {
                if scalars[index] != open, scalars[index] != separator, scalars[index] != close {
                    output.append(scalars[index])
                    count += 1
                }
                index += 1
            }
        }
        return (String(output), values)
    }

    /// `U+E000 digits U+E001 ascii U+E002` starting at `start`, or nil.
    private static func markedValue(_ scalars: [Unicode.Scalar], at start: Int) -> (tag: Int, text: [Unicode.Scalar], next: Int)? {
        var index = start + 1
        var digits = ""
        while index < scalars.count, ("0"..."9").contains(scalars[index]), digits.count < 6 {
            digits.unicodeScalars.append(scalars[index])
            index += 1
        }
        guard let tag = Int(digits), index < scalars.count, scalars[index] == separator else { return nil }
        index += 1
        var text: [Unicode.Scalar] = []
        while index < scalars.count, scalars[index].isASCII {
            text.append(scalars[index])
            index += 1
        }
        guard index < scalars.count, scalars[index] == close else { return nil }
        return (tag, text, index + 1)
    }

    /// The first value that stands in a path segment which is, whole, `.`, `..` (also as `%2E`) or
    /// empty: its tag number and that segment. Values in the authority, query or fragment are fine.
    static func dotOrEmptySegment(_ url: String, values: [(tag: Int, range: Range<Int>)]) -> (Int, String)? {
        let scalars = Array(url.unicodeScalars)
        guard let scheme = url.range(of: "://") else { return nil }
        let afterScheme = url.unicodeScalars.distance(from: url.unicodeScalars.startIndex, to: scheme.upperBound)
        guard let pathStart = scalars[afterScheme...].firstIndex(where: { "/?#".unicodeScalars.contains($0) }), scalars[pathStart] == "/" else { return nil }
        let pathEnd = scalars[pathStart...].firstIndex(where: { $0 == "?" || $0 == "#" }) ?? scalars.count
        for value in values where value.range.lowerBound > pathStart && value.range.upperBound <= pathEnd {
            let segmentStart = (scalars[pathStart..<value.range.lowerBound].lastIndex(of: "/") ?? pathStart) + 1
            let segmentEnd = scalars[value.range.upperBound..<pathEnd].firstIndex(of: "/") ?? pathEnd
            let segment = String(String.UnicodeScalarView(scalars[segmentStart..<segmentEnd]))
            let decoded = segment.replacingOccurrences(of: "%2E", with: ".", options: .caseInsensitive)
            if ["", ".", ".."].contains(decoded) { return (value.tag, segment) }
        }
        return nil
    }
}
