import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// The list filters, named as the API names them (`source`, `type`, `status`, `since`, `until`,
/// `q`, `cursor`, `limit`), read from a URL's query or a form. Bad values are reported, not ignored.
struct ListFilter: Sendable, Equatable {
    var source: String?
    var type: String?
    var status: RunStatus?
    var since: String?
    var until: String?
    var q: String?
    var endpoint: String?
    var cursor: String?
    var limit = 50
    /// A value that could not be read; the query methods throw it rather than ignore it.
    var problem: String?

    init() {}

    init(_ values: [String: String]) {
        func value(_ name: String) -> String? {
            guard let text = values[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return String(text.prefix(500))
        }
        source = value("source")
        type = value("type")
        status = value("status").flatMap(RunStatus.init(rawValue:))
        if let text = value("status"), status == nil {
            problem = "status: unknown '\(text)'; expected \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))"
        }
        since = value("since")
        until = value("until")
        q = value("q")
        endpoint = value("endpoint")
        cursor = value("cursor")
        if let text = value("limit") {
            if let number = Int(text), (1...200).contains(number) { limit = number } else { problem = "limit: a whole number from 1 to 200, found '\(text)'" }
        }
    }

    init(query request: Request) {
        var values: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { values[String(key)] = String(value) }
        self.init(values)
    }

    /// `since`/`until`: an ISO 8601 time, or a duration back from now (`24h`, `30m`).
    static func time(_ text: String?, now: Date) throws -> Date? {
        guard let text else { return nil }
        if let date = Timestamp.parse(text) { return date }
        if let seconds = Units.parseDuration(text) { return now.addingTimeInterval(-seconds) }
        throw FilterError(message: "'\(text)' is neither an ISO 8601 time (2026-01-31T12:00:00Z) nor a duration back from now (24h)")
    }

    func eventQuery(now: Date) throws -> EventQuery {
        if let problem { throw FilterError(message: problem) }
        var query = EventQuery(source: source, type: type, statuses: status.map { [$0] } ?? [], since: try Self.time(since, now: now), until: try Self.time(until, now: now), bodyContains: q, limit: limit)
        if let cursor {
            guard let sequence = Int64(cursor) else { throw FilterError(message: "cursor: not one this dashboard made") }
            query.beforeSequence = sequence
        }
        return query
    }

    func runQuery(deliveries: Bool, now: Date) throws -> RunQuery {
        if let problem { throw FilterError(message: problem) }
        var query = RunQuery(source: source, type: type, statuses: status.map { [$0] } ?? [], since: try Self.time(since, now: now), until: try Self.time(until, now: now), endpoint: deliveries ? endpoint : nil, deliveries: deliveries, limit: limit)
        query.bodyContains = q
        if let cursor {
            guard let after = RunCursor(cursor) else { throw FilterError(message: "cursor: not one this dashboard made") }
            query.after = after
        }
        return query
    }

    /// The filter as URL query pairs (without the cursor unless asked).
    func pairs(cursor: String? = nil) -> [(String, String?)] {
        [("source", source), ("type", type), ("status", status?.rawValue), ("since", since), ("until", until), ("q", q), ("endpoint", endpoint), ("limit", limit == 50 ? nil : String(limit)), ("cursor", cursor)]
    }

    /// Hidden form fields carrying this filter (bulk actions post exactly the filter on screen).
    var hiddenFields: HTML {
        HTML(unsafe: pairs().compactMap { name, value -> String? in
            guard let value, !value.isEmpty else { return nil }
            return "<input type=\"hidden\" name=\"\(HTML.escape(name))\" value=\"\(HTML.escape(value))\">"
        }.joined())
    }

    /// The filter form shown above a list.
    func form(action: String, sources: [String], showStatus: Bool, showEndpoint: Bool) -> HTML {
        let sourceOptions = ([""] + sources).map { id -> HTML in
            "<option value=\"\(id)\"\(HTML.when(id == (source ?? ""), " selected"))>\(id.isEmpty ? "any source" : id)</option>"
        }
        let statusOptions = ([""] + RunStatus.allCases.map(\.rawValue)).map { name -> HTML in
            "<option value=\"\(name)\"\(HTML.when(name == (status?.rawValue ?? ""), " selected"))>\(name.isEmpty ? "any status" : name)</option>"
        }
        return """
        <form class="filters" method="get" action="\(action)">
        <label>source<select name="source">\(sourceOptions)</select></label>
        <label>type<input name="type" value="\(type ?? "")" placeholder="payment_intent.succeeded"></label>
        \(HTML.when(showStatus, "<label>status<select name=\"status\">\(statusOptions)</select></label>"))
        \(HTML.when(showEndpoint, "<label>endpoint<input name=\"endpoint\" value=\"\(endpoint ?? "")\"></label>"))
        <label>since<input name="since" value="\(since ?? "")" placeholder="24h or 2026-01-31T00:00:00Z"></label>
        <label>until<input name="until" value="\(until ?? "")"></label>
        <label>body contains<input name="q" value="\(q ?? "")"></label>
        <button type="submit">Filter</button>
        </form>
        """
    }
}

struct FilterError: Error {
    let message: String
}

/// A posted `application/x-www-form-urlencoded` body.
struct FormBody: Sendable {
    var pairs: [(String, String)]

    static let maxBytes = 64 * 1024

    init(pairs: [(String, String)]) { self.pairs = pairs }

    init(_ request: Request) async throws {
        var request = request
        let buffer = try await request.collectBody(upTo: Self.maxBytes)
        self.init(text: String(buffer: buffer))
    }

    init(text: String) {
        pairs = text.split(separator: "&").map { part in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String { String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            return (decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : "")
        }
    }

    subscript(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }

    var dictionary: [String: String] {
        var values: [String: String] = [:]
        for (name, value) in pairs where values[name] == nil { values[name] = value }
        return values
    }
}
