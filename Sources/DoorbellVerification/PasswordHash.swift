import Crypto
import Foundation

/// The dashboard password's stored form: PBKDF2-HMAC-SHA256 (RFC 8018) with a random 16-byte salt,
/// written `pbkdf2_sha256$<iterations>$<salt base64>$<hash base64>` (Django's layout). swift-crypto
/// has HMAC but no password hash, so PBKDF2 is built here from its HMAC: one 32-byte block, which
/// is exactly PBKDF2 with dkLen 32 (Python's `hashlib.pbkdf2_hmac('sha256', …)` gives the same bytes).
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible {
    public static let defaultIterations = 310_000
    public let iterations: Int
    public let salt: [UInt8]
    public let hash: [UInt8]

    /// Hashes `password` with a fresh salt.
    public static func make(password: String, iterations: Int = defaultIterations) -> PasswordHash {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        return PasswordHash(iterations: iterations, salt: salt, hash: pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations))
    }

    init(iterations: Int, salt: [UInt8], hash: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.hash = hash
    }

    /// Reads the stored form; nil when it is not one (the config check names the problem).
    public init?(_ text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2_sha256", let iterations = Int(parts[1]), (1_000...10_000_000).contains(iterations),
              let salt = Data(base64Encoded: String(parts[2])), salt.count >= 8,
              let hash = Data(base64Encoded: String(parts[3])), hash.count == 32 else { return nil }
        self.init(iterations: iterations, salt: [UInt8](salt), hash: [UInt8](hash))
    }

    public var description: String {
        "pbkdf2_sha256$\(iterations)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// Whether `password` is the one hashed, compared in constant time.
    public func matches(_ password: String) -> Bool {
        let candidate = Self.pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations)
        var difference: UInt8 = 0
        for index in 0..<hash.count { difference |= hash[index] ^ candidate[index] }
        return difference == 0
    }

    /// PBKDF2-HMAC-SHA256, first (and only) 32-byte block.
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var block = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var result = block
        for _ in 1..<iterations {
            block = Array(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for index in 0..<result.count { result[index] ^= block[index] }
        }
        return result
    }
}
