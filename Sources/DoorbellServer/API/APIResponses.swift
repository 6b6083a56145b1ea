import DoorbellCore
import DoorbellStorage
import Foundation
import Hummingbird

/// Response bodies of `/api/v1`, one type per shape; the OpenAPI document (`OpenAPI.swift`)
/// describes the same names. Times are ISO 8601 UTC text with milliseconds.

/// A page of a list: `data`, and `next_cursor` to pass as `?cursor=` for the next page (null on the last).
struct Page<Item: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    var data: [Item]
    @AlwaysPresent var nextCursor: String?

    enum CodingKeys: String, CodingKey {
        case data
        case nextCursor = "next_cursor"
    }
}

/// A list without paging (`{"data": […]}`).
struct DataList<Item: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    var data: [Item]
}

struct ErrorBody: Codable, Sendable, Equatable {
    var error: String
}

// MARK: events

/// An event in a list.
struct EventSummary: Codable, Sendable, Equatable {
    var id: String
    var source: String
    var type: String
    var receivedAt: String

    enum CodingKeys: String, CodingKey {
        case id, source, type
        case receivedAt = "received_at"
    }

    init(_ stored: StoredEvent) {
        id = stored.event.id
        source = stored.event.source
        type = stored.event.type
        receivedAt = Timestamp.iso8601(stored.event.receivedAt)
    }
}

/// One event with what happened to it (`GET /api/v1/events/{id}`): its runs with their steps and
/// its deliveries with their attempts — the timeline.
struct EventDetail: Codable, Sendable, Equatable {
    var id: String
    var source: String
    var type: String
    @AlwaysPresent var providerID: String?
    var receivedAt: String
    /// 0 for a received event; n for one emitted n steps deep.
    var depth: Int
    /// Values of credential headers (`Authorization`, `Cookie`, …) are shown as "…".
    var headers: [HeaderView]
    /// The raw body: UTF-8 text, or base64 when it is not UTF-8 (`body_encoding`).
    var body: String
    var bodyEncoding: String
    var runs: [RunView]
    var deliveries: [DeliveryView]

    enum CodingKeys: String, CodingKey {
        case id, source, type, depth, headers, body, runs, deliveries
        case providerID = "provider_id"
        case receivedAt = "received_at"
        case bodyEncoding = "body_encoding"
    }

    /// Credential headers, shown as "…" by the API and the dashboard's timeline alike.
    static let hiddenHeaders: Set<String> = [
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-gitlab-token", "x-auth-token", "x-webhook-secret",
    ]

    init(_ stored: StoredEvent, runs: [RunView], deliveries: [DeliveryView]) {
        let event = stored.event
        id = event.id
        source = event.source
        type = event.type
        _providerID = AlwaysPresent(wrappedValue: event.providerID)
        receivedAt = Timestamp.iso8601(event.receivedAt)
        depth = event.depth
        headers = event.headers.map { HeaderView(name: $0.name, value: Self.hiddenHeaders.contains($0.name.lowercased()) ? "…" : $0.value) }
        if let text = String(validating: event.body, as: UTF8.self) {
            body = text
            bodyEncoding = "utf8"
        } else {
            body = Data(event.body).base64EncodedString()
            bodyEncoding = "base64"
        }
        self.runs = runs
        self.deliveries = deliveries
    }
}

struct HeaderView: Codable, Sendable, Equatable {
    var name: String
    var value: String
}

/// `POST /api/v1/events` → 202.
struct PublishedEvent: Codable, Sendable, Equatable {
    var id: String
    var duplicate: Bool
}

// MARK: runs

/// An automation run.
struct RunView: Codable, Sendable, Equatable {
    var id: String
    var eventID: String
    var automation: String
    var status: String
    /// The index of the step it runs next (or resumes at).
    var nextStep: Int
    /// Failed attempts of the current step.
    var failures: Int
    var nextAttemptAt: String
    @AlwaysPresent var lastError: String?
    var createdAt: String
    var updatedAt: String
    /// Completed steps, in order; only in `GET /api/v1/runs/{id}` and an event's timeline.
    var steps: [StepView]?

