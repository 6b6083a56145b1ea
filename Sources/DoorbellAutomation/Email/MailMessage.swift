import Foundation

/// An email as proper MIME: text and optional HTML as alternatives, attachments, UTF-8 headers
/// encoded per RFC 2047.
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
    public var subject: String
    public var text: String?
    public var html: String?
    public var attachments: [Attachment]
    /// Stable across retries, so a receiver can recognise a repeat (`<run>-<step>@doorbell`).
    public var messageID: String
    public var date: Date

    public init(from: String, to: [String], cc: [String] = [], subject: String, text: String?, html: String? = nil, attachments: [Attachment] = [], messageID: String, date: Date = Date()) {
        self.from = from
        self.to = to
        self.cc = cc
        self.subject = subject
        self.text = text
        self.html = html
        self.attachments = attachments
        self.messageID = messageID
        self.date = date
    }

    var allRecipients: [String] { to + cc }

    /// The message with CRLF line ends.
    public func rendered(boundarySeed: String = UUID().uuidString) -> String {
        var headers = [
            "From: \(from)",
            "To: \(to.joined(separator: ", "))",
        ]
        if !cc.isEmpty { headers.append("Cc: \(cc.joined(separator: ", "))") }
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
            let name = attachment.filename.replacingOccurrences(of: "\"", with: "")
            body.append("--\(mixed)\r\n" + Self.part(
                contentType: "\(attachment.contentType); name=\"\(name)\"", data: attachment.data,
                extra: "Content-Disposition: attachment; filename=\"\(name)\"\r\n"))
        }
        body.append("--\(mixed)--")
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + body.joined(separator: "\r\n")
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

    /// RFC 2047 for non-ASCII header text.
    static func encodeHeader(_ text: String) -> String {
        guard !text.allSatisfy(\.isASCII) else { return text }
        return "=?utf-8?B?\(Data(text.utf8).base64EncodedString())?="
    }
}
