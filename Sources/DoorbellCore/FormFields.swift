import Foundation

/// `application/x-www-form-urlencoded` bodies, parsed from the bytes in one pass: a body is hostile
/// and may be a megabyte of tiny fields, so there is no per-field Foundation decoding and no
/// per-field work at all past `maxFields` (ingest refuses such a body before verifying it).
public enum FormFields {
    /// Most fields a form body may have. Providers send a few dozen; ingest refuses more (413)
    /// before the signature check, which for Twilio would otherwise sort and hash every field.
    public static let maxFields = 1000

    /// Whether a `Content-Type` value announces a form body.
    public static func isForm(contentType: String?) -> Bool {
        contentType?.lowercased().hasPrefix(formType) ?? false
    }

    private static let formType = "application/x-www-form-urlencoded"

    /// The number of fields (non-empty `&`-separated pieces), counted no further than `limit + 1`,
    /// so a body of a million fields costs as little as one just over the limit.
    public static func count(_ body: [UInt8], limit: Int = maxFields) -> Int {
        body.withUnsafeBufferPointer { buffer in
            var fields = 0
            var start = 0
            while start < buffer.count {
                let end = find(ampersand, in: buffer, from: start)
                if end > start {
                    fields += 1
                    if fields > limit { break }
                }
                start = end + 1
            }
            return fields
        }
    }

    /// Name/value pairs in order, percent- and plus-decoded; at most `limit` of them (the rest of
    /// the body is not looked at). A name or value whose escapes are broken, or that does not
    /// decode to UTF-8, is kept as it arrived, as Foundation's `removingPercentEncoding` fallback did.
    public static func pairs(_ body: [UInt8], limit: Int = maxFields) -> [(String, String)] {
        body.withUnsafeBufferPointer { buffer in
            var pairs: [(String, String)] = []
            var start = 0
            while start < buffer.count, pairs.count < limit {
                let end = find(ampersand, in: buffer, from: start)
                if end > start {
                    let equals = find(UInt8(ascii: "="), in: buffer, from: start, to: end)
                    let name = decode(UnsafeBufferPointer(rebasing: buffer[start..<equals]))
                    let value = equals < end ? decode(UnsafeBufferPointer(rebasing: buffer[(equals + 1)..<end])) : ""
                    pairs.append((name, value))
                }
                start = end + 1
            }
            return pairs
        }
    }

    private static let ampersand = UInt8(ascii: "&")

    /// The index of the first `byte` in `buffer[start..<end]`, or `end` (`memchr`: this runs over
    /// every byte of a body, and a byte loop is slow in a debug build).
    private static func find(_ byte: UInt8, in buffer: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int? = nil) -> Int {
        let end = end ?? buffer.count
        guard start < end, let base = buffer.baseAddress, let found = memchr(base + start, Int32(byte), end - start) else { return end }
        return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
    }

    /// `+` → space, `%XX` → the byte; the raw text when an escape is broken or the bytes are not UTF-8.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let plus = find(UInt8(ascii: "+"), in: bytes, from: 0)
        let percent = find(UInt8(ascii: "%"), in: bytes, from: 0)
        guard plus < bytes.count || percent < bytes.count else { return String(decoding: bytes, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        // Up to the first escape as it is, then byte by byte.
        var index = min(plus, percent)
        decoded.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[0..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                decoded.append(UInt8(ascii: " "))
                index += 1
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    return String(decoding: bytes, as: UTF8.self)
                }
                decoded.append(high << 4 | low)
                index += 3
            } else {
                decoded.append(byte)
                index += 1
            }
        }
        return String(validating: decoded, as: UTF8.self) ?? String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
