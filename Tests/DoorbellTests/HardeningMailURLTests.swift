import AsyncHTTPClient
import Crypto
import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, items 4–6: addresses and headers that webhook data cannot turn into SMTP commands, URL
/// values that stay in their place, and secrets that never show up in what the server prints or stores.
@Suite("Hardening: mail, URLs and secrets", .serialized)
struct HardeningMailURLTests {
    // MARK: 4. email

    @Test("a CR/LF-laden cc from a body field fails the step for good; nothing reaches the SMTP server")
    func smuggledRecipient() async throws {
        let smtp = try SMTPServer(mode: "plain", auth: false)
        defer { smtp.stop() }
        let config = TestConfigs.standard() + """

            retry: { schedule: [0s, 200ms, 200ms], jitter: 0 }
            smtp: { host: 127.0.0.1, port: \(smtp.port), from: shop@example.com, tls: none, timeout: 5s }
            automations:
              - id: receipt
                on: ["open:paid"]
                steps:
                  - id: mail
                    email: { to: "{{body.email}}", cc: "{{body.cc}}", subject: "Receipt", text: "Thanks" }
            """
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            let hostile = #"{"type":"paid","email":"jenny@example.com","cc":"ok@example.com>\r\nRCPT TO:<smuggled@evil.example"}"#
            let reply = try await post("\(server.baseURL)/hooks/open", body: Array(hostile.utf8))
            let eventID = try #require(reply.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: eventID, limit: 1).first?.status == .dead })
            let run = try #require(try await store.runs(eventID: eventID, limit: 1).first)
            #expect(run.attempt <= 1, "a bad address is not retried (attempt \(run.attempt))")
            #expect(run.lastError?.contains("email.cc") == true, "\(run.lastError ?? "")")
            #expect(run.lastError?.contains("not an email address") == true)
            #expect(run.lastError?.contains("\r\n") == false, "the hostile value is quoted with escapes, not raw")

            // The same automation with a good cc delivers, and the smuggled recipient is nowhere.
            let good = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"paid","email":"jenny@example.com","cc":"ok@example.com"}"#.utf8))
            let goodID = try #require(good.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: goodID, limit: 1).first?.status == .succeeded })
            let messages = try smtp.messages()
            #expect(messages.count == 1, "only the good event's message reached the server")
            #expect(messages.first?["rcpt"] as? [String] == ["jenny@example.com", "ok@example.com"])
            #expect(!messages.contains { ($0["rcpt"] as? [String])?.contains("smuggled@evil.example") == true })
        }
    }

    @Test("addresses written in the config are checked at load: to, cc, bcc, reply_to and from")
    func addressesCheckedAtLoad() throws {
        let config = TestConfigs.standard() + """

            smtp: { host: 127.0.0.1, port: 25, from: "shop@example.com>", tls: none }
            automations:
              - id: receipt
                on: ["open:paid"]
                steps:
                  - id: mail
                    email: { to: "jenny@example.com, not an address", cc: "{{body.cc}}", bcc: "a@b@example.com", reply_to: "help@-bad-.example", subject: "x", text: "y" }
            """
        do {
            _ = try ConfigLoader.parse(yaml: config, directory: try TemporaryFolder.make().path, environment: [:])
            Issue.record("a config with bad addresses loaded")
        } catch let error as ConfigError {
            let paths = Set(error.issues.map(\.path))
            #expect(paths.contains("automations[0].steps[0].email.to"), "\(error)")
            #expect(paths.contains("automations[0].steps[0].email.bcc"), "\(error)")
            #expect(paths.contains("automations[0].steps[0].email.reply_to"), "\(error)")
            #expect(paths.contains("smtp.from"), "\(error)")
            #expect(!paths.contains("automations[0].steps[0].email.cc"), "a template is checked when it is rendered")
        }
    }

    @Test("the address check: plain mailboxes pass; CR/LF, brackets, spaces, quotes, literals and overlong parts do not")
    func addressCheck() {
        for good in ["a@example.com", "jenny.rosen+receipts@mail.example.co.uk", "o'brien@example.com", "x_y-z@xn--caf-dma.example"] {
            #expect(EmailAddress.isValid(good), "\(good)")
        }
        let bad = [
            "ok@example.com>\r\nRCPT TO:<smuggled@evil.example", "a@example.com\n", "a b@example.com", "<a@example.com>", "Jenny <a@example.com>",
            "\"a\"@example.com", "a@[127.0.0.1]", "a@localhost", "a..b@example.com", ".a@example.com", "a@example..com", "a@-x.example",
            "café@example.com", "a@example.com,b@example.com", "", "@example.com", "a@", String(repeating: "a", count: 65) + "@example.com",
            "a@" + String(repeating: "b", count: 64) + ".com", "a@example.com\u{0}",
        ]
        for address in bad { #expect(!EmailAddress.isValid(address), "\(address.debugDescription) must be refused") }
    }

    @Test("a non-ASCII subject arrives RFC 2047-encoded and decodes to the original; CR/LF in it starts no header; bcc stays out of the headers")
    func encodedHeaders() async throws {
        let smtp = try SMTPServer(mode: "plain", auth: false)
        defer { smtp.stop() }
        // A whole session's deadline, generous: 61 recipients are 61 round trips to a Python server,
        // and in the full suite the two cores are shared with every other test (10 s ran out there).
        let settings = SMTPSettings(host: "127.0.0.1", port: smtp.port, from: "shop@example.com", tls: .none, timeout: 30)
        let subject = "Reçu n° 42 — Zoë’s order 🚀 " + Array(repeating: "été", count: 20).joined(separator: " ")
        let message = MailMessage(
            from: "shop@example.com", to: ["jenny@example.com"], bcc: ["archive@example.com"], replyTo: ["help@example.com"],
            subject: subject, text: "Merci", attachments: [.init(filename: "facture-été.txt", contentType: "text/plain; charset=utf-8", data: Data("hello".utf8))],
            messageID: "run_x-mail@doorbell"
        )
        _ = try await SMTPClient(settings: settings).send(message)
        var many = message
        many.to = (1...60).map { "customer.number.\($0)@mail.example.com" }
        many.messageID = "run_z-mail@doorbell"
        _ = try await SMTPClient(settings: settings).send(many)
        var injected = message
        injected.subject = "Hi\r\nBcc: evil@evil.example\r\nX-Injected: yes"
        injected.messageID = "run_y-mail@doorbell"
        _ = try await SMTPClient(settings: settings).send(injected)

        let messages = try smtp.messages()
        #expect(messages.count == 3)
        #expect(messages.first?["subject"] as? String == subject)
        #expect((messages.first?["attachments"] as? [String: Any])?["facture-été.txt"] as? String == "hello", "a non-ASCII file name is encoded (RFC 2231) and decodes")
        #expect(messages.first?["rcpt"] as? [String] == ["jenny@example.com", "archive@example.com"], "bcc is an envelope recipient")
        let raw = try String(contentsOf: smtp.folder.appendingPathComponent("1.eml"), encoding: .utf8)
        #expect(raw.contains("Subject: =?UTF-8?B?"))
        #expect(raw.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 }, "no line longer than SMTP allows")
        let subjectLines = raw.components(separatedBy: "\r\n").filter { $0.hasPrefix("Subject: ") || $0.hasPrefix(" =?UTF-8?B?") }
        #expect(subjectLines.count > 1 && subjectLines.allSatisfy { $0.utf8.count <= 76 }, "encoded words are folded: \(subjectLines)")
        #expect(!raw.lowercased().contains("archive@example.com"), "bcc never appears in the message")
        #expect(raw.contains("Reply-To: help@example.com"))

        let crowded = try String(contentsOf: smtp.folder.appendingPathComponent("2.eml"), encoding: .utf8)
        #expect(crowded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 }, "60 recipients fold onto several lines")
        #expect((messages[1]["rcpt"] as? [String])?.count == 61)
        #expect((messages[1]["to"] as? String)?.contains("customer.number.60@mail.example.com") == true)

        #expect(messages.last?["subject"] as? String == "Hi  Bcc: evil@evil.example  X-Injected: yes", "CR/LF became spaces")
        #expect(messages.last?["rcpt"] as? [String] == ["jenny@example.com", "archive@example.com"])
        let second = try String(contentsOf: smtp.folder.appendingPathComponent("3.eml"), encoding: .utf8)
        #expect(!second.contains("\r\nX-Injected:") && !second.contains("\r\nBcc:"))
    }

    @Test("the SMTP client refuses an address with CR/LF itself, before connecting")
    func clientRefusesBadAddress() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let settings = SMTPSettings(host: "127.0.0.1", port: listener.port, from: "shop@example.com", tls: .none, timeout: 5)
        let message = MailMessage(from: "shop@example.com", to: ["a@example.com"], cc: ["ok@example.com>\r\nRCPT TO:<x@evil.example"], subject: "x", text: "y", messageID: "m@doorbell")
        do {
            _ = try await SMTPClient(settings: settings).send(message)
            Issue.record("sent")
        } catch {
            #expect(!error.retryable)
            #expect(error.description.hasPrefix("cc:"), "\(error)")
        }
        #expect(listener.connections() == 0, "nothing was sent")
    }

    @Test("an SMTP server that accepts and never answers fails the step at its timeout")
    func silentServer() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let config = TestConfigs.standard() + """

            retry: { schedule: [0s], jitter: 0 }
            smtp: { host: 127.0.0.1, port: \(listener.port), from: shop@example.com, tls: none, timeout: 1s }
            automations:
              - id: receipt
                on: ["open:paid"]
                steps:
                  - id: mail
                    email: { to: "jenny@example.com", subject: "Receipt", text: "Thanks" }
            """
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            let reply = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"paid"}"#.utf8))
            let eventID = try #require(reply.json["id"] as? String)
            #expect(try await eventually(15) { try await store.runs(eventID: eventID, limit: 1).first?.status == .dead })
            let run = try #require(try await store.runs(eventID: eventID, limit: 1).first)
            #expect(run.lastError?.contains("timed out after 1.0 s") == true, "\(run.lastError ?? "")")
            #expect(listener.connections() == 1, "the client did connect, then waited for a greeting that never came")
        }
    }

    @Test("bytes a server sends after its 220 to STARTTLS are refused, never read as replies over TLS")
    func startTLSInjection() async throws {
        let server = try ScriptedSMTPServer(afterStartTLS: "220 ready\r\n250-injected\r\n250 AUTH PLAIN\r\n")
        defer { server.close() }
        let settings = SMTPSettings(host: "127.0.0.1", port: server.port, username: "shop", password: "pw", from: "shop@example.com", tls: .starttls, timeout: 5)
        do {
            _ = try await SMTPClient(settings: settings).send(MailMessage(from: "shop@example.com", to: ["a@example.com"], subject: "x", text: "y", messageID: "m@doorbell"))
            Issue.record("the session went on after an injection")
        } catch {
            #expect(error.description.contains("STARTTLS"), "\(error)")
            #expect(!error.retryable)
        }
        #expect(server.commands().last == "STARTTLS", "nothing was sent after STARTTLS: \(server.commands())")
    }

    @Test("a reply line over the bound is an error, not an ever-growing buffer")
    func oversizedReply() async throws {
        let server = try ScriptedSMTPServer(greeting: "220-" + String(repeating: "x", count: 10_000) + "\r\n220 hi\r\n", afterStartTLS: "")
        defer { server.close() }
        let settings = SMTPSettings(host: "127.0.0.1", port: server.port, from: "shop@example.com", tls: .none, timeout: 5)
        do {
            _ = try await SMTPClient(settings: settings).send(MailMessage(from: "shop@example.com", to: ["a@example.com"], subject: "x", text: "y", messageID: "m@doorbell"))
            Issue.record("accepted a 10 kB reply line")
        } catch {
            #expect(error.description.contains("reply line over"), "\(error)")
        }
    }

    // MARK: 5. URLs

    @Test("a body field in an http URL stays one path segment at a real receiver, and one that would be a dot or empty segment fails the step for good; {{{raw}}} goes unencoded")
    func encodedPath() async throws {
        try await Receiver.with { receiver in
            let config = TestConfigs.standard() + """

                automations:
                  - id: mark-paid
                    on: ["open:paid"]
                    steps:
                      - id: encoded
                        http: { url: "\(receiver.baseURL)/api/orders/{{body.order}}/paid" }
                      - id: raw
                        http: { url: "\(receiver.baseURL)/raw/{{{body.path}}}" }
                  - id: whole-url
                    on: ["open:whole"]
                    steps:
                      - id: call
                        http: { url: "{{body.url}}" }
                """
            try await TestServer.with(config: config) { (server: TestServer) async throws in
                let store = try #require(server.store as? any RunStore)
                for (order, path) in [("../admin?x=", "a/b"), ("v1..2", "b")] {
                    let body = try JSONSerialization.data(withJSONObject: ["type": "paid", "order": order, "path": path])
                    let reply = try await post("\(server.baseURL)/hooks/open", body: Array(body))
                    let eventID = try #require(reply.json["id"] as? String)
                    #expect(try await eventually { try await store.runs(eventID: eventID, limit: 1).first?.status == .succeeded })
                }
                #expect(receiver.requests("/api/orders/..%2Fadmin%3Fx%3D/paid").count == 1)
                #expect(receiver.requests("/api/orders/v1..2/paid").count == 1, "dots inside a segment are only dots")
                // A value that would be a whole dot segment or an empty one is refused, for good: an
                // encoded %2E%2E is still resolved as `..` by WHATWG parsers and nginx.
                for order in ["..", ".", ""] {
                    let body = try JSONSerialization.data(withJSONObject: ["type": "paid", "order": order, "path": "never"])
                    let eventID = try #require(try await post("\(server.baseURL)/hooks/open", body: Array(body)).json["id"] as? String)
                    #expect(try await eventually { try await store.runs(eventID: eventID, limit: 1).first?.status == .dead }, "order '\(order)'")
                    let run = try #require(try await store.runs(eventID: eventID, limit: 1).first)
                    #expect(run.attempt <= 1, "refused for good, not retried (attempt \(run.attempt))")
                    let error = run.lastError ?? ""
                    #expect(error.contains("http.url") && error.contains("{{body.order}}"), "\(error)")
                    #expect(!error.contains("/api/orders") && !error.contains(receiver.baseURL), "the URL itself is not in the error: \(error)")
                }
                #expect(receiver.requests("/api/paid").isEmpty && receiver.requests("/api/orders/%2E%2E/paid").isEmpty && receiver.requests("/api/orders//paid").isEmpty)
                #expect(receiver.requests("/raw/never").isEmpty, "the run stopped at the refused step")
                #expect(receiver.requests("/admin").isEmpty && receiver.requests("/api/admin").isEmpty)
                #expect(receiver.requests("/raw/a/b").count == 1, "a triple mustache inserts the value as it is")

                // A whole URL in a double mustache is encoded too, and the error says what to write.
                let whole = try JSONSerialization.data(withJSONObject: ["type": "whole", "url": "\(receiver.baseURL)/whole"])
                let wholeID = try #require(try await post("\(server.baseURL)/hooks/open", body: Array(whole)).json["id"] as? String)
                #expect(try await eventually { try await store.runs(eventID: wholeID, limit: 1).first?.status == .dead })
                #expect(try await store.runs(eventID: wholeID, limit: 1).first?.lastError?.contains("{{{…}}}") == true)
                #expect(receiver.requests("/whole").isEmpty)
            }
        }
    }

    @Test("URL values are percent-encoded outside RFC 3986 unreserved, in the path and in the query; a whole dot or empty path segment is refused")
    func encodedQuery() throws {
        let context: [String: Any] = ["body": ["q": "a&b=c#d+e f/é%", "id": "x/../y", "n": 42, "url": "https://elsewhere.example/p?q=1"]]
        #expect(try Templates.renderURL("https://crm.example/search?q={{body.q}}&n={{body.n}}", context, field: "http.url") == "https://crm.example/search?q=a%26b%3Dc%23d%2Be%20f%2F%C3%A9%25&n=42")
        #expect(try Templates.renderURL("https://crm.example/items/{{body.id}}", context, field: "http.url") == "https://crm.example/items/x%2F..%2Fy")
        #expect(try Templates.renderURL("{{{body.url}}}", context, field: "http.url") == "https://elsewhere.example/p?q=1")
        #expect(try Templates.renderURL("{{& body.url}}", context, field: "http.url") == "https://elsewhere.example/p?q=1")
        // Dot and empty values: refused where they are a whole path segment, fine anywhere else.
        let dots: [String: Any] = ["body": ["two": "..", "one": ".", "none": "", "x": "x", "list": [String](), "off": false]]
        for template in [
            "https://crm.example/a/{{body.two}}/b", "https://crm.example/{{body.one}}", "https://crm.example/a/{{body.none}}/b",
            "https://crm.example/a/{{body.missing}}", "https://crm.example/a/{{body.one}}{{body.one}}/b", "https://crm.example/a/.{{body.one}}?q=1",
            "https://crm.example/a/{{ body.two }}#top", "https://crm.example/{{#body}}{{two}}{{/body}}/b",
            // Sections that render nothing leave `//` with no value to blame: the path is checked whole.
            "https://crm.example/api/{{#body.list}}{{.}}{{/body.list}}/x", "https://crm.example/api/{{#body.off}}v{{/body.off}}/x",
        ] {
            #expect(throws: Templates.RenderError.self, "\(template)") { try Templates.renderURL(template, dots, field: "chat.url") }
        }
        do {
            _ = try Templates.renderURL("https://hooks.example/T000/SECRET/{{body.two}}", dots, field: "chat.url")
            Issue.record("a '..' segment was rendered")
        } catch {
            #expect("\(error)".hasPrefix("chat.url: {{body.two}} makes the path segment '..'"), "\(error)")
            #expect(!"\(error)".contains("SECRET") && !"\(error)".contains("hooks.example"), "\(error)")
        }
        #expect(try Templates.renderURL("https://crm.example/a/x{{body.two}}/b?q={{body.two}}&r={{body.none}}#{{body.one}}", dots, field: "http.url") == "https://crm.example/a/x../b?q=..&r=#.")
        #expect(try Templates.renderURL("https://{{body.x}}.crm.example/a/{{body.x}}{{body.none}}", dots, field: "http.url") == "https://x.crm.example/a/x")
        #expect(try Templates.renderURL("{{{body.two}}}", dots, field: "http.url") == "..", "a triple mustache is the template's own choice")
        #expect(try Templates.render("{{body.q}}", context) == "a&b=c#d+e f/é%", "other templates are unchanged")
    }

    // MARK: 6. secrets

    @Test("URLs shown in errors, logs, the API and the CLI keep scheme, host, port and the first path segment only")
    func redaction() {
        let cases = [
            ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://hooks.slack.com/services/…"),
            ("https://user:pa55@host.example:8443/path/more?token=abc&x=1#frag", "https://…@host.example:8443/path/…?token=…&x=…"),
            ("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage", "https://api.telegram.org/…/…"),
            ("http://127.0.0.1:9000/hang", "http://127.0.0.1:9000/hang"),
            ("http://[::1]:9/x?api_key=k", "http://[::1]:9/x?api_key=…"),
            ("https://example.com", "https://example.com"),
            ("https://example.com/?secret", "https://example.com/?…"),
            ("not a url sk_live_123", "…"),
        ]
        for (url, shown) in cases { #expect(RedactedURL(url).description == shown, "\(url)") }
        // A failing server's answer that echoes the request's path or query loses the hidden parts.
        let url = "https://crm.example/orders/ord_secret42/paid?api_key=key%2Fabc123&n=1"
        let echoed = #"{"error":"no route POST /orders/ord_secret42/paid?api_key=key%2Fabc123 (key key/abc123)"}"#
        let hidden = echoed.hiding(RedactedURL.hiddenParts(of: url))
        #expect(!hidden.contains("ord_secret42") && !hidden.contains("abc123"), "\(hidden)")
        #expect(hidden.contains("no route POST /orders/…/paid"), "\(hidden)")
        #expect("GET https://a.example/p/secret?k=v failed; see http://b.example/x/y".redactingURLs == "GET https://a.example/p/…?k=… failed; see http://b.example/x/…")
    }

    @Test("secrets given to a real server appear nowhere in what it printed, stored or answered")
    func secretsStaySecret() async throws {
        func token(_ prefix: String) -> String { prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }
        let sourceSecret = token("srcsecret"), apiToken = token("apitoken"), smtpPassword = token("smtppass")
        let slackToken = token("slacktoken"), apiKey = token("apikey"), refusedToken = token("refusedtok"), ssrfToken = token("ssrftok")
        let basicPassword = token("basicpw"), endpointToken = token("endpointtok")
        let smtp = try SMTPServer(mode: "starttls", auth: true)
        defer { smtp.stop() }
        try await Receiver.with { receiver in
            let port = receiver.baseURL.split(separator: ":").last!
            receiver.fail("/services/T0001/B0001/\(slackToken)", times: 100)
            receiver.fail("/crm/orders", times: 100)
            receiver.fail("/hooks/\(endpointToken)", times: 100)
            let folder = try TemporaryFolder.make()
            let config = """
                server: { listen: "127.0.0.1:0" }
                storage: "sqlite:doorbell.db"
                api: { tokens: ["${API_TOKEN}"] }
                outbound: { allow_private: ["127.0.0.0/8"] }
                retry: { schedule: [0s, 100ms], jitter: 0 }
                smtp: { host: 127.0.0.1, port: \(smtp.port), username: shop, password: "${SMTP_PASSWORD}", from: shop@example.com, tls: starttls, ca_file: "\(smtp.certificate)", timeout: 5s }
                sources:
                  - id: signed
                    provider: hmac
                    hmac: { header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=" }
                    secrets: ["${SOURCE_SECRET}"]
                    event_type: order.paid
                    forward_to: [erp]
                automations:
                  - { id: slack, on: ["signed:*"], steps: [ { id: alert, chat: { kind: slack, url: "${SLACK_WEBHOOK_URL}", text: "paid" } } ] }
                  - { id: crm, on: ["signed:*"], steps: [ { id: call, http: { url: "http://127.0.0.1:\(port)/crm/orders?api_key=${CRM_KEY}" } } ] }
                  - { id: refused, on: ["signed:*"], steps: [ { id: call, http: { url: "http://127.0.0.1:1/hook/\(refusedToken)?token=\(refusedToken)", timeout: 1s } } ] }
                  - { id: ssrf, on: ["signed:*"], steps: [ { id: call, http: { url: "http://admin:\(ssrfToken)@[::1]:9/hook/\(ssrfToken)?token=\(ssrfToken)" } } ] }
                  - { id: mail, on: ["signed:*"], steps: [ { id: send, email: { to: jenny@example.com, subject: "x", text: "y" } } ] }
                endpoints:
                  - id: erp
                    url: "http://hub:${BASIC_PASSWORD}@127.0.0.1:\(port)/hooks/\(endpointToken)?sig=\(endpointToken)"
                    events: ["*"]
                """
            try config.write(to: folder.appendingPathComponent("doorbell.yml"), atomically: true, encoding: .utf8)
            let environment = [
                "API_TOKEN": apiToken, "SMTP_PASSWORD": smtpPassword, "SOURCE_SECRET": sourceSecret, "CRM_KEY": apiKey, "BASIC_PASSWORD": basicPassword,
                "SLACK_WEBHOOK_URL": "http://127.0.0.1:\(port)/services/T0001/B0001/\(slackToken)",
            ]
            let configPath = folder.appendingPathComponent("doorbell.yml").path
            let server = try ServeProcess(config: URL(fileURLWithPath: configPath), environment: environment, logLevel: "trace", logFolder: folder)
            defer { server.stop() }
            try server.start()

            let body = Array(#"{"order":"1042"}"#.utf8)
            let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(sourceSecret.utf8)))
            let signature = "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            let reply = try await post("\(server.baseURL)/hooks/signed", body: body, headers: [("X-Signature", signature), ("Content-Type", "application/json")])
            #expect(reply.status == 200, "\(reply.body)")
            // A wrong signature and a wrong API token are refused without echoing what was expected.
            _ = try await post("\(server.baseURL)/hooks/signed", body: body, headers: [("X-Signature", "sha256=00")])
            var api: [String] = []
            api.append(try await authorizedGet("\(server.baseURL)/api/v1/events", token: "wrong-\(apiToken.prefix(4))").body)

            let cli = { (arguments: [String]) throws -> String in
                let result = try ChildProcess.doorbell(arguments + ["--config", configPath], environment: environment)
                return result.stdout + result.stderr
            }
            // Every automation fails for good (500s, refused, SSRF, AUTH); the delivery keeps failing.
            // (A refused connection is retried by the HTTP client until the step's timeout: 1 s here.)
            #expect(try await eventually(30) {
                let runs = try cli(["runs", "list", "--json", "--status", "dead"])
                return ["slack", "crm", "refused", "ssrf", "mail"].allSatisfy { runs.contains("\"\($0)\"") }
            }, "every run is dead")
            #expect(try await eventually(30) { receiver.requests("/hooks/\(endpointToken)").count >= 2 })

            var printed: [String] = []
            for arguments in [["runs", "list", "--json"], ["deliveries", "list", "--json"], ["endpoints", "list"], ["check"], ["events", "list", "--json"]] {
                printed.append(try cli(arguments))
            }
            let runs = printed[0]
            #expect(runs.contains("/services/…"), "errors still say where: \(runs)")
            #expect(runs.contains("api_key=…"))
            #expect(runs.contains("loopback"), "the SSRF refusal is in the run's error")
            for path in ["/api/v1/events", "/api/v1/deliveries", "/api/v1/endpoints", "/api/v1/endpoints/erp"] {
                api.append(try await authorizedGet("\(server.baseURL)\(path)", token: apiToken).body)
            }
            let deliveries = try JSONSerialization.jsonObject(with: Data(api[2].utf8)) as? [String: Any]
            for delivery in (deliveries?["data"] as? [[String: Any]]) ?? [] {
                if let id = delivery["id"] as? String { api.append(try await authorizedGet("\(server.baseURL)/api/v1/deliveries/\(id)", token: apiToken).body) }
            }
            #expect(api.count > 5, "the delivery was listed and shown")
            server.stop()

            let logs = server.output()
            #expect(logs.contains("step failed") || logs.contains("run dead"), "the server logged the failures: \(logs.prefix(2000))")
            var stored = Data()
            for suffix in ["", "-wal", "-shm"] {
                stored += (try? Data(contentsOf: folder.appendingPathComponent("doorbell.db" + suffix))) ?? Data()
            }
            let storedText = String(decoding: stored, as: UTF8.self)
            let authPlain = Data("\u{0}shop\u{0}\(smtpPassword)".utf8).base64EncodedString()
            // The endpoint's own URL is configuration and must be kept (stored) to deliver at all.
            let everywhere = [sourceSecret, apiToken, smtpPassword, authPlain, slackToken, apiKey, refusedToken, ssrfToken]
            let shown = logs + printed.joined() + api.joined()
            for secret in everywhere {
                #expect(!shown.contains(secret), "\(secret.prefix(12))… was printed or answered")
                #expect(!storedText.contains(secret), "\(secret.prefix(12))… was stored")
            }
            for secret in [basicPassword, endpointToken] {
                #expect(!shown.contains(secret), "the endpoint's \(secret.prefix(12))… was printed or answered")
            }
        }
    }
}

