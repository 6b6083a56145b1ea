import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

/// The SMTP client and `email` steps against a real SMTP server (aiosmtpd) on loopback.
@Suite("Email", .serialized)
struct EmailTests {
    func message(to: [String], subject: String = "Your receipt — Café", text: String = "Thanks!\n.hidden line starts with a dot\n..two dots") -> MailMessage {
        MailMessage(from: "shop@example.com", to: to, subject: subject, text: text, html: "<p>Thanks &amp; see you</p>", attachments: [
            .init(filename: "invoice.html", contentType: "text/html; charset=utf-8", data: Data("<h1>Invoice 42</h1>\n.dot line".utf8)),
        ], messageID: "run_1-receipt@doorbell")
    }

    @Test("STARTTLS with AUTH, implicit TLS and plain: MIME, attachments and dot-stuffing arrive intact", arguments: [("starttls", true), ("tls", true), ("plain", false)])
    func modes(_ mode: String, _ auth: Bool) async throws {
        let server = try SMTPServer(mode: mode, auth: auth)
        defer { server.stop() }
        let settings = SMTPSettings(
            host: "127.0.0.1", port: server.port, username: auth ? "shop" : nil, password: auth ? "s3cret" : nil,
            from: "shop@example.com", tls: SMTPSettings.TLSMode(rawValue: mode == "plain" ? "none" : mode)!, caFile: server.certificate, timeout: 10
        )
        let receipt = try await SMTPClient(settings: settings).send(message(to: ["jenny@example.com", "reject-me@example.com"]))
        #expect(receipt.accepted == ["jenny@example.com"])
        #expect(receipt.rejected["reject-me@example.com"]?.hasPrefix("550") == true, "per-recipient errors are reported")
        let received = try server.messages()
        #expect(received.count == 1)
        let mail = try #require(received.first)
        #expect(mail["subject"] as? String == "Your receipt — Café")
        #expect(mail["rcpt"] as? [String] == ["jenny@example.com"])
        #expect((mail["text"] as? String)?.contains("\n.hidden line starts with a dot\n..two dots") == true, "dot-stuffing is undone by the server")
        #expect((mail["html"] as? String)?.contains("see you") == true)
        #expect((mail["attachments"] as? [String: Any])?["invoice.html"] as? String == "<h1>Invoice 42</h1>\n.dot line")
    }

    @Test("wrong password is a permanent failure; an untrusted certificate is refused; nobody listening is retryable")
    func failures() async throws {
        let server = try SMTPServer(mode: "starttls", auth: true)
        defer { server.stop() }
        var settings = SMTPSettings(host: "127.0.0.1", port: server.port, username: "shop", password: "wrong", from: "shop@example.com", tls: .starttls, caFile: server.certificate, timeout: 10)
        do {
            _ = try await SMTPClient(settings: settings).send(message(to: ["a@example.com"]))
            Issue.record("a wrong password was accepted")
        } catch {
            #expect(!error.retryable, "\(error)")
            #expect(error.description.contains("AUTH"))
        }
        settings.password = "s3cret"
        settings.caFile = nil  // the system's roots do not know the test certificate
        settings.timeout = 3
        do {
            _ = try await SMTPClient(settings: settings).send(message(to: ["a@example.com"]))
            Issue.record("an untrusted certificate was accepted")
        } catch {
            #expect(error.retryable)
        }
        settings.port = 1  // nothing listens there
        do {
            _ = try await SMTPClient(settings: settings).send(message(to: ["a@example.com"]))
            Issue.record("sent to nowhere")
        } catch {
            #expect(error.retryable)
        }
        #expect(try server.messages().isEmpty)
    }

    @Test("an email step sends the rendered receipt with the invoice attached; SMTP down, then up: retried and delivered")
    func emailStep() async throws {
        // A free port for a server that is not there yet: start one, note its port, stop it.
        let probe = try SMTPServer(mode: "plain", auth: true)
        let port = probe.port
        probe.stop()
        let folder = try TemporaryFolder.make()
        try "<h1>Invoice {{event.id}}</h1>".write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
        let config = TestConfigs.standard() + """

            retry: { schedule: [0s, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms], jitter: 0 }
            smtp: { host: 127.0.0.1, port: \(port), username: shop, password: s3cret, from: shop@example.com, tls: none, timeout: 5s }
            automations:
              - id: receipt
                on: ["open:paid"]
                steps:
                  - id: invoice
                    file: { path: "invoices/{{event.id}}.html", template: invoice.html }
                  - id: receipt
                    email: { to: "{{body.email}}", subject: "Receipt {{body.order}}", text: "Thanks for order {{body.order}}", attach: ["{{steps.invoice.path}}"] }
            """
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            let reply = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"paid","email":"jenny@example.com","order":"1042"}"#.utf8))
            let eventID = try #require(reply.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: eventID, limit: 1).first?.status == .waitingRetry }, "SMTP is down: the run waits")
            let smtp = try SMTPServer(mode: "plain", auth: true, port: port)
            defer { smtp.stop() }
            #expect(try await eventually(10) { try await store.runs(eventID: eventID, limit: 1).first?.status == .succeeded })
            let mail = try #require(try smtp.messages().first)
            #expect(mail["subject"] as? String == "Receipt 1042")
            #expect((mail["attachments"] as? [String: Any])?["\(eventID).html"] as? String == "<h1>Invoice \(eventID)</h1>")
            #expect((mail["message_id"] as? String)?.contains("-receipt@doorbell") == true)
        }
    }
}
