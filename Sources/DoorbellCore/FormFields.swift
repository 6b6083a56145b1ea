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
        var fields = 0
        var pieceLength = 0
        for byte in body {
            if byte == ampersand {
                if pieceLength > 0 { fields += 1 }
                if fields > limit { return fields }
                pieceLength = 0
            } else {
                pieceLength += 1
            }
        }
        return pieceLength > 0 ? fields + 1 : fields
    }

    /// Name/value pairs in order, percent- and plus-decoded; at most `limit` of them (the rest of
    /// the body is not looked at). A name or value whose escapes are broken, or that does not
    /// decode to UTF-8, is kept as it arrived, as Foundation's `removingPercentEncoding` fallback did.
    public static func pairs(_ body: [UInt8], limit: Int = maxFields) -> [(String, String)] {
        var pairs: [(String, String)] = []
        var start = body.startIndex
        while start < body.endIndex, pairs.count < limit {
            let end = body[start...].firstIndex(of: ampersand) ?? body.endIndex
            if end > start {
                let piece = body[start..<end]
                if let equals = piece.firstIndex(of: UInt8(ascii: "=")) {
                    pairs.append((decode(piece[..<equals]), decode(piece[(equals + 1)...])))
                } else {
                    pairs.append((decode(piece), ""))
                }
            }
            start = end + 1
        }
        return pairs
    }

    private static let ampersand = UInt8(ascii: "&")

    /// `+` → space, `%XX` → the byte; the raw text when an escape is broken or the bytes are not UTF-8.
    static func decode(_ bytes: ArraySlice<UInt8>) -> String {
        guard bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else {
            return String(decoding: bytes, as: UTF8.self)
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                decoded.append(UInt8(ascii: " "))
                index += 1
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                    let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
                else { return String(decoding: bytes, as: UTF8.self) }
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
