import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address range such as `3.18.12.63/32` or `2600:1f18::/32`. IPv4 is held as an
/// IPv4-mapped IPv6 address, so `::ffff:3.18.12.63` matches `3.18.12.63/32` too.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public let network: [UInt8]  // 16 bytes
    public let prefixLength: Int
    public let description: String

    /// Parses `address/prefix`, or a bare address (a single host).
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let (bytes, isV4) = CIDR.parseAddress(String(parts[0])) else { return nil }
        let maxPrefix = isV4 ? 32 : 128
        var prefix = maxPrefix
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maxPrefix).contains(value) else { return nil }
            prefix = value
        }
        self.prefixLength = isV4 ? prefix + 96 : prefix
        self.network = CIDR.mask(bytes, prefix: prefixLength)
        self.description = text
    }

    /// Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6 text) lies in this range.
    public func contains(_ address: String) -> Bool {
        guard let (bytes, _) = CIDR.parseAddress(address) else { return false }
        return CIDR.mask(bytes, prefix: prefixLength) == network
    }

    /// 16 bytes for an IPv4 or IPv6 address (IPv4 as `::ffff:a.b.c.d`), and whether it was IPv4.
    /// Only the standard dotted and colon spellings are accepted.
    public static func parseAddress(_ text: String) -> ([UInt8], Bool)? {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let percent = text.firstIndex(of: "%") { text = String(text[..<percent]) }  // zone id
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let raw = withUnsafeBytes(of: &v4) { Array($0) }
            return ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + raw, true)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return (withUnsafeBytes(of: &v6) { Array($0) }, false)
        }
        return nil
    }

    private static func mask(_ bytes: [UInt8], prefix: Int) -> [UInt8] {
        var result = bytes
        for index in 0..<16 {
            let bitsHere = max(0, min(8, prefix - index * 8))
            result[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return result
    }
}
