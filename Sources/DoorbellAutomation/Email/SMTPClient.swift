import DoorbellCore
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A small SMTP client on SwiftNIO: plain, STARTTLS or implicit TLS; AUTH PLAIN or LOGIN; one message
/// per connection. Errors say whether a retry can help (4xx replies and network trouble) or not (5xx).
///
/// Defences: every address is checked (`EmailAddress`) before a byte is sent, so none can carry a
/// command; the whole session, and so every read, ends at `settings.timeout`; a reply line over
/// `SMTPConversation.maxLine` bytes or a reply of more than `maxLines` lines is an error; bytes the
/// server sent before TLS began (after its `220` to STARTTLS) are refused, never read as if TLS had
/// protected them (the STARTTLS command injection of CVE-2011-0411).
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings

    public init(settings: SMTPSettings) {
        self.settings = settings
    }

    /// The outcome of a send: who was accepted and who was refused (with the server's reply).
    public struct Receipt: Sendable {
        public var accepted: [String]
        public var rejected: [String: String]
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public let retryable: Bool
    }

    public func send(_ message: MailMessage) async throws(Failure) -> Receipt {
        for (field, address) in message.addresses {
            if let problem = EmailAddress.problem(address) {
                throw Failure(description: "\(field): \(EmailAddress.quoted(address)) is not an email address: \(problem)", retryable: false)
            }
        }
        do {
            return try await session(message)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "SMTP \(settings.host):\(settings.port): \(error)", retryable: true)
        }
    }

    private func session(_ message: MailMessage) async throws -> Receipt {
        let tls = try settings.tls == .none ? nil : NIOSSLContext(configuration: settings.tlsConfiguration())
        let stamp = TLSEpochStamp()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(min(settings.timeout, 10) * 1000)))
            .connect(host: settings.host, port: settings.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if settings.tls == .implicit, let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: settings.serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(stamp)
                    return try NIOAsyncChannel<StampedBytes, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // The deadline closes the connection, which ends any read or write still waiting on it.
        let timedOut = Latch()
        let deadline = Task { [timeout = settings.timeout] in
            try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            timedOut.set()
            try? await channel.channel.close()
        }
        defer { deadline.cancel() }
        do {
            return try await converse(channel, message: message, tls: tls, stamp: stamp)
        } catch where timedOut.isSet {
            throw Failure(description: "SMTP \(settings.host):\(settings.port) timed out after \(settings.timeout) s (\(error))", retryable: true)
        }
    }

    private func converse(_ channel: NIOAsyncChannel<StampedBytes, ByteBuffer>, message: MailMessage, tls: NIOSSLContext?, stamp: TLSEpochStamp) async throws -> Receipt {
        try await channel.executeThenClose { inbound, outbound in
            var conversation = SMTPConversation(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            try conversation.expect(await conversation.reply(), 220, "greeting")
            var ehlo = try await conversation.command("EHLO \(settings.heloName)")
            try conversation.expect(ehlo, 250, "EHLO")
            if settings.tls == .starttls {
                guard ehlo.lines.contains(where: { $0.uppercased().hasPrefix("STARTTLS") }) else {
                    throw Failure(description: "server \(settings.host) does not offer STARTTLS", retryable: false)
                }
                try conversation.expect(await conversation.command("STARTTLS"), 220, "STARTTLS")
                try conversation.startTLS()
                // One step on the event loop: bytes read from the socket before it carry the old
                // epoch, everything after passes through TLS and carries the new one.
                try await channel.channel.eventLoop.submit { [hostname = settings.serverHostname, tls = tls!, channel = channel.channel] in
                    stamp.epoch += 1
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: hostname), position: .first)
                }.get()
                ehlo = try await conversation.command("EHLO \(settings.heloName)")
                try conversation.expect(ehlo, 250, "EHLO after STARTTLS")
            }
            if let username = settings.username, let password = settings.password {
                let mechanisms = ehlo.lines.first { $0.uppercased().hasPrefix("AUTH") }?.uppercased() ?? ""
                if mechanisms.contains("PLAIN") || !mechanisms.contains("LOGIN") {
                    let token = Data("\u{0}\(username)\u{0}\(password)".utf8).base64EncodedString()
                    try conversation.expect(await conversation.command("AUTH PLAIN \(token)", secret: true), 235, "AUTH PLAIN")
                } else {
                    try conversation.expect(await conversation.command("AUTH LOGIN"), 334, "AUTH LOGIN")
                    try conversation.expect(await conversation.command(Data(username.utf8).base64EncodedString(), secret: true), 334, "AUTH LOGIN user")
                    try conversation.expect(await conversation.command(Data(password.utf8).base64EncodedString(), secret: true), 235, "AUTH LOGIN password")
                }
            }
            try conversation.expect(await conversation.command("MAIL FROM:<\(message.from)>"), 250, "MAIL FROM")
            var receipt = Receipt(accepted: [], rejected: [:])
            for recipient in message.allRecipients {
                let reply = try await conversation.command("RCPT TO:<\(recipient)>")
                if reply.code == 250 || reply.code == 251 {
                    receipt.accepted.append(recipient)
                } else {
                    receipt.rejected[recipient] = reply.text
                }
            }
            guard !receipt.accepted.isEmpty else {
                let retryable = receipt.rejected.isEmpty || receipt.rejected.values.contains { $0.hasPrefix("4") }
                throw Failure(description: "every recipient was refused: \(receipt.rejected.map { "\($0.key): \($0.value)" }.joined(separator: "; "))", retryable: retryable)
            }
            try conversation.expect(await conversation.command("DATA"), 354, "DATA")
            try await conversation.send(message.dotStuffed() + "\r\n.\r\n")
            try conversation.expect(await conversation.reply(), 250, "message")
            _ = try? await conversation.command("QUIT")
            return receipt
        }
    }
}

