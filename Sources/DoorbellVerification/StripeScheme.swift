import Crypto
import DoorbellCore
import Foundation

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]` over `"{t}.{raw body}"`,
/// HMAC-SHA256. Only `v1` counts; any `v1` matching any secret passes.
public struct StripeScheme: SignatureScheme {
    public static let header = "Stripe-Signature"

    private var prepared: PreparedKeys<SymmetricKey>?

    public init() {}

    public func preparing(secrets: [String]) -> any SignatureScheme {
        var scheme = self
        scheme.prepared = PreparedKeys(secrets, derive: Self.key)
        return scheme
    }

    private static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    public func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure) {
        guard let value = request.header(Self.header) else { throw .missingHeader(Self.header) }
        var timestamp: Int?
        var candidates: [[UInt8]] = []
        var listed = 0
        for item in value.split(separator: ",") {
            let pair = HeaderText.trimmingWhitespace(item)
            guard let equals = pair.firstIndex(of: "=") else { continue }
            let key = pair[..<equals]
            let text = pair[pair.index(after: equals)...]
            switch key {
            case "t":
                guard timestamp == nil else { throw .malformedHeader(Self.header, "more than one t=") }
                guard let parsed = Int(text), parsed >= 0 else { throw .malformedHeader(Self.header, "t= is not a unix time") }
                timestamp = parsed
            case "v1":
                listed += 1
                guard listed <= VerificationFailure.maxSignatures else { throw .tooManySignatures(Self.header) }
                // A v1 that is not hex cannot match; keep looking at the others.
                if let bytes = ByteEncoding.fromHex(text), bytes.count == SHA256.byteCount { candidates.append(bytes) }
            default:
                continue  // v0 and unknown schemes are ignored, as Stripe's libraries do.
            }
        }
        guard let timestamp else { throw .malformedHeader(Self.header, "no t= timestamp") }
        guard !candidates.isEmpty else { throw .malformedHeader(Self.header, "no v1 signature") }
        let signed = Self.signedPayload(timestamp: timestamp, body: request.body)
        var matched = false
        for key in prepared?.keys(for: secrets, derive: Self.key) ?? secrets.map(Self.key) {
            let mac = HMAC<SHA256>.authenticationCode(for: signed, using: key)
            for candidate in candidates where mac == candidate { matched = true }
        }
        guard matched else { throw .signatureMismatch }
        // Checked after the signature, as Stripe does: a forged header learns nothing about the clock.
        try VerificationFailure.checkTimestamp(timestamp, tolerance: tolerance, now: now)
    }

    public func sign(body: [UInt8], url: String, secret: String, now: Date) -> [Header] {
        let timestamp = Int(now.timeIntervalSince1970)
        let mac = HMAC<SHA256>.authenticationCode(for: Self.signedPayload(timestamp: timestamp, body: body), using: SymmetricKey(data: Array(secret.utf8)))
        return [Header(name: Self.header, value: "t=\(timestamp),v1=\(ByteEncoding.hex(mac))")]
    }

    static func signedPayload(timestamp: Int, body: [UInt8]) -> [UInt8] {
        var payload = Array("\(timestamp).".utf8)
        payload.append(contentsOf: body)
        return payload
    }
}
