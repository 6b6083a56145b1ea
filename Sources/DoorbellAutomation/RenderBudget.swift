import DoorbellCore
import Foundation
import Mustache

extension Templates {
    /// What a `file` step may write: a report or a page, not a disk filler.
    public static let fileLimit = 16 * 1024 * 1024
    /// Every other rendered field (URL, header, body, argv, env, email part, chat text, emit data).
    public static let fieldLimit = 1024 * 1024
}

/// A byte budget for one template render, charged while swift-mustache renders, not afterwards: a
/// small webhook can otherwise multiply itself through a section (`{{#body.items}}…{{body.big}}…`
/// renders `big` once per item), and a 108 KB body wrote a 200 MB file. Every value a template
/// reads charges its rendered (escaped) size, every section iteration charges the section's static
/// size; once the budget is spent, values render empty and sections stop iterating, and
/// `Templates` fails the render ("rendered <field> would exceed N bytes"), so memory stays near
/// the limit whatever the body holds.
final class RenderBudget {

    /// How values are escaped in this render, so a charge covers what escaping adds (`&quot;` is six
    /// bytes for one).
    enum Escaping {
        case text, html, url
    }

    let limit: Int
    let escaping: Escaping
    /// Charged for each item a section iterates over: the longest body of the sections whose tag ends
    /// in the list's name (`items` for `{{#body.items}}`), an upper bound of the static text one
    /// iteration adds; a list reached without a name (an item of a list, `{{#.}}`) is charged the
    /// longest section body of the whole template. Never less than `minimumIteration`, so a section
    /// with no text, nested in another over the same list, is counted too.
    let perIteration: Int
    private let sectionBodies: [String: Int]
    private(set) var used = 0

    static let minimumIteration = 16

    init(limit: Int, escaping: Escaping, template: String) {
        self.limit = limit
        self.escaping = escaping
        let sections = Self.sectionBodies(template)
        self.sectionBodies = sections.byName
        self.perIteration = max(Self.minimumIteration, sections.longest)
    }

    /// What one iteration over the list called `name` is charged.
    func iterationCost(_ name: String?) -> Int {
        guard let name, let body = sectionBodies[name] else { return perIteration }
        return max(Self.minimumIteration, body)
    }

    /// Whether the render asked for more than `limit`.
    var exceeded: Bool { used > limit }

    /// Adds `bytes`; false once the budget is spent.
    func charge(_ bytes: Int) -> Bool {
        guard !exceeded else { return false }
        used = bytes > limit ? limit + 1 : used + bytes
        return !exceeded
    }

    /// `value` as text (`{{body}}` on an object or a list), charged; empty once the budget is spent,
    /// without describing the value at all.
    func charged(describing value: Any) -> String {
        guard !exceeded else { return "" }
        let text = String(describing: value)
        return charge(text: text) ? text : ""
    }

    /// Charges the escaped size of `text`, scanning no further than the budget left.
    func charge(text: String) -> Bool {
        guard !exceeded else { return false }
        let left = limit - used
        var size = 0
        for byte in text.utf8 {
            size += Self.escapedSize(byte, escaping)
            if size > left { break }
        }
        return charge(size)
    }

    static func escapedSize(_ byte: UInt8, _ escaping: Escaping) -> Int {
        switch escaping {
        case .text:
            return 1
        case .html:
            switch byte {
            case UInt8(ascii: "<"), UInt8(ascii: ">"): return 4
            case UInt8(ascii: "&"), UInt8(ascii: "'"): return 5
            case UInt8(ascii: "\""): return 6
            default: return 1
            }
        case .url:
            return PercentEncoding.isUnreserved(byte) ? 1 : 3
        }
    }

    /// The context as swift-mustache sees it: every object, list and value wrapped so that reading
    /// it charges this budget.
    ///
    /// Strings, objects and lists are asked for first: asking whether a Swift string or dictionary
    /// is an `NSNull` or `NSNumber` (a class) makes Foundation bridge it to Objective-C just to say no.
    func wrap(_ value: Any, name: String? = nil) -> Any {
        if let text = value as? String { return BudgetedText(text: text, budget: self) }
        if let object = value as? [String: Any] { return BudgetedObject(object: object, budget: self) }
        if let items = value as? [Any] { return BudgetedList(items: items, name: name, budget: self) }
        if value is NSNull { return value }
        if type(of: value) == Bool.self { return value }
        if value is NSNumber { return BudgetedScalar(value: value, budget: self) }
        if let text = value as? Substring { return BudgetedText(text: String(text), budget: self) }
        if let body = value as? EventBody { return wrap(body.value, name: name) }
        return BudgetedScalar(value: value, budget: self)
    }

