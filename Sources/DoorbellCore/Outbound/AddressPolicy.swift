import Foundation

/// Which addresses outbound requests may reach. Private, loopback, link-local, CGNAT, metadata and
/// other special-purpose ranges are refused (OWASP SSRF guidance) unless `allowPrivate` names them.
/// Pure: resolving names and connecting live in `OutboundHTTP`, which asks this for every address.
public struct AddressPolicy: Sendable, Equatable {
    /// CIDRs opened as exceptions (`outbound.allow_private`).
    public var allowPrivate: [CIDR]

    public init(allowPrivate: [CIDR] = []) {
        self.allowPrivate = allowPrivate
    }

    /// Ranges nobody outside may send us to, with the reason given on refusal.
    static let blocked: [(CIDR, String)] = [
        ("0.0.0.0/8", "'this network'"), ("10.0.0.0/8", "private (10/8)"), ("100.64.0.0/10", "carrier-grade NAT (100.64/10)"),
        ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local / cloud metadata"), ("172.16.0.0/12", "private (172.16/12)"),
        ("192.0.0.0/24", "IETF protocol assignments"), ("192.0.2.0/24", "documentation"), ("192.168.0.0/16", "private (192.168/16)"),
        ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"), ("::1/128", "loopback"), ("fc00::/7", "unique local (private)"), ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"), ("ff00::/8", "multicast"), ("2001:db8::/32", "documentation"), ("100::/64", "discard"),
    ].map { (CIDR($0.0)!, $0.1) }

    /// nil when `address` (16 bytes, IPv4 as IPv4-mapped) may be reached; otherwise why not.
    public func refusal(for address: [UInt8]) -> String? {
        precondition(address.count == 16)
        let text = Self.format(address)
        if allowPrivate.contains(where: { $0.contains(text) }) { return nil }
        for (range, reason) in Self.blocked where range.contains(text) {
            return "\(text) is \(reason)"
        }
        // IPv6 forms that carry an IPv4 address inside: IPv4-compatible (::a.b.c.d), NAT64
        // (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48). Judge the IPv4 address they lead to.
        var embedded: [UInt8]?
        if address[0..<12].allSatisfy({ $0 == 0 }) { embedded = Array(address[12..<16]) }
        if address[0..<12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0][...] { embedded = Array(address[12..<16]) }
        if address[0] == 0x20 && address[1] == 0x02 { embedded = Array(address[2..<6]) }
        if let embedded {
            let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + embedded
            if let reason = refusal(for: mapped) { return "\(text) embeds \(reason)" }
        }
        return nil
    }

    /// An IP literal as a host would be read by `inet_aton`/`getaddrinfo`, odd spellings included:
    /// `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, and IPv6 (with or without brackets). nil for a name.
    public static func parseLiteral(_ host: String) -> [UInt8]? {
        var text = host
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if text.contains(":") { return CIDR.parseAddress(text)?.0 }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            let lower = part.lowercased()
            let value: UInt64?
            if lower.hasPrefix("0x") {
                value = lower.count == 2 ? 0 : UInt64(lower.dropFirst(2), radix: 16)
            } else if lower.count > 1 && lower.hasPrefix("0") {
                value = UInt64(lower.dropFirst(), radix: 8)
            } else {
                value = UInt64(lower, radix: 10)
            }
            guard let value else { return nil }
            values.append(value)
        }
        // The last part fills all remaining bytes; earlier parts are one byte each.
        let lastBytes = 5 - values.count
        guard values.dropLast().allSatisfy({ $0 <= 0xff }), values.last! < (UInt64(1) << (8 * UInt64(lastBytes))) else { return nil }
        var bytes = values.dropLast().map { UInt8($0) }
        for shift in stride(from: lastBytes - 1, through: 0, by: -1) {
            bytes.append(UInt8((values.last! >> (8 * UInt64(shift))) & 0xff))
        }
        return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + bytes
    }

    /// Dotted IPv4 for mapped addresses, RFC 5952-ish IPv6 otherwise.
    public static func format(_ address: [UInt8]) -> String {
        if address[0..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff][...] {
            return address[12..<16].map(String.init).joined(separator: ".")
        }
        var groups: [String] = []
        for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(address[index]) << 8 | UInt16(address[index + 1]), radix: 16))
        }
        // Compress the longest run of zero groups.
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            if groups[index] == "0" {
                var end = index
                while end < 8 && groups[end] == "0" { end += 1 }
                if end - index > best.length && end - index > 1 { best = (index, end - index) }
                index = end
            } else {
                index += 1
            }
        }
        if best.start < 0 { return groups.joined(separator: ":") }
        let head = groups[..<best.start].joined(separator: ":")
        let tail = groups[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }
}
