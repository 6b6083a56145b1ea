import Crypto
import DoorbellCore
import Foundation
import Synchronization

/// Standard Webhooks: `webhook-signature: v1,<b64> v1a,<b64> …` over `"{webhook-id}.{webhook-timestamp}.{body}"`.
/// `v1` is HMAC-SHA256 keyed with the base64 after `whsec_`; `v1a` is Ed25519, verified with `whpk_`
/// public keys and signed with `whsk_` secret keys. Any match passes; the timestamp must be within the
/// tolerance either way. Svix's `svix-*` header names are accepted too.
public struct StandardScheme: SignatureScheme {
    private var prepared: PreparedKeys<StandardKey?>?

    public init() {}

    public func preparing(secrets: [String]) -> any SignatureScheme {
        var scheme = self
        scheme.prepared = PreparedKeys(secrets, derive: StandardKey.init)
        return scheme
    }

    public func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure) {
        let (id, _) = try Self.header("webhook-id", request)
        let (timestampText, timestampName) = try Self.header("webhook-timestamp", request)
        let (signatures, signatureName) = try Self.header("webhook-signature", request)
        guard let timestamp = Int(HeaderText.trimmingWhitespace(timestampText)) else {
            throw .malformedHeader(timestampName, "not a unix time")
        }
        let payload = Self.signedPayload(id: id, timestamp: timestamp, body: request.body)
        var hmacCandidates: [[UInt8]] = []
        var ed25519Candidates: [[UInt8]] = []
        let entries = signatures.split(separator: " ", maxSplits: VerificationFailure.maxSignatures)
        guard entries.count <= VerificationFailure.maxSignatures else { throw .tooManySignatures(signatureName) }
        for entry in entries {
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, let bytes = ByteEncoding.fromBase64(parts[1]) else { continue }
            switch parts[0] {
            case "v1": hmacCandidates.append(bytes)
            case "v1a": ed25519Candidates.append(bytes)
            default: continue
            }
        }
        guard !hmacCandidates.isEmpty || !ed25519Candidates.isEmpty else {
            throw .malformedHeader(signatureName, "no v1 or v1a signature")
        }
        var matched = false
        for key in prepared?.keys(for: secrets, derive: StandardKey.init) ?? secrets.map(StandardKey.init) where !matched {
            switch key {
            case .hmac(let key):
                matched = hmacCandidates.contains { HMAC<SHA256>.isValidAuthenticationCode($0, authenticating: payload, using: key) }
            case .publicKey(let key):
                matched = ed25519Candidates.contains { key.isValidSignature($0, for: payload) }
            case .privateKey(let key):
                matched = ed25519Candidates.contains { key.publicKey.isValidSignature($0, for: payload) }
            case nil:
                continue
            }
        }
        guard matched else { throw .signatureMismatch }
        try VerificationFailure.checkTimestamp(timestamp, tolerance: tolerance, now: now)
    }

    public func sign(body: [UInt8], url: String, secret: String, now: Date) -> [Header] {
        let id = "msg_" + EventID.generate(prefix: "", now: now)
        let timestamp = Int(now.timeIntervalSince1970)
        let payload = Self.signedPayload(id: id, timestamp: timestamp, body: body)
        // A public key cannot sign: no signature, and the receiver will refuse, which is the truth.
        let signature = StandardSigningKey(secret)?.signature(payload) ?? ""
        return [
            Header(name: "webhook-id", value: id),
            Header(name: "webhook-timestamp", value: String(timestamp)),
            Header(name: "webhook-signature", value: signature),
        ]
    }

    static func signedPayload(id: String, timestamp: Int, body: [UInt8]) -> [UInt8] {
        var payload = Array("\(id).\(timestamp).".utf8)
        payload.append(contentsOf: body)
        return payload
    }

    /// A `webhook-*` header, or its `svix-*` twin.
    private static func header(_ name: String, _ request: SignedRequest) throws(VerificationFailure) -> (String, String) {
        if let value = request.header(name) { return (value, name) }
        let svix = name.replacingOccurrences(of: "webhook-", with: "svix-")
        if let value = request.header(svix) { return (value, svix) }
        throw .missingHeader(name)
    }
}

