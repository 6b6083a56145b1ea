import Foundation

/// Event ids: `evt_` + 26 Crockford base32 characters (48-bit millisecond time + 80 random bits),
/// so ids sort by arrival time and never collide in practice, without a round trip to the store.
public enum EventID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func generate(prefix: String = "evt_", now: Date = Date()) -> String {
        var rng = SystemRandomNumberGenerator()
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let high = UInt64(rng.next() as UInt16)
        let low = rng.next() as UInt64
        // 128 bits: 48 time | 16 + 64 random. Emit 26 chars of 5 bits (130 bits, top 2 zero).
        var chars = [UInt8](repeating: 0, count: 26)
        var hi = (millis << 16) | high  // bits 127...64
        var lo = low                    // bits 63...0
        for index in stride(from: 25, through: 0, by: -1) {
            chars[index] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return prefix + String(decoding: chars, as: UTF8.self)
    }
}
