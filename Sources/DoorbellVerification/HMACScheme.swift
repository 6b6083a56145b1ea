import Crypto
import DoorbellCore
import Foundation

/// The generic HMAC scheme of form builders, shop plugins and adnanh/webhook-style senders:
/// a configurable header holding `prefix + encode(HMAC(secret, raw body))`.
public struct HMACScheme: SignatureScheme {
    public let settings: HMACSettings
    private var prepared: PreparedKeys<SymmetricKey>?

    public init(settings: HMACSettings) {
        self.settings = settings
    }

    public func preparing(secrets: [String]) -> any SignatureScheme {
        var scheme = self
        scheme.prepared = PreparedKeys(secrets, derive: Self.key)
        return scheme
    }

    private static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    public static let github = HMACScheme(settings: HMACSettings(header: "X-Hub-Signature-256", algorithm: .sha256, encoding: .hex, prefix: "sha256="))
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body.
    public static let shopify = HMACScheme(settings: HMACSettings(header: "X-Shopify-Hmac-Sha256", algorithm: .sha256, encoding: .base64, prefix: ""))

    public func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure) {
        guard let value = request.header(settings.header) else { throw .missingHeader(settings.header) }
        var text = HeaderText.trimmingWhitespace(value)
        if !settings.prefix.isEmpty {
            // Prefixes such as "sha256=" are compared case-insensitively, as senders vary.
            guard text.lowercased().hasPrefix(settings.prefix.lowercased()) else {
                throw .malformedHeader(settings.header, "expected the prefix '\(settings.prefix)'")
            }
            text = text.dropFirst(settings.prefix.count)
        }
        let decoded: [UInt8]? = switch settings.encoding {
        case .hex: ByteEncoding.fromHex(text)
        case .base64: ByteEncoding.fromBase64(text)
        }
        guard let candidate = decoded else { throw .malformedHeader(settings.header, "not \(settings.encoding.rawValue)") }
        var timestamp: Int?
        if let timestampHeader = settings.timestampHeader {
            guard let text = request.header(timestampHeader) else { throw .missingHeader(timestampHeader) }
            guard let value = Int(HeaderText.trimmingWhitespace(text)) else { throw .malformedHeader(timestampHeader, "not a unix time") }
            timestamp = value
        }
        let signed = signedContent(body: request.body, timestamp: timestamp)
        let keys = prepared?.keys(for: secrets, derive: Self.key) ?? secrets.map(Self.key)
        guard keys.contains(where: { isValid(candidate, body: signed, key: $0) }) else { throw .signatureMismatch }
        if let timestamp { try VerificationFailure.checkTimestamp(timestamp, tolerance: tolerance, now: now) }
    }

    /// The raw body, or `"{timestamp}.{body}"` when the scheme signs a timestamp.
    private func signedContent(body: [UInt8], timestamp: Int?) -> [UInt8] {
        guard let timestamp else { return body }
        return Array("\(timestamp).".utf8) + body
    }

    public func sign(body: [UInt8], url: String, secret: String, now: Date) -> [Header] {
        let timestamp = settings.timestampHeader.map { _ in Int(now.timeIntervalSince1970) }
        let body = signedContent(body: body, timestamp: timestamp)
        let key = SymmetricKey(data: Array(secret.utf8))
        let bytes: [UInt8] = switch settings.algorithm {
        case .sha1: Array(HMAC<Insecure.SHA1>.authenticationCode(for: body, using: key))
        case .sha256: Array(HMAC<SHA256>.authenticationCode(for: body, using: key))
        case .sha512: Array(HMAC<SHA512>.authenticationCode(for: body, using: key))
        }
        let encoded = switch settings.encoding {
        case .hex: ByteEncoding.hex(bytes)
        case .base64: Data(bytes).base64EncodedString()
        }
        var headers = [Header(name: settings.header, value: settings.prefix + encoded)]
        if let name = settings.timestampHeader, let timestamp { headers.append(Header(name: name, value: String(timestamp))) }
        return headers
    }

    /// Constant-time check through swift-crypto.
    private func isValid(_ candidate: [UInt8], body: [UInt8], key: SymmetricKey) -> Bool {
        switch settings.algorithm {
        case .sha1: HMAC<Insecure.SHA1>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        case .sha256: HMAC<SHA256>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        case .sha512: HMAC<SHA512>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        }
    }
}
