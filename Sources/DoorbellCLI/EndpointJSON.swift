import DoorbellCore
import Foundation

/// The JSON shape of an endpoint in `doorbell endpoints list --json`: the API's fields, with its URL
/// redacted, header values hidden and only the number of signing secrets (secrets are shown whole
/// only by `rotate-secret`, `add` and the API's `…/secret`).
struct EndpointJSON: Encodable {
    let id: String
    let url: String
    let events: [String]
    let enabled: Bool
    let disabledReason: String?
    let rateLimit: String?
    let headers: [String: String]
    let signingSecrets: Int
    let fromConfig: Bool
    let description: String?

    enum CodingKeys: String, CodingKey {
        case id, url, events, enabled, headers, description
        case disabledReason = "disabled_reason", rateLimit = "rate_limit", signingSecrets = "signing_secrets", fromConfig = "from_config"
    }

    init(_ endpoint: Endpoint, now: Date) {
        id = endpoint.id
        url = RedactedURL(endpoint.url).description
        events = endpoint.events
        enabled = endpoint.enabled
        disabledReason = endpoint.disabledReason
        rateLimit = endpoint.rateLimit?.description
        headers = endpoint.headers.mapValues { _ in "…" }
        signingSecrets = endpoint.signingSecrets(now: now).count
        fromConfig = endpoint.fromConfig
        description = endpoint.description
    }

    /// Encodes nil fields as null, so every object has the same keys.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(url, forKey: .url)
        try container.encode(events, forKey: .events)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(disabledReason, forKey: .disabledReason)
        try container.encode(rateLimit, forKey: .rateLimit)
        try container.encode(headers, forKey: .headers)
        try container.encode(signingSecrets, forKey: .signingSecrets)
        try container.encode(fromConfig, forKey: .fromConfig)
        try container.encode(description, forKey: .description)
    }
}
