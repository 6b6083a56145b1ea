import DoorbellCore
import Foundation
import Hummingbird

/// A client mistake the API answers with `status` and `{"error": message}`; the message names the
/// field or query parameter at fault.
struct APIError: Error {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    static func field(_ name: String, _ message: String) -> APIError { APIError(.badRequest, "\(name): \(message)") }
}

/// Any key of a JSON object, so a request type can see every field it was sent (unknown ones are
/// refused by name, never ignored).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The fields of a request body, read once; typed accessors throw `APIError`s naming the field.
struct RequestFields {
    private(set) var values: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        var values: [String: JSONValue] = [:]
        for key in container.allKeys { values[key.stringValue] = try container.decode(JSONValue.self, forKey: key) }
        self.values = values
    }

    subscript(_ name: String) -> JSONValue? { values[name] }

    /// Refuses the first field (alphabetically) not in `allowed`.
    func refuseUnknown(_ allowed: [String]) throws {
        if let unknown = values.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.field(unknown, "unknown field; expected \(allowed.count > 3 ? "one of " : "")\(allowed.joined(separator: ", "))")
        }
    }

    /// A string, or nil when absent (`null` too, when `nullable`).
    func string(_ name: String, nullable: Bool = false, _ message: String = "a string") throws -> String? {
        guard let value = values[name] else { return nil }
        if nullable, value.isNull { return nil }
        guard let text = value.string else { throw APIError.field(name, message) }
        return text
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = values[name] else { return nil }
        guard case .bool(let flag) = value else { throw APIError.field(name, "true or false") }
        return flag
    }
}

/// Decodes a request type from the body (at most `limit` bytes). An empty body reads as `{}`.
func decodeBody<Body: Decodable>(_ type: Body.Type, _ request: Request, limit: Int) async throws -> Body {
    var request = request
    let buffer: ByteBuffer
    do {
        buffer = try await request.collectBody(upTo: limit)
    } catch {
        throw APIError(.contentTooLarge, "body larger than \(limit) bytes")
    }
    let data = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer: buffer)
    do {
        return try JSONDecoder().decode(Body.self, from: data)
    } catch let error as APIError {
        throw error
    } catch {
        throw APIError(.badRequest, "the body must be a JSON object")
    }
}

// MARK: events

/// `POST /api/v1/events`: `{"type": …, "data": {…}, "idempotency_key": "…"}`.
struct PublishEventRequest: Decodable {
    var type: String
    /// An object or a list.
    var data: JSONValue
    var idempotencyKey: String?

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        guard let type = fields["type"]?.string else { throw APIError.field("type", "required, a string") }
        // The same rule as a received webhook's type (EventLimits), so what we publish ingest would accept.
        if let problem = EventLimits.typeProblem(type) { throw APIError.field("type", problem) }
        switch fields["data"] {
        case .object?, .array?: data = fields["data"] ?? .null
        default: throw APIError.field("data", "required, a JSON object (or array)")
        }
        self.type = type
        self.idempotencyKey = try Self.key(fields)
        try fields.refuseUnknown(["type", "data", "idempotency_key"])
    }

    private static func key(_ fields: RequestFields) throws -> String? {
        guard let key = try fields.string("idempotency_key") else { return nil }
        if let problem = EventLimits.providerIDProblem(key) { throw APIError.field("idempotency_key", problem) }
        return key
    }
}

/// `POST /api/v1/events/{id}/replay`: `{"from_start": false, "automation": "…"}`, both optional.
struct ReplayEventRequest: Decodable {
    var fromStart: Bool
    /// Only this automation; it is started if it never ran for the event.
    var automation: String?

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        try fields.refuseUnknown(["automation", "from_start"])
        fromStart = try fields.bool("from_start") ?? false
        automation = try fields.string("automation")
    }
}

// MARK: runs and deliveries

/// `POST /api/v1/runs/{id}/replay`: `{"from_start": false}` (optional).
struct ReplayRunRequest: Decodable {
    var fromStart: Bool

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        try fields.refuseUnknown(["from_start"])
        fromStart = try fields.bool("from_start") ?? false
    }
}

/// A bulk action's filter: the list filters' names, each a string as in a query string.
struct FilterFields {
    var parameters: [String: String] = [:]

    init(_ fields: RequestFields, names: [String]) throws {
        for name in names {
            if let text = try fields.string(name) { parameters[name] = text }
        }
    }
}

/// `POST /api/v1/runs/replay`: replays the automation runs a filter selects (default: dead ones);
/// with `dry_run` only counts them, so a client can confirm first.
struct BulkReplayRequest: Decodable {
    static let filterNames = ["source", "type", "status", "since", "until", "q", "automation", "event"]
    var filter: [String: String]
    var fromStart: Bool
    var dryRun: Bool

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        try fields.refuseUnknown((Self.filterNames + ["from_start", "dry_run"]).sorted())
        filter = try FilterFields(fields, names: Self.filterNames).parameters
        fromStart = try fields.bool("from_start") ?? false
        dryRun = try fields.bool("dry_run") ?? false
    }
}

/// `POST /api/v1/deliveries/retry`: retries the deliveries a filter selects (default: dead ones);
/// with `dry_run` only counts them.
struct BulkRetryRequest: Decodable {
    static let filterNames = ["endpoint", "event", "source", "type", "status", "since", "until", "q"]
    var filter: [String: String]
    var dryRun: Bool

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        try fields.refuseUnknown((Self.filterNames + ["dry_run"]).sorted())
        filter = try FilterFields(fields, names: Self.filterNames).parameters
        dryRun = try fields.bool("dry_run") ?? false
    }
}

// MARK: endpoints

/// A field that may be left out, set to `null`, or set.
enum Patch<Value> {
    case absent
    case null
    case value(Value)
}

