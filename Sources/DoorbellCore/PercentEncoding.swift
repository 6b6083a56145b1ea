/// Percent-encoding of text as one opaque component: every UTF-8 byte outside RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`. The result is safe as a URL path segment, a
/// query name or value, and an RFC 2231 parameter value (unreserved is a subset of its attr-char),
/// so one definition serves URL templates and mail attachment names alike.
public enum PercentEncoding {
    public static func encode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".unicodeScalars)
        var encoded = String.UnicodeScalarView()
        for byte in text.utf8 {
            if isUnreserved(byte) {
                encoded.append(Unicode.Scalar(byte))
            } else {
                encoded.append("%")
                encoded.append(hex[Int(byte >> 4)])
                encoded.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(encoded)
    }

    /// RFC 3986 unreserved: `A-Z a-z 0-9 - . _ ~`.
    public static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}
