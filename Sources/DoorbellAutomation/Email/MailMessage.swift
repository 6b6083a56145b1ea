import DoorbellCore
import Foundation

/// An email as proper MIME: text and optional HTML as alternatives, attachments, UTF-8 headers
/// encoded per RFC 2047. Free text in headers (subject, attachment names) can never start a header
/// of its own: control characters become spaces, and anything but short printable ASCII is sent as
/// encoded words. Addresses are checked by `EmailAddress` before a message is built or sent.
public struct MailMessage: Sendable {
    public struct Attachment: Sendable {
        public var filename: String
        public var contentType: String
        public var data: Data

        public init(filename: String, contentType: String, data: Data) {
            self.filename = filename
            self.contentType = contentType
            self.data = data
        }
    }

    public var from: String
    public var to: [String]
    public var cc: [String]
    /// Envelope recipients only: never written into a header.
    public var bcc: [String]
    public var replyTo: [String]
    public var subject: String
    public var text: String?
    public var html: String?
    public var attachments: [Attachment]
    /// Stable across retries, so a receiver can recognise a repeat (`<run>-<step>@doorbell`).
    public var messageID: String
    public var date: Date

    public init(from: String, to: [String], cc: [String] = [], bcc: [String] = [], replyTo: [String] = [], subject: String, text: String?, html: String? = nil, attachments: [Attachment] = [], messageID: String, date: Date = Date()) {
        self.from = from
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.replyTo = replyTo
        self.subject = subject
        self.text = text
        self.html = html
        self.attachments = attachments
        self.messageID = messageID
        self.date = date
    }

    /// Everyone in the envelope (`RCPT TO`), each once.
    var allRecipients: [String] {
        var seen: Set<String> = []
        return (to + cc + bcc).filter { seen.insert($0.lowercased()).inserted }
    }

    /// Every address the message would put on the wire, with the header it belongs to.
    var addresses: [(field: String, address: String)] {
        [("from", from)] + to.map { ("to", $0) } + cc.map { ("cc", $0) } + bcc.map { ("bcc", $0) } + replyTo.map { ("reply_to", $0) }
    }

    /// The message with CRLF line ends.
    public func rendered(boundarySeed: String = UUID().uuidString) -> String {
        var headers = [
            "From: \(from)",
            Self.addressHeader("To", to),
        ]
        if !cc.isEmpty { headers.append(Self.addressHeader("Cc", cc)) }
        if !replyTo.isEmpty { headers.append(Self.addressHeader("Reply-To", replyTo)) }
        let dateFormatter = DateFormatter()
        dateFormatter.locale = Locale(identifier: "en_US_POSIX")
        dateFormatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        headers += [
            "Subject: \(Self.encodeHeader(subject))",
            "Date: \(dateFormatter.string(from: date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
        ]
        let mixed = "mixed-\(boundarySeed)"
        let alternative = "alt-\(boundarySeed)"
        var body: [String] = []
        let textPart = Self.part(contentType: "text/plain; charset=utf-8", data: Data((text ?? "").utf8))
        let content: String
        if let html {
            content = "Content-Type: multipart/alternative; boundary=\"\(alternative)\"\r\n\r\n"
                + "--\(alternative)\r\n\(textPart)\r\n--\(alternative)\r\n"
                + Self.part(contentType: "text/html; charset=utf-8", data: Data(html.utf8))
                + "\r\n--\(alternative)--"
        } else {
            content = textPart
        }
        if attachments.isEmpty {
            return (headers + [content]).joined(separator: "\r\n")
        }
        headers.append("Content-Type: multipart/mixed; boundary=\"\(mixed)\"")
        body.append("--\(mixed)\r\n\(content)")
        for attachment in attachments {
            let (name, filename) = Self.filenameParameters(attachment.filename)
            let contentType = attachment.contentType.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F } ? attachment.contentType : "application/octet-stream"
            body.append("--\(mixed)\r\n" + Self.part(
                contentType: "\(contentType); name=\(name)", data: attachment.data,
                extra: "Content-Disposition: attachment; \(filename)\r\n"))
        }
        body.append("--\(mixed)--")
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + body.joined(separator: "\r\n")
    }

    /// An address list header, folded after each comma once it grows long, so no line passes
    /// SMTP's 998 characters however many recipients a step has.
    static func addressHeader(_ name: String, _ addresses: [String]) -> String {
        let line = "\(name): \(addresses.joined(separator: ", "))"
        return line.utf8.count <= 78 ? line : "\(name): \(addresses.joined(separator: ",\r\n "))"
    }

    /// The message ready for DATA: every line that starts with "." gets another (RFC 5321 4.5.2).
    func dotStuffed() -> String {
        rendered().components(separatedBy: "\r\n").map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n")
    }

    /// One MIME part, base64 in 76-character lines.
    private static func part(contentType: String, data: Data, extra: String = "") -> String {
        let encoded = data.base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return "Content-Type: \(contentType)\r\n\(extra)Content-Transfer-Encoding: base64\r\n\r\n\(encoded)"
    }

    /// Header text that stays one header: control characters (CR, LF, tab…) become spaces; short
    /// printable ASCII goes as it is, anything else as RFC 2047 encoded words (`=?UTF-8?B?…?=`, each
    /// at most 75 characters, whole characters only, folded onto continuation lines).
    static func encodeHeader(_ text: String) -> String {
        let clean = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" ? " " : $0 }))
        if clean.count <= 900, clean.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }), !clean.contains("=?") {
            return clean
        }
        // 39 bytes of UTF-8 are 52 characters of base64: with "=?UTF-8?B?" and "?=" a word is 64
        // characters, so even the first line ("Subject: " + word) stays within RFC 2047's 76.
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in clean {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 39, !chunk.isEmpty {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    /// The `name=` (Content-Type) and `filename=` (Content-Disposition) parameters for an
    /// attachment: quoted plain ASCII, or for other names an RFC 2047 `name` and an RFC 2231
    /// `filename*=UTF-8''…` that mail programs decode to the original name.
    static func filenameParameters(_ filename: String) -> (name: String, filename: String) {
        let printable = filename.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }
        if printable, !filename.isEmpty, filename.count <= 200 {
            return ("\"\(filename)\"", "filename=\"\(filename)\"")
        }
        let clean = String(String.UnicodeScalarView(filename.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(200)))
        return ("\"=?UTF-8?B?\(Data(clean.utf8).base64EncodedString())?=\"", "filename*=UTF-8''\(PercentEncoding.encode(clean))")
    }
}
