import Crypto
import DoorbellCore
import Foundation

/// The generic HMAC scheme of form builders, shop plugins and adnanh/webhook-style senders:
/// a configurable header holding `prefix + encode(HMAC(secret, raw body))`.
public struct HMACScheme: SignatureScheme {
    public let settings: HMACSettings

    public init(settings: HMACSettings) {
        self.settings = settings
    }

    public func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure) {
        guard let value = request.header(settings.header) else { throw .missingHeader(settings.header) }
        var text = Substring(value.trimmingCharacters(in: .whitespaces))
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
        for secret in secrets where isValid(candidate, body: request.body, secret: secret) {
            return
        }
        throw .signatureMismatch
    }

    public func sign(body: [UInt8], secret: String, now: Date) -> [Header] {
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
        return [Header(name: settings.header, value: settings.prefix + encoded)]
    }

    /// Constant-time check through swift-crypto.
    private func isValid(_ candidate: [UInt8], body: [UInt8], secret: String) -> Bool {
        let key = SymmetricKey(data: Array(secret.utf8))
        return switch settings.algorithm {
        case .sha1: HMAC<Insecure.SHA1>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        case .sha256: HMAC<SHA256>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        case .sha512: HMAC<SHA512>.isValidAuthenticationCode(candidate, authenticating: body, using: key)
        }
    }
}
