import Foundation

/// An outbound subscriber: where Doorbell delivers its own events, signed the Standard Webhooks way.
public struct Endpoint: Sendable, Equatable {
    public var id: String
    public var url: String
    /// Event-type patterns with `*` wildcards (`order.*`); `["*"]` takes everything.
    public var events: [String]
    /// Signing secrets, newest first. During a rotation the old one stays until it expires and both
    /// signatures are sent.
    public var secrets: [EndpointSecret]
    /// At most this many deliveries per `rateWindow` seconds; nil means unlimited.
    public var rateLimit: RateLimit?
    /// Extra headers sent with every delivery.
    public var headers: [String: String]
    /// False when a person or the endpoint's own health (410 Gone, failing for days) disabled it.
    public var enabled: Bool
    public var disabledReason: String?
    /// Declared in `doorbell.yml` (the file stays the source of its URL, filter and secret) or added
    /// through the API / CLI (stored only in the database).
    public var fromConfig: Bool
    public var description: String?
    /// Overrides the global `retry:` schedule for this endpoint's deliveries.
    public var retry: RetryPolicy?

    public init(
        id: String, url: String, events: [String] = ["*"], secrets: [EndpointSecret] = [], rateLimit: RateLimit? = nil,
        headers: [String: String] = [:], enabled: Bool = true, disabledReason: String? = nil, fromConfig: Bool = false, description: String? = nil,
        retry: RetryPolicy? = nil
    ) {
        self.retry = retry
        self.id = id
        self.url = url
        self.events = events
        self.secrets = secrets
        self.rateLimit = rateLimit
        self.headers = headers
        self.enabled = enabled
        self.disabledReason = disabledReason
        self.fromConfig = fromConfig
        self.description = description
    }

    /// Whether events of `type` go to this endpoint.
    public func accepts(type: String) -> Bool {
        events.contains { EventPattern.glob($0, type) }
    }

    /// The secrets to sign with at `now`: every one not yet expired.
    public func signingSecrets(now: Date) -> [String] {
        secrets.filter { $0.expiresAt.map { $0 > now } ?? true }.map(\.secret)
    }

    /// Problems with the endpoint's own fields, each as `field: message`; empty when valid.
    public func problems() -> [(field: String, message: String)] {
        var problems: [(String, String)] = []
        if !Self.isValidID(id) {
            problems.append(("id", "use letters, digits, '-' and '_' (1–64 characters), found '\(id)'"))
        }
        if let url = URL(string: url), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), let host = url.host, !host.isEmpty {
        } else {
            problems.append(("url", "not an http(s) URL: '\(RedactedURL(url))'"))
        }
        if url.utf8.count > Self.maxURLBytes { problems.append(("url", "at most \(Self.maxURLBytes) bytes, found \(url.utf8.count)")) }
        if events.isEmpty { problems.append(("events", "list at least one event type pattern, e.g. \"*\"")) }
        if events.count > Self.maxEventPatterns { problems.append(("events", "at most \(Self.maxEventPatterns) patterns, found \(events.count)")) }
        if let long = events.first(where: { $0.utf8.count > EventLimits.maxTypeBytes }) {
            problems.append(("events", "a pattern must be at most \(EventLimits.maxTypeBytes) bytes, found \(long.utf8.count)"))
        }
        if headers.count > Self.maxHeaders { problems.append(("headers", "at most \(Self.maxHeaders) headers, found \(headers.count)")) }
        // A CR/LF in a header would fail (or split) every delivery; refused where it is entered.
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            if let problem = EventLimits.headerNameProblem(name) ?? EventLimits.headerValueProblem(value) {
                problems.append(("headers", "\(name.prefix(64)): \(problem)"))
            } else if Self.reservedHeaders.contains(name.lowercased()) || name.lowercased().hasPrefix("webhook-") {
                problems.append(("headers", "\(name.prefix(64)): set by Doorbell for every delivery (framing and signature), not configurable"))
            }
        }
        if let retry, retry.schedule.count > Self.maxRetryAttempts {
            problems.append(("retry", "at most \(Self.maxRetryAttempts) attempts in the schedule, found \(retry.schedule.count)"))
        }
        for secret in secrets where !EndpointSecret.looksValid(secret.secret) {
            problems.append(("secret", "expected whsec_<base64 of 24–64 bytes> or whsk_<base64 Ed25519 key>"))
        }
        return problems
    }

    /// Limits on what an endpoint may hold: the API takes endpoints from anyone with a token, and every
    /// delivery carries these values, so none of them may grow without bound.
    public static let maxURLBytes = 2048
    public static let maxEventPatterns = 100
    public static let maxHeaders = 32
    public static let maxRetryAttempts = 30
    /// Headers a delivery's framing and signature depend on (`webhook-*` too): never taken from configuration.
    static let reservedHeaders: Set<String> = ["host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "upgrade", "trailer", "expect"]

    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// One signing secret: `whsec_…` (HMAC, `v1`) or `whsk_…` (Ed25519, `v1a`).
public struct EndpointSecret: Sendable, Equatable, Codable {
    public var secret: String
    /// When a rotated-out secret stops being used; nil for the current one.
    public var expiresAt: Date?

    public init(secret: String, expiresAt: Date? = nil) {
        self.secret = secret
        self.expiresAt = expiresAt
    }

    /// A new `whsec_` secret of 32 random bytes.
    public static func generate() -> EndpointSecret {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return EndpointSecret(secret: "whsec_" + Data(bytes).base64EncodedString())
    }

    /// `whsec_` with 24–64 bytes of base64, or `whsk_` with a 32- or 64-byte Ed25519 key.
    public static func looksValid(_ text: String) -> Bool {
        if text.hasPrefix("whsec_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(6))) else { return false }
            return (24...64).contains(bytes.count)
        }
        if text.hasPrefix("whsk_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(5))) else { return false }
            return bytes.count == 32 || bytes.count == 64
        }
        return false
    }
}

/// `rate_limit: 10/s` (also `/m`, `/h`; a bare number means per second).
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    /// The window in seconds.
    public var window: Double

    public init(count: Int, window: Double) {
        self.count = count
        self.window = window
    }

    public init?(_ text: String) {
        let parts = text.replacingOccurrences(of: " ", with: "").split(separator: "/", omittingEmptySubsequences: false)
        guard let first = parts.first, let count = Int(first), count > 0, parts.count <= 2 else { return nil }
        let window: Double
        switch parts.count == 2 ? parts[1].lowercased() : "s" {
        case "s", "sec", "second": window = 1
        case "m", "min", "minute": window = 60
        case "h", "hour": window = 3600
        default: return nil
        }
        self.init(count: count, window: window)
    }

    public var description: String {
        switch window {
        case 60: "\(count)/m"
        case 3600: "\(count)/h"
        default: window == 1 ? "\(count)/s" : "\(count)/\(window)s"
        }
    }
}
