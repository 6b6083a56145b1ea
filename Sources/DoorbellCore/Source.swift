import Foundation

/// A source is an inbound URL `/hooks/{id}` with its provider scheme, secrets, tolerance,
/// allowed addresses and body limit.
public struct Source: Sendable, Equatable {
    /// The path segment in `/hooks/{id}`.
    public var id: String
    /// Which signature scheme and event conventions apply.
    public var provider: ProviderKind
    /// Every secret that is currently accepted; more than one during a rotation.
    public var secrets: [String]
    /// How far a signed timestamp may be from now, in seconds, either way.
    public var tolerance: Int
    /// CIDRs allowed to call this source; empty means any address.
    public var allowIPs: [String]
    /// The largest body accepted, in bytes; larger ones are refused with 413 while reading.
    public var maxBody: Int
    /// Settings of the generic `hmac` scheme.
    public var hmac: HMACSettings?
    /// Where the event type comes from, overriding the provider's convention.
    public var eventType: ValueRule?
    /// Where the dedupe key (the provider's own id) comes from, overriding the provider's convention.
    public var eventID: ValueRule?
    /// Endpoints every event of this source is relayed to (re-signed by Doorbell), `forward_to:`.
    public var forwardTo: [String]

    public init(
        id: String,
        provider: ProviderKind,
        secrets: [String] = [],
        tolerance: Int = Source.defaultTolerance,
        allowIPs: [String] = [],
        maxBody: Int = Source.defaultMaxBody,
        hmac: HMACSettings? = nil,
        eventType: ValueRule? = nil,
        eventID: ValueRule? = nil,
        forwardTo: [String] = []
    ) {
        self.forwardTo = forwardTo
        self.id = id
        self.provider = provider
        self.secrets = secrets
        self.tolerance = tolerance
        self.allowIPs = allowIPs
        self.maxBody = maxBody
        self.hmac = hmac
        self.eventType = eventType
        self.eventID = eventID
    }

    /// The source of events published through `POST /api/v1/events`.
    public static let apiID = "api"
    /// The source of Doorbell's own notices (`endpoint.disabled`).
    public static let noticesID = "doorbell"
    /// Ids no configured source may take.
    public static let reservedIDs = [apiID, noticesID]

    /// Stripe's and the Standard Webhooks libraries' default: five minutes.
    public static let defaultTolerance = 300
    /// 1 MiB: comfortably above Stripe's and Shopify's payloads; GitHub sources may raise it.
    public static let defaultMaxBody = 1 << 20
}

/// The provider schemes a source can use.
public enum ProviderKind: String, Sendable, CaseIterable {
    case stripe, github, shopify, twilio, standard, hmac, none

    /// Providers whose bodies are always JSON, so a body that does not parse is a 400.
    public var requiresJSONBody: Bool {
        switch self {
        case .stripe, .shopify, .standard: true
        case .github, .twilio, .hmac, .none: false  // GitHub may be set to send form posts
        }
    }
}

/// Settings of the generic HMAC scheme used by form builders and shop plugins.
public struct HMACSettings: Sendable, Equatable {
    public enum Algorithm: String, Sendable, CaseIterable { case sha1, sha256, sha512 }
    public enum Encoding: String, Sendable, CaseIterable { case hex, base64 }

    /// Header carrying the signature, e.g. `X-Signature`.
    public var header: String
    public var algorithm: Algorithm
    public var encoding: Encoding
    /// Text before the signature in the header, e.g. `sha256=`.
    public var prefix: String
    /// When set, the sender signs `"{timestamp}.{body}"` and puts the unix time in this header;
    /// the source's tolerance applies.
    public var timestampHeader: String?

    public init(header: String = "X-Signature", algorithm: Algorithm = .sha256, encoding: Encoding = .hex, prefix: String = "", timestampHeader: String? = nil) {
        self.header = header
        self.algorithm = algorithm
        self.encoding = encoding
        self.prefix = prefix
        self.timestampHeader = timestampHeader
    }
}

/// Where a value (event type or dedupe key) is read from.
public enum ValueRule: Sendable, Equatable {
    /// The same value for every event, e.g. `form.submitted`.
    case fixed(String)
    /// A JSON pointer into the body (`/type`); on a form post, `/name` reads the field `name`.
    case pointer(JSONPointer)
    /// A request header, from `header:Name`.
    case header(String)

    /// Parses the config notation: `/pointer`, `header:Name`, or a fixed literal.
    public static func parse(_ text: String) -> ValueRule? {
        if text.hasPrefix("/") { return JSONPointer(text).map(ValueRule.pointer) }
        if text.lowercased().hasPrefix("header:") {
            let name = text.dropFirst("header:".count).trimmingCharacters(in: .whitespaces)
            return name.isEmpty ? nil : .header(name)
        }
        return text.isEmpty ? nil : .fixed(text)
    }
}
