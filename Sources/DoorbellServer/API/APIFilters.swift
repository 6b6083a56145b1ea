import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// The list filters the API and the dashboard share: `source`, `type`, `status`, `since`, `until`,
/// `q`, `cursor`, `limit` (plus `automation`, `event`, `endpoint` where they apply). A value that
/// does not parse is a 400 naming the parameter — never clamped, never ignored.
struct APIFilters {
    /// The most rows one list answers; `?limit=` asks for fewer.
    static let maxPage = 500
    static let defaultPage = 50
    /// `q` is compared byte for byte in the store; a longer text (in characters) is refused rather than scanned for.
    static let maxQueryText = 1000
    /// The longest source, type, automation, event or endpoint id a filter accepts, in characters
    /// (as JSON Schema's maxLength counts).
    static let maxName = 400

    let parameters: [String: String]

    init(_ parameters: [String: String]) { self.parameters = parameters }

    init(_ request: Request) {
        var parameters: [String: String] = [:]
        // The first of a repeated parameter counts, as in Hummingbird's own lookups.
        for (key, value) in request.uri.queryParameters where parameters[String(key)] == nil { parameters[String(key)] = String(value) }
        self.parameters = parameters
    }

    /// `?limit=`: a whole number from 1 to `maxPage` (default 50). Anything else is a 400, not
    /// clamped: a negative limit once meant "no limit" to the store.
    var limit: Int {
        get throws {
            guard let text = parameters["limit"] else { return Self.defaultPage }
            guard let value = Int(text), (1...Self.maxPage).contains(value) else {
                throw APIError.field("limit", "a whole number from 1 to \(Self.maxPage), found '\(text.prefix(40))'")
            }
            return value
        }
    }

    /// An exact name (source, type, …), up to `maxName` characters; empty means no filter.
    func name(_ key: String) throws -> String? {
        guard let text = parameters[key], !text.isEmpty else { return nil }
        guard text.unicodeScalars.count <= Self.maxName else { throw APIError.field(key, "at most \(Self.maxName) characters") }
        return text
    }

    /// `status`: one or more run statuses, comma-separated.
    var statuses: [RunStatus] {
        get throws {
            guard let text = parameters["status"] else { return [] }
            return try text.split(separator: ",", omittingEmptySubsequences: false).map { part in
                guard let status = RunStatus(rawValue: String(part)) else {
                    throw APIError.field("status", "unknown '\(part.prefix(40))'; expected \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return status
            }
        }
    }

    /// `since` / `until`: an ISO 8601 time (`2026-12-01T00:00:00Z`, fractional seconds allowed).
    func time(_ key: String) throws -> Date? {
        guard let text = parameters[key] else { return nil }
        guard let date = Timestamp.parse(text) else { throw APIError.field(key, "expected an ISO 8601 time such as 2026-12-01T00:00:00Z, found '\(text.prefix(40))'") }
        return date
    }

    /// `q`: text the event's body contains, byte for byte (no wildcards).
    var text: String? {
        get throws {
            guard let text = parameters["q"], !text.isEmpty else { return nil }
            guard text.unicodeScalars.count <= Self.maxQueryText else { throw APIError.field("q", "at most \(Self.maxQueryText) characters") }
            return text
        }
    }

    /// Events: `source`, `type`, `status`, `since`, `until`, `q`, `cursor` (the last page's
    /// `next_cursor`), `limit`.
    var eventQuery: EventQuery {
        get throws {
            var query = EventQuery(
                source: try name("source"), type: try name("type"), statuses: try statuses, since: try time("since"), until: try time("until"),
                bodyContains: try text, limit: try limit
            )
            if let text = parameters["cursor"] {
                guard let sequence = Int64(text), sequence > 0 else { throw APIError.field("cursor", "not a cursor from this list: '\(text.prefix(40))'") }
                query.beforeSequence = sequence
            }
            return query
        }
    }

    /// Runs or deliveries (`deliveries`): the event filters plus `automation`, `event`, `endpoint`.
    func runQuery(deliveries: Bool) throws -> RunQuery {
        var query = RunQuery(
            eventID: try name("event"), automation: deliveries ? nil : try name("automation"), source: try name("source"), type: try name("type"),
            statuses: try statuses, since: try time("since"), until: try time("until"),
            endpoint: deliveries ? try name("endpoint") : nil, deliveries: deliveries, limit: try limit
        )
        query.bodyContains = try text
        if let text = parameters["cursor"] {
            guard let cursor = RunCursor(text) else { throw APIError.field("cursor", "not a cursor from this list: '\(text.prefix(40))'") }
            query.after = cursor
        }
        return query
    }
}

extension RunQuery {
    /// The runs `replay(matching:fromStart:)` touches for this filter: dead ones by default (with
    /// `fromStart` succeeded ones too), never one pending or running. nil: none at all. A dry run
    /// counts exactly these.
    func replayable(fromStart: Bool) -> RunQuery? {
        var query = self
        if query.statuses.isEmpty { query.statuses = fromStart ? [.dead, .succeeded] : [.dead] }
        query.statuses = query.statuses.filter { $0 == .dead || $0 == .succeeded }
        query.after = nil
        query.limit = Int.max
        return query.statuses.isEmpty ? nil : query
    }
}
