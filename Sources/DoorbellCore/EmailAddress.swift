/// The one check every email address passes before it reaches a header or an SMTP command
/// (to, cc, bcc, reply-to, from): a plain RFC 5321 mailbox `local@domain`, deliberately strict,
/// because addresses come from webhook bodies and a CR/LF or `>` in one is a command to the mail
/// server (`ok@example.com>\r\nRCPT TO:<smuggled@evil.example`).
///
/// Accepted: a dot-atom local part (letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots between
/// them) of at most 64 bytes, `@`, a domain of letter/digit/hyphen labels (1–63 each, no hyphen at
/// either end, at least two labels) of at most 253 bytes; 254 bytes in all. Refused: quoted local
/// parts, address literals (`[127.0.0.1]`), display names, non-ASCII (write an international domain
/// in its `xn--` form), spaces and every control character.
public enum EmailAddress {
    public static let maxLength = 254

    /// Whether `text` is one acceptable address.
    public static func isValid(_ text: String) -> Bool {
        problem(text) == nil
    }

    /// Why `text` is not an acceptable address, or nil when it is.
    public static func problem(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return "empty" }
        guard bytes.count <= maxLength else { return "longer than \(maxLength) bytes" }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "contains a control character (CR, LF, tab…)" }
        if bytes.contains(where: { $0 >= 0x80 }) { return "contains non-ASCII characters" }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { return "no @" }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        guard !local.isEmpty else { return "nothing before the @" }
        guard local.count <= 64 else { return "the part before the @ is longer than 64 bytes" }
        guard local.allSatisfy({ isAtext($0) || $0 == UInt8(ascii: ".") }) else {
            return "the part before the @ holds a character an address may not (space, <, >, @, quotes, brackets, comma…)"
        }
        guard local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."), !hasDoubleDot(local) else {
            return "a dot at the start or end of the part before the @, or two in a row"
        }
        guard !domain.isEmpty else { return "no domain after the @" }
        guard domain.count <= 253 else { return "the domain is longer than 253 bytes" }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return "the domain needs a dot (example.com)" }
        for label in labels {
            guard !label.isEmpty, label.count <= 63,
                label.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") }),
                label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-")
            else { return "the domain is not a host name (letters, digits and hyphens between dots)" }
        }
        return nil
    }

    /// `text` quoted for an error message: escapes shown (`\r\n`), at most 80 characters, so a
    /// hostile value can neither forge a log line nor flood one.
    public static func quoted(_ text: String) -> String {
        let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
        return String(reflecting: shown)
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// RFC 5322 `atext`.
    private static func isAtext(_ byte: UInt8) -> Bool {
        isLetterOrDigit(byte) || Array("!#$%&'*+/=?^_`{|}~-".utf8).contains(byte)
    }

    private static func hasDoubleDot(_ bytes: ArraySlice<UInt8>) -> Bool {
        zip(bytes, bytes.dropFirst()).contains { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }
    }
}