    enum CodingKeys: String, CodingKey {
        case id, automation, status, failures, steps
        case eventID = "event_id"
        case nextStep = "next_step"
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    init(_ run: RunRecord, steps: [StepView]? = nil) {
        id = run.id
        eventID = run.eventID
        automation = run.automation
        status = run.status.rawValue
        nextStep = run.nextStep
        failures = run.attempt
        nextAttemptAt = Timestamp.iso8601(run.dueAt)
        _lastError = AlwaysPresent(wrappedValue: run.lastError)
        createdAt = Timestamp.iso8601(run.createdAt)
        updatedAt = Timestamp.iso8601(run.updatedAt)
        self.steps = steps
    }
}

/// A completed step and its output (the JSON it produced).
struct StepView: Codable, Sendable, Equatable {
    var id: String
    /// The step's index in its automation.
    var position: Int
    var output: JSONValue
    var completedAt: String

    enum CodingKeys: String, CodingKey {
        case id, position, output
        case completedAt = "completed_at"
    }

    init(_ result: StepResult) {
        id = result.stepID
        position = result.position
        output = JSONValue.parsing(result.output)
        completedAt = Timestamp.iso8601(result.completedAt)
    }
}

/// `POST …/replay` and `…/retry` answers: how many runs or deliveries went back to the queue.
struct ReplayCount: Codable, Sendable, Equatable {
    var replayed: Int
    /// With `dry_run`: nothing was replayed; `replayed` is how many would be.
    var dryRun: Bool

    enum CodingKeys: String, CodingKey {
        case replayed
        case dryRun = "dry_run"
    }
}

/// `POST /api/v1/runs/{id}/replay`: 202 when it went back to the queue, 409 when it was not
/// finished (pending or running: nothing to replay).
struct RunReplayed: Codable, Sendable, Equatable {
    var replayed: Int
    /// The run's status before.
    var status: String
}

// MARK: deliveries

/// A delivery (an event sent to an endpoint).
struct DeliveryView: Codable, Sendable, Equatable {
    var id: String
    var eventID: String
    var endpoint: String
    var status: String
    var failures: Int
    var nextAttemptAt: String
    @AlwaysPresent var lastError: String?
    /// Only in `GET /api/v1/deliveries/{id}` and an event's timeline.
    var attempts: [AttemptView]?

    enum CodingKeys: String, CodingKey {
        case id, endpoint, status, failures, attempts
        case eventID = "event_id"
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
    }

    init(_ run: RunRecord, attempts: [AttemptView]? = nil) {
        id = run.id
        eventID = run.eventID
        endpoint = run.endpoint ?? ""
        status = run.status.rawValue
        failures = run.attempt
        nextAttemptAt = Timestamp.iso8601(run.dueAt)
        _lastError = AlwaysPresent(wrappedValue: run.lastError)
        self.attempts = attempts
    }
}

/// One HTTP try of a delivery.
struct AttemptView: Codable, Sendable, Equatable {
    var number: Int
    var startedAt: String
    /// The HTTP status; null when no answer came.
    @AlwaysPresent var status: Int?
    var latencyMs: Int
    @AlwaysPresent var response: String?
    @AlwaysPresent var error: String?

    enum CodingKeys: String, CodingKey {
        case number, status, response, error
        case startedAt = "started_at"
        case latencyMs = "latency_ms"
    }