extension SMTPSettings {
    var serverHostname: String? {
        // SNI takes names only; an IP address is verified against the certificate's IP entries.
        CIDR.parseAddress(host) == nil ? host : nil
    }

    func tlsConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.trustRoots = .file(caFile) }
        return configuration
    }
}

/// Inbound bytes with the number of TLS upgrades made before they were read from the socket.
struct StampedBytes: Sendable {
    let epoch: Int
    let bytes: ByteBuffer
}

/// Stamps each inbound buffer with the current epoch, which STARTTLS raises on the event loop as it
/// adds the TLS handler: the conversation can then tell plaintext that was waiting in a buffer from
/// bytes that came through TLS.
final class TLSEpochStamp: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = StampedBytes
    /// Touched on the channel's event loop only.
    var epoch = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(StampedBytes(epoch: epoch, bytes: unwrapInboundIn(data))))
    }
}

/// Reads replies and writes commands on one SMTP connection.
private struct SMTPConversation {
    var inbound: NIOAsyncChannelInboundStream<StampedBytes>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Bytes read but not yet part of a whole line.
    var pending: [UInt8] = []
    /// Buffers stamped with an older epoch arrived before TLS began.
    var epoch = 0
    /// RFC 5321 allows 512 bytes per reply line; servers stay far below this.
    static let maxLine = 4096
    static let maxLines = 100

    /// Called after the server's 220 to STARTTLS: anything already buffered was sent in plaintext
    /// after that reply, so it cannot be trusted as a reply over TLS.
    mutating func startTLS() throws {
        guard pending.isEmpty else {
            throw SMTPClient.Failure(description: "the SMTP server sent \(pending.count) bytes after its reply to STARTTLS, before TLS began: refused (a command injection attempt?)", retryable: false)
        }
        epoch += 1
    }

    struct Reply {
        let code: Int
        let lines: [String]
        var text: String { "\(code) \(lines.joined(separator: " "))" }
    }

    /// A whole reply: lines `250-…` continue, `250 …` ends it.
    mutating func reply() async throws -> Reply {
        var lines: [String] = []
        while true {
            while let end = Self.lineEnd(pending) {
                let line = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeFirst(end + 2)
                guard line.utf8.count >= 3, let code = Int(line.prefix(3)), (200..<600).contains(code) else {
                    throw SMTPClient.Failure(description: "not an SMTP reply: \(EmailAddress.quoted(line))", retryable: true)
                }
                lines.append(String(line.dropFirst(4)))
                guard lines.count <= Self.maxLines else {
                    throw SMTPClient.Failure(description: "the SMTP server's reply has more than \(Self.maxLines) lines", retryable: true)
                }
                if line.utf8.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                    return Reply(code: code, lines: lines)
                }
            }
            guard pending.count <= Self.maxLine else {
                throw SMTPClient.Failure(description: "the SMTP server sent a reply line over \(Self.maxLine) bytes", retryable: true)
            }
            guard let stamped = try await inbound.next() else {
                throw SMTPClient.Failure(description: "the SMTP server closed the connection", retryable: true)
            }
            guard stamped.epoch >= epoch else {
                throw SMTPClient.Failure(description: "the SMTP server sent data after its reply to STARTTLS, before TLS began: refused (a command injection attempt?)", retryable: false)
            }
            pending += stamped.bytes.readableBytesView
        }
    }

    /// The index of the first CRLF in `bytes`.
    private static func lineEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 0..<(bytes.count - 1) where bytes[index] == 13 && bytes[index + 1] == 10 { return index }
        return nil
    }

    mutating func command(_ line: String, secret: Bool = false) async throws -> Reply {
        try await send(line + "\r\n")
        return try await reply()
    }

    func send(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// Throws unless the reply has `code`; 4xx replies are worth a retry, 5xx are not.
    func expect(_ reply: Reply, _ code: Int, _ what: String) throws {
        guard reply.code == code else {
            throw SMTPClient.Failure(description: "\(what): server answered \(reply.text)", retryable: (400..<500).contains(reply.code))
        }
    }
}