/// `POST /api/v1/endpoints` and `PATCH /api/v1/endpoints/{id}`: the fields given, checked for type;
/// `apply` checks what depends on creating or changing.
struct EndpointRequest: Decodable {
    static let allowed = ["id", "url", "events", "secret", "rate_limit", "headers", "enabled", "description", "retry"]
    var id: String?
    var url: String?
    var events: [String]?
    var secret: String?
    var rateLimit: Patch<RateLimit> = .absent
    var headers: [String: String]?
    var enabled: Bool?
    var description: Patch<String> = .absent
    var retry: Patch<RetryPolicy> = .absent

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        id = try fields.string("id")
        try fields.refuseUnknown(Self.allowed)
        url = try fields.string("url")
        if let value = fields["events"] {
            guard case .array(let items) = value, let list = Optional(items.compactMap(\.string)), list.count == items.count else {
                throw APIError.field("events", "a list of strings")
            }
            events = list
        }
        secret = try fields.string("secret")
        switch fields["rate_limit"] {
        case nil: break
        case .null?: rateLimit = .null
        case let value?:
            let text: String? = switch value {
            case .string(let text): text
            case .integer(let number): String(number)
            default: nil
            }
            guard let text, let parsed = RateLimit(text) else { throw APIError.field("rate_limit", "deliveries per time such as \"10/s\", \"600/m\"") }
            rateLimit = .value(parsed)
        }
        if let value = fields["headers"] {
            guard case .object(let map) = value, map.values.allSatisfy({ $0.string != nil }) else { throw APIError.field("headers", "an object of strings") }
            headers = map.mapValues { $0.string ?? "" }
        }
        if let value = fields["enabled"] {
            guard case .bool(let flag) = value else { throw APIError.field("enabled", "true or false") }
            enabled = flag
        }
        switch fields["description"] {
        case nil: break
        case .null?: description = .null
        case .string(let text)?: description = .value(text)
        default: throw APIError.field("description", "a string or null")
        }
        switch fields["retry"] {
        case nil: break
        case .null?: retry = .null
        case let value?: retry = .value(try Self.retryPolicy(value))
        }
    }

    private static func retryPolicy(_ value: JSONValue) throws -> RetryPolicy {
        guard case .object(let object) = value, case .array(let list)? = object["schedule"], !list.isEmpty else {
            throw APIError.field("retry", "{\"schedule\": [\"0s\", \"5s\", …], \"jitter\": 0.2}")
        }
        var schedule: [Double] = []
        for item in list {
            let seconds: Double? = switch item {
            case .string(let text): Units.parseDuration(text)
            case .integer(let number): Double(number)
            case .number(let number): number
            default: nil
            }
            guard let seconds, seconds >= 0, seconds.isFinite else { throw APIError.field("retry.schedule", "'\(item.string ?? item.kind)' is not a duration") }
            schedule.append(seconds)
        }
        var jitter = RetryPolicy.default.jitter
        switch object["jitter"] {
        case nil: break
        case .integer(let number)?: jitter = Double(number)
        case .number(let number)?: jitter = number
        default: throw APIError.field("retry.jitter", "a number from 0 to 1")
        }
        if let unknown = object.keys.sorted().first(where: { !["schedule", "jitter"].contains($0) }) {
            throw APIError.field("retry.\(unknown)", "unknown field; expected schedule, jitter")
        }
        guard (0...1).contains(jitter) else { throw APIError.field("retry.jitter", "a fraction from 0 to 1") }
        return RetryPolicy(schedule: schedule, jitter: jitter)
    }

    /// Applies the given fields to `endpoint`.
    func apply(to endpoint: inout Endpoint, creating: Bool) throws {
        if !creating, id != nil { throw APIError.field("id", "cannot be changed") }
        if !creating, secret != nil { throw APIError.field("secret", "use POST /api/v1/endpoints/{id}/rotate-secret") }
        if let url { endpoint.url = url }
        if creating && endpoint.url.isEmpty { throw APIError.field("url", "required") }
        if let events { endpoint.events = events }
        if let secret { endpoint.secrets = [EndpointSecret(secret: secret)] }
        switch rateLimit {
        case .absent: break
        case .null: endpoint.rateLimit = nil
        case .value(let limit): endpoint.rateLimit = limit
        }
        if let headers { endpoint.headers = headers }
        if let enabled {
            endpoint.enabled = enabled
            endpoint.disabledReason = enabled ? nil : "disabled through the API"
        }
        switch description {
        case .absent: break
        case .null: endpoint.description = nil
        case .value(let text): endpoint.description = text
        }
        switch retry {
        case .absent: break
        case .null: endpoint.retry = nil
        case .value(let policy): endpoint.retry = policy
        }
    }
}

/// `POST /api/v1/endpoints/{id}/rotate-secret`: `{"secret": "whsec_…", "overlap": "24h"}`, both optional.
struct RotateSecretRequest: Decodable {
    var secret: String?
    var overlap: Double?

    init(from decoder: any Decoder) throws {
        let fields = try RequestFields(from: decoder)
        try fields.refuseUnknown(["secret", "overlap"])
        if let given = try fields.string("secret", nullable: true, "a string (whsec_… or whsk_…)") {
            guard EndpointSecret.looksValid(given) else { throw APIError.field("secret", "expected whsec_<base64 of 24–64 bytes> or whsk_<base64 Ed25519 key>") }
            secret = given
        }
        if let text = try fields.string("overlap", nullable: true, "a duration as a string, such as \"24h\"") {
            guard let seconds = Units.parseDuration(text), seconds >= 0 else { throw APIError.field("overlap", "not a duration: '\(text.prefix(40))'") }
            overlap = seconds
        }
    }
}