/// A Standard Webhooks key from its text form.
public enum StandardKey {
    case hmac(SymmetricKey)
    case publicKey(Curve25519.Signing.PublicKey)
    case privateKey(Curve25519.Signing.PrivateKey)

    /// `whsec_<base64>` (or bare base64, as the reference libraries accept), `whpk_<base64 32 bytes>`,
    /// `whsk_<base64 32-byte seed, or 64 bytes seed+public>`; nil when it is none of these.
    public init?(_ text: String) {
        if text.hasPrefix("whpk_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(5))), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else { return nil }
            self = .publicKey(key)
        } else if text.hasPrefix("whsk_") {
            guard let bytes = Data(base64Encoded: String(text.dropFirst(5))), bytes.count == 32 || bytes.count == 64,
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: bytes.prefix(32))
            else { return nil }
            self = .privateKey(key)
        } else {
            let encoded = text.hasPrefix("whsec_") ? String(text.dropFirst(6)) : text
            guard let bytes = Data(base64Encoded: encoded), !bytes.isEmpty else { return nil }
            self = .hmac(SymmetricKey(data: bytes))
        }
    }
}

/// A secret ready to sign with: for `whsec_`, the HMAC keyed once (base64 decoded, key padded,
/// inner and outer pads hashed), so a signature costs only hashing the payload; for `whsk_`, the
/// Ed25519 private key. Nil for a public key or text that is no key (neither can sign).
struct StandardSigningKey: @unchecked Sendable {
    // @unchecked: `HMAC` is a value whose hash state is copied before it is first changed
    // (swift-crypto's digests are copy-on-write), so a shared keyed HMAC is only ever read.
    private enum Kind {
        case hmac(HMAC<SHA256>)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    private let kind: Kind

    init?(_ secret: String) {
        switch StandardKey(secret) {
        case .hmac(let key): kind = .hmac(HMAC<SHA256>(key: key))
        case .privateKey(let key): kind = .ed25519(key)
        case .publicKey, nil: return nil
        }
    }

    /// `v1,<base64>` or `v1a,<base64>` over `payload`.
    func signature(_ payload: [UInt8]) -> String? {
        switch kind {
        case .hmac(let keyed):
            var mac = keyed
            mac.update(data: payload)
            return "v1," + Data(mac.finalize()).base64EncodedString()
        case .ed25519(let key):
            return (try? key.signature(for: payload)).map { "v1a," + $0.base64EncodedString() }
        }
    }
}

/// Signs outbound deliveries with each secret's key prepared once and kept (`StandardSigningKey`):
/// decoding the secret and keying the HMAC cost more than signing a small body, on every attempt.
/// At most `capacity` secrets are kept; past that the kept keys are dropped and prepared again.
public final class StandardSigner: Sendable, CustomReflectable {
    private let keys = Mutex<[String: StandardSigningKey?]>([:])
    private let capacity: Int

    public init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    /// The `webhook-signature` value for an outbound delivery: one signature per secret (`v1` for
    /// whsec_, `v1a` for whsk_), space-separated, so a receiver holding either secret of a rotation verifies.
    public func signatureHeader(id: String, timestamp: Int, body: [UInt8], secrets: [String]) -> String {
        let payload = StandardScheme.signedPayload(id: id, timestamp: timestamp, body: body)
        var signatures: [String] = []
        signatures.reserveCapacity(secrets.count)
        for secret in secrets {
            if let signature = key(secret)?.signature(payload) { signatures.append(signature) }
        }
        return signatures.joined(separator: " ")
    }

    /// A dump shows how many keys are kept, never the secrets they are kept under.
    public var customMirror: Mirror { Mirror(self, children: ["kept": keys.withLock { $0.count }]) }

    private func key(_ secret: String) -> StandardSigningKey? {
        if let kept = keys.withLock({ $0[secret] }) { return kept }
        let prepared = StandardSigningKey(secret)
        keys.withLock { keys in
            // Another task may have kept it meanwhile: no reason to drop the others then.
            guard keys[secret] == nil else { return }
            if keys.count >= capacity { keys.removeAll() }
            keys[secret] = prepared
        }
        return prepared
    }
}