    /// Section bodies (`{{#x}}…{{/x}}` or `{{^x}}…{{/x}}`) in bytes, tags included: the longest by the
    /// last name of the tag (`items` for `{{#reversed(body.items)}}`), and the longest of all. A
    /// template that changes its delimiters (`{{=<% %>=}}`) counts whole, for every name.
    static func sectionBodies(_ template: String) -> (byName: [String: Int], longest: Int) {
        let bytes = Array(template.utf8)
        var open: [(start: Int, name: String)] = []
        var byName: [String: Int] = [:]
        var longest = 0
        var index = 0
        func starts(_ text: String, at position: Int) -> Bool {
            let pattern = Array(text.utf8)
            return position + pattern.count <= bytes.count && Array(bytes[position..<position + pattern.count]) == pattern
        }
        while index < bytes.count {
            guard starts("{{", at: index) else { index += 1; continue }
            var end = index + 2
            while end < bytes.count, !starts("}}", at: end) { end += 1 }
            guard end < bytes.count else { break }
            let inner = bytes[(index + 2)..<end].drop(while: { $0 == UInt8(ascii: " ") })
            switch inner.first {
            // Blocks (`$`) and parents (`<`) are closed by `{{/…}}` too: every opener must be on the
            // stack, or a block inside a section would close the section early and undercharge it.
            case UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "<"):
                open.append((end + 2, lastName(String(decoding: inner.dropFirst(), as: UTF8.self))))
            case UInt8(ascii: "/"):
                if let section = open.popLast() {
                    longest = max(longest, index - section.start)
                    byName[section.name] = max(byName[section.name] ?? 0, index - section.start)
                }
            case UInt8(ascii: "="): return ([:], bytes.count)
            default: break
            }
            index = end + 2
        }
        return (byName, longest)
    }

    /// `items` for `body.items`, `reversed(body.items)` or ` items `.
    static func lastName(_ tag: String) -> String {
        var name = Substring(tag)
        if let open = name.lastIndex(of: "("), let close = name[open...].firstIndex(of: ")") {
            name = name[name.index(after: open)..<close]
        }
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        return trimmed.split(separator: ".").last.map(String.init) ?? trimmed
    }
}

/// A string value of the context: rendering it charges its escaped size; over budget it renders empty.
/// As a section it pushes itself (a string is truthy, as before); names are not looked up in it.
struct BudgetedText: MustacheCustomRenderable, MustacheParent, MustacheTransformable, CustomStringConvertible {
    let text: String
    let budget: RenderBudget

    var renderText: String { budget.charge(text: text) ? text : "" }
    var isNull: Bool { false }
    var description: String { renderText }
    func child(named: String) -> Any? { nil }
    func transform(_ name: String) -> Any? {
        text.transform(name).map { budget.wrap($0) }
    }
}

/// A number (or any other plain value): it resolves to itself, so sections, `if`s and transforms see
/// what they saw before, and resolving it charges the size of its text.
struct BudgetedScalar: MustacheCustomRepresentation {
    let value: Any
    let budget: RenderBudget

    var representation: Any? {
        budget.charge(String(describing: value).utf8.count) ? value : nil
    }
}

/// A JSON object of the context: its members are looked up without copying and come back wrapped.
struct BudgetedObject: MustacheParent, MustacheCustomRenderable, MustacheTransformable, CustomStringConvertible {
    let object: [String: Any]
    let budget: RenderBudget

    func child(named name: String) -> Any? {
        object[name].map { budget.wrap($0, name: name) }
    }

    /// `{{body}}` renders the object's text, charged; nothing once the budget is spent.
    var renderText: String { budget.charged(describing: object) }

    var isNull: Bool { false }
    var description: String { renderText }

    func transform(_ name: String) -> Any? {
        switch name {
        case "count": return object.count
        case "empty": return object.isEmpty
        case "enumerated": return BudgetedList(items: object.map { ["key": $0.key, "value": $0.value] as [String: Any] }, budget: budget)
        case "sorted": return BudgetedList(items: object.sorted { $0.key < $1.key }.map { ["key": $0.key, "value": $0.value] as [String: Any] }, budget: budget)
        default: return nil
        }
    }
}

/// A JSON array of the context: a section over it charges `iterationCost` per item and stops
/// iterating once the budget is spent; its items come back wrapped.
///
/// A `MustacheParent` with no children, as an array was: without it swift-mustache would look names up
/// by reflection, and `{{#body.order.items}}` over a sender's `"order": […]` would reach this wrapper's
/// own `items`, unwrapped and unbudgeted.
struct BudgetedList: MustacheSequence, MustacheParent, MustacheTransformable, MustacheCustomRenderable, CustomStringConvertible {
    let items: [Any]
    /// The member name it was looked up by, if any: what its sections are found by.
    var name: String? = nil
    let budget: RenderBudget

    struct Iterator: IteratorProtocol {
        var base: IndexingIterator<[Any]>
        let cost: Int
        let budget: RenderBudget

        mutating func next() -> Any? {
            guard let item = base.next(), budget.charge(cost) else { return nil }
            return budget.wrap(item)
        }
    }

    func makeIterator() -> Iterator {
        Iterator(base: items.makeIterator(), cost: budget.iterationCost(name), budget: budget)
    }

    var renderText: String { budget.charged(describing: items) }

    var isNull: Bool { false }
    var description: String { renderText }
    func child(named: String) -> Any? { nil }

    func transform(_ name: String) -> Any? {
        switch name {
        case "first": return items.first.map { budget.wrap($0) }
        case "last": return items.last.map { budget.wrap($0) }
        case "reversed": return BudgetedList(items: items.reversed(), name: name, budget: budget)
        case "count": return items.count
        case "empty": return items.isEmpty
        default: return nil
        }
    }
}

extension Templates {
    /// Renders `template` over `context` wrapped in a `RenderBudget` of `limit` bytes; a render that
    /// spent it is a `RenderError` naming `field` (never the output, which holds webhook data).
    static func renderBounded(_ template: MustacheTemplate, source: String, _ context: [String: Any], contentType: String, field: String, limit: Int) throws -> String {
        let escaping: RenderBudget.Escaping = switch contentType {
        case "HTML": .html
        case URLComponentEscape.name: .url
        default: .text
        }
        let budget = RenderBudget(limit: limit, escaping: escaping, template: source)
        let rendered = template.render(BudgetedObject(object: context, budget: budget))
        // The budget charges values and iterations; the last check also covers a template's own
        // content-type pragma, which can escape more than the render's type charged for.
        guard !budget.exceeded, rendered.utf8.count <= limit else {
            throw RenderError(description: "rendered \(field) would exceed \(limit) bytes")
        }
        return rendered
    }
}