/// GET with a bearer token.
private func authorizedGet(_ url: String, token: String) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.headers.add(name: "Authorization", value: "Bearer \(token)")
    let response = try await testClient.execute(request, timeout: .seconds(10))
    let text = try await response.body.collect(upTo: 4 << 20)
    return Reply(status: Int(response.status.code), body: String(buffer: text))
}

/// A TCP listener on loopback that never says a word: the kernel completes each connection into the
/// backlog and nobody accepts it, which to a client is a server that answers nothing.
final class SilentListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        (fd, port) = try listenOnLoopback()
    }

    /// How many connections wait in the backlog (accepted here, without reading, to count them).
    func connections() -> Int {
        var count = 0
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { break }
            count += 1
            Glibc.close(client)
        }
        return count
    }

    func close() { Glibc.close(fd) }
}

/// A scripted SMTP peer for faults aiosmtpd will not commit: it greets, answers EHLO with
/// STARTTLS, and answers STARTTLS with `afterStartTLS` in one write; other commands get 250.
final class ScriptedSMTPServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var received: [String] = []

    init(greeting: String = "220 scripted ESMTP\r\n", afterStartTLS: String) throws {
        (fd, port) = try listenOnLoopback()
        Thread.detachNewThread { [fd] in
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            defer { Glibc.close(client) }
            func write(_ text: String) { _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) } }
            write(greeting)
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(client, &buffer, buffer.count, 0)
                guard count > 0 else { return }
                pending += buffer[..<count]
                while let end = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    pending.removeFirst(end + 1)
                    self.lock.withLock { self.received.append(line) }
                    let verb = line.uppercased()
                    if verb.hasPrefix("EHLO") {
                        write("250-scripted\r\n250 STARTTLS\r\n")
                    } else if verb == "STARTTLS" {
                        write(afterStartTLS)
                    } else {
                        write("250 ok\r\n")
                    }
                }
            }
        }
    }

    func commands() -> [String] { lock.withLock { received } }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
private func listenOnLoopback() throws -> (Int32, Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, 16) == 0 else { throw TestFailure("bind/listen: \(errno)") }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