    init(_ attempt: AttemptRecord) {
        number = attempt.number
        startedAt = Timestamp.iso8601(attempt.startedAt)
        _status = AlwaysPresent(wrappedValue: attempt.status)
        latencyMs = attempt.latencyMillis
        _response = AlwaysPresent(wrappedValue: attempt.response)
        _error = AlwaysPresent(wrappedValue: attempt.error)
    }
}

/// `POST /api/v1/deliveries/{id}/retry`: `retried` 1 (202) or 0 (409, not finished), with its status before.
struct DeliveryRetried: Codable, Sendable, Equatable {
    var retried: Int
    var status: String?
}

/// `POST /api/v1/deliveries/retry`.
struct DeliveriesRetried: Codable, Sendable, Equatable {
    var retried: Int
    /// Present (true) only for a dry run: nothing was retried; `retried` is how many would be.
    var dryRun: Bool?

    enum CodingKeys: String, CodingKey {
        case retried
        case dryRun = "dry_run"
    }
}

// MARK: endpoints

/// An endpoint as the API shows it. Its URL (a Slack-style URL is a token) and header values
/// (`Authorization`) are secrets like its signing secret: shown whole only by `…/secret`.
struct EndpointView: Codable, Sendable, Equatable {
    var id: String
    var url: String
    var events: [String]
    var headers: [String: String]
    var enabled: Bool
    var fromConfig: Bool
    @AlwaysPresent var rateLimit: String?
    @AlwaysPresent var disabledReason: String?
    @AlwaysPresent var description: String?
    @AlwaysPresent var retry: RetryView?
    var secrets: [SecretView]

    enum CodingKeys: String, CodingKey {
        case id, url, events, headers, enabled, description, retry, secrets
        case fromConfig = "from_config"
        case rateLimit = "rate_limit"
        case disabledReason = "disabled_reason"
    }

    init(_ endpoint: Endpoint, revealSecrets: Bool = false) {
        id = endpoint.id
        url = revealSecrets ? endpoint.url : RedactedURL(endpoint.url).description
        events = endpoint.events
        headers = revealSecrets ? endpoint.headers : endpoint.headers.mapValues { _ in "…" }
        enabled = endpoint.enabled
        fromConfig = endpoint.fromConfig
        _rateLimit = AlwaysPresent(wrappedValue: endpoint.rateLimit?.description)
        _disabledReason = AlwaysPresent(wrappedValue: endpoint.disabledReason)
        _description = AlwaysPresent(wrappedValue: endpoint.description)
        _retry = AlwaysPresent(wrappedValue: endpoint.retry.map { RetryView(schedule: $0.schedule, jitter: $0.jitter) })
        secrets = endpoint.secrets.map { secret in
            SecretView(secret: revealSecrets ? secret.secret : String(secret.secret.prefix(10)) + "…", expiresAt: secret.expiresAt.map(Timestamp.iso8601))
        }
    }
}

struct RetryView: Codable, Sendable, Equatable {
    /// Seconds to wait before each attempt.
    var schedule: [Double]
    var jitter: Double
}

struct SecretView: Codable, Sendable, Equatable {
    var secret: String
    /// When an old secret stops being used after a rotation; null for the current one.
    @AlwaysPresent var expiresAt: String?

    enum CodingKeys: String, CodingKey {
        case secret
        case expiresAt = "expires_at"
    }

    init(secret: String, expiresAt: String?) {
        self.secret = secret
        _expiresAt = AlwaysPresent(wrappedValue: expiresAt)
    }
}

// MARK: sources

/// A source with how many events it holds (`GET /api/v1/sources`).
struct SourceView: Codable, Sendable, Equatable {
    var id: String
    /// The provider scheme (`stripe`, `hmac`, …); `api` for events published through the API.
    var provider: String
    /// Events of this source in the store (after retention).
    var events: Int
    @AlwaysPresent var lastEventAt: String?

    enum CodingKeys: String, CodingKey {
        case id, provider, events
        case lastEventAt = "last_event_at"
    }

    init(id: String, provider: String, events: Int, lastEventAt: Date?) {
        self.id = id
        self.provider = provider
        self.events = events
        _lastEventAt = AlwaysPresent(wrappedValue: lastEventAt.map(Timestamp.iso8601))
    }
}
