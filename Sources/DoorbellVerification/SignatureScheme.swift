import DoorbellCore
import Foundation

/// What a signature scheme sees of an inbound request.
public struct SignedRequest: Sendable {
    /// Headers with lower-cased names, in arrival order.
    public var headers: [Header]
    /// The raw body; signatures are always checked over these bytes, never a re-encoding.
    public var body: [UInt8]
    /// The full URL the provider called (`server.public_url` + path + query); Twilio signs it.
    public var url: String

    public init(headers: [Header], body: [UInt8], url: String = "") {
        self.headers = headers
        self.body = body
        self.url = url
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// A provider's signature scheme: verifies what arrives and signs what `doorbell trigger` sends.
/// One type per scheme; all comparisons are constant-time.
public protocol SignatureScheme: Sendable {
    /// Accepts when any signature in the request matches any of `secrets`; otherwise throws the reason.
    func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure)
    /// The headers a genuine sender would add when posting `body` to `url`, signed with `secret` at `now`.
    func sign(body: [UInt8], url: String, secret: String, now: Date) -> [Header]
    /// This scheme with the keys of `secrets` derived ahead of time, for a source whose secrets are
    /// known at start-up: `verify` with those same secrets then skips deriving them per request.
    func preparing(secrets: [String]) -> any SignatureScheme
}

extension SignatureScheme {
    public func preparing(secrets: [String]) -> any SignatureScheme { self }
}

/// Keys derived once from a source's secrets: building a `SymmetricKey` (or decoding a `whsec_`)
/// per secret on every request cost allocations on the ingest path. The description and mirror
/// show only how many there are, never a secret. `@unchecked` because swift-crypto's key types
/// are not marked Sendable; they are immutable values, only read after `init`.
struct PreparedKeys<Key>: @unchecked Sendable, CustomStringConvertible, CustomReflectable {
    private let secrets: [String]
    private let keys: [Key]

    init(_ secrets: [String], derive: (String) -> Key) {
        self.secrets = secrets
        self.keys = secrets.map(derive)
    }

    /// The keys for `secrets`: the prepared ones when these are the prepared secrets (a source
    /// passes the same array on every request, so this is usually an identity check), otherwise
    /// derived now.
    func keys(for secrets: [String], derive: (String) -> Key) -> [Key] {
        secrets == self.secrets ? keys : secrets.map(derive)
    }

    var description: String { "PreparedKeys(\(keys.count))" }
    var customMirror: Mirror { Mirror(self, children: ["count": keys.count]) }
}

/// Why a request was refused. The description is safe to log: it never contains a secret or the
/// expected signature.
public struct VerificationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case missingHeader(String)
        case malformedHeader(String, String)
        case signatureMismatch
        case timestampTooOld(seconds: Int)
        case timestampInFuture(seconds: Int)
    }

    public let reason: Reason

    public init(_ reason: Reason) { self.reason = reason }

    public static func missingHeader(_ name: String) -> Self { .init(.missingHeader(name)) }
    public static func malformedHeader(_ name: String, _ why: String) -> Self { .init(.malformedHeader(name, why)) }
    public static let signatureMismatch = Self(.signatureMismatch)

    public var description: String {
        switch reason {
        case .missingHeader(let name): "missing header \(name)"
        case .malformedHeader(let name, let why): "malformed header \(name): \(why)"
        case .signatureMismatch: "signature mismatch"
        case .timestampTooOld(let seconds): "timestamp \(seconds) s old"
        case .timestampInFuture(let seconds): "timestamp \(seconds) s in the future"
        }
    }

    /// A short label for metrics (`doorbell_rejections_total{reason=…}`).
    public var label: String {
        switch reason {
        case .missingHeader: "missing_header"
        case .malformedHeader: "malformed_header"
        case .signatureMismatch: "signature_mismatch"
        case .timestampTooOld: "timestamp_too_old"
        case .timestampInFuture: "timestamp_in_future"
        }
    }

    /// Most signatures one header may list. A sender lists one per secret of a rotation; each listed
    /// signature costs a MAC or an Ed25519 check per configured secret, so a forged header of hundreds
    /// would make every refusal expensive.
    public static let maxSignatures = 10

    /// The refusal for a header that lists more than `maxSignatures`.
    public static func tooManySignatures(_ header: String) -> Self {
        .malformedHeader(header, "too many signatures (more than \(maxSignatures))")
    }

    /// Checks a signed unix timestamp against `now` with `tolerance` seconds either way.
    public static func checkTimestamp(_ timestamp: Int, tolerance: Int, now: Date) throws(VerificationFailure) {
        let age = Int(now.timeIntervalSince1970.rounded(.down)) - timestamp
        if age > tolerance { throw VerificationFailure(.timestampTooOld(seconds: age)) }
        if -age > tolerance { throw VerificationFailure(.timestampInFuture(seconds: -age)) }
    }
}

extension ProviderKind {
    /// The scheme that verifies this provider's signatures, or nil for `none`.
    public func scheme(hmac: HMACSettings?) -> (any SignatureScheme)? {
        switch self {
        case .stripe: StripeScheme()
        case .hmac: HMACScheme(settings: hmac ?? HMACSettings())
        case .github: HMACScheme.github
        case .shopify: HMACScheme.shopify
        case .twilio: TwilioScheme()
        case .standard: StandardScheme()
        case .none: nil
        }
    }
}
