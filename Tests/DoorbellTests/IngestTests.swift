import Crypto
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

/// `POST /hooks/{source}` against a real server on loopback with a real SQLite file.
@Suite("Ingest")
struct IngestTests {
    let secret = TestConfigs.stripeSecret

    @Test("a signed Stripe event is stored and answered with its id")
    func storesStripeEvent() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let body = TestFixtures.stripeEvent(id: "evt_stored_1")
            let reply = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: secret))
            #expect(reply.status == 200)
            #expect(reply.json["duplicate"] as? Bool == false)
            let id = try #require(reply.json["id"] as? String)
            let stored = try #require(try await server.store.event(id: id))
            #expect(stored.event.source == "stripe")
            #expect(stored.event.type == "payment_intent.succeeded")
            #expect(stored.event.providerID == "evt_stored_1")
            #expect(stored.event.body == body, "the raw body is stored byte for byte")
            #expect(stored.event.headers.contains { $0.name == "stripe-signature" })
        }
    }

    @Test("refusals answer the contract's status and store nothing")
    func refusals() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let body = TestFixtures.stripeEvent()
            let url = "\(server.baseURL)/hooks/stripe"
            // Unknown source.
            #expect(try await post("\(server.baseURL)/hooks/nope", body: body).status == 404)
            // Missing signature, wrong secret, tampered body, stale timestamp.
            let missing = try await post(url, body: body, headers: [("Content-Type", "application/json")])
            #expect(missing.status == 401)
            #expect(missing.body.contains("missing header Stripe-Signature"))
            let wrong = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: "whsec_wrong"))
            #expect(wrong.status == 401)
            #expect(wrong.body.contains("signature mismatch"))
            var tampered = body
            tampered[tampered.count - 3] ^= 0x01
            #expect(try await post(url, body: tampered, headers: TestFixtures.stripeHeaders(body, secret: secret)).status == 401)
            let stale = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: secret, at: Date().addingTimeInterval(-400)))
            #expect(stale.status == 401)
            #expect(stale.body.contains("s old"))
            let future = try await post(url, body: body, headers: TestFixtures.stripeHeaders(body, secret: secret, at: Date().addingTimeInterval(400)))
            #expect(future.status == 401)
            // Malformed JSON, correctly signed: 400.
            let malformed = Array(#"{"id": "evt_x", "type": "payment_intent.succeeded""#.utf8)
            let bad = try await post(url, body: malformed, headers: TestFixtures.stripeHeaders(malformed, secret: secret))
            #expect(bad.status == 400)
            #expect(bad.body.contains("malformed JSON"))
            // Valid JSON without Stripe's id: 400 naming what is missing.
            let noID = Array(#"{"type":"payment_intent.succeeded"}"#.utf8)
            let missingID = try await post(url, body: noID, headers: TestFixtures.stripeHeaders(noID, secret: secret))
            #expect(missingID.status == 400)
            #expect(missingID.body.contains("/id"))
            #expect(try await server.store.countEvents(matching: EventQuery()) == 0)
        }
    }

    @Test("a body over max_body is refused with 413, with and without Content-Length")
    func bodyLimit() async throws {
        try await TestServer.with(config: TestConfigs.standard(maxBody: "64KiB")) { (server: TestServer) async throws in
            let url = "\(server.baseURL)/hooks/stripe"
            let padding = String(repeating: "x", count: 70_000)
            let big = Array(#"{"id":"evt_big","type":"t","pad":"\#(padding)"}"#.utf8)
            let headers = TestFixtures.stripeHeaders(big, secret: secret)
            #expect(try await post(url, body: big, headers: headers).status == 413)
            #expect(try await post(url, body: big, headers: headers, chunked: true).status == 413)
            // Just under the limit, chunked, is accepted.
            let fits = Array(#"{"id":"evt_fits","type":"t","pad":"\#(String(repeating: "y", count: 60_000))"}"#.utf8)
            #expect(try await post(url, body: fits, headers: TestFixtures.stripeHeaders(fits, secret: secret), chunked: true).status == 200)
            #expect(try await server.store.countEvents(matching: EventQuery()) == 1)
        }
    }

    @Test("the same provider id twice is stored once and answered as a duplicate")
    func sequentialDuplicate() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let body = TestFixtures.stripeEvent(id: "evt_dup")
            let first = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: secret))
            let second = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: secret))
            #expect(first.status == 200 && second.status == 200)
            #expect(first.json["duplicate"] as? Bool == false)
            #expect(second.json["duplicate"] as? Bool == true)
            #expect(first.json["id"] as? String == second.json["id"] as? String)
            #expect(try await server.store.countEvents(matching: EventQuery()) == 1)
        }
    }

    @Test("concurrent copies of one event are stored once")
    func concurrentDuplicates() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let body = TestFixtures.stripeEvent(id: "evt_concurrent")
            let headers = TestFixtures.stripeHeaders(body, secret: secret)
            let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<64 {
                    group.addTask { try await post("\(server.baseURL)/hooks/stripe", body: body, headers: headers) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.allSatisfy { $0.status == 200 })
            #expect(replies.filter { $0.json["duplicate"] as? Bool == false }.count == 1)
            #expect(Set(replies.compactMap { $0.json["id"] as? String }).count == 1)
            #expect(try await server.store.countEvents(matching: EventQuery()) == 1)
        }
    }

    @Test("generic HMAC: type and dedupe key from the config, JSON and form bodies")
    func genericHMAC() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let url = "\(server.baseURL)/hooks/contact-form"
            func sign(_ body: [UInt8]) -> String {
                let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(TestConfigs.formSecret.utf8)))
                return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            }
            let json = Array(#"{"submission_id":"sub_1","fields":{"email":"a@example.com"}}"#.utf8)
            let first = try await post(url, body: json, headers: [("X-Signature", sign(json)), ("Content-Type", "application/json")])
            #expect(first.status == 200)
            let stored = try #require(try await server.store.event(id: first.json["id"] as! String))
            #expect(stored.event.type == "form.submitted")
            #expect(stored.event.providerID == "sub_1")

            let form = Array("submission_id=sub+2&email=b%40example.com".utf8)
            let second = try await post(url, body: form, headers: [("X-Signature", sign(form)), ("Content-Type", "application/x-www-form-urlencoded")])
            #expect(second.status == 200)
            let formEvent = try #require(try await server.store.event(id: second.json["id"] as! String))
            #expect(formEvent.event.providerID == "sub 2")

            // Uppercase hex and prefix are accepted; a wrong prefix or a missing dedupe key is not.
            let upper = "SHA256=" + sign(json).dropFirst(7).uppercased()
            #expect(try await post(url, body: json, headers: [("X-Signature", upper), ("Content-Type", "application/json")]).json["duplicate"] as? Bool == true)
            #expect(try await post(url, body: json, headers: [("X-Signature", "md5=" + sign(json).dropFirst(7)), ("Content-Type", "application/json")]).status == 401)
            let noKey = Array(#"{"fields":{}}"#.utf8)
            let missingKey = try await post(url, body: noKey, headers: [("X-Signature", sign(noKey)), ("Content-Type", "application/json")])
            #expect(missingKey.status == 400)
            #expect(missingKey.body.contains("/submission_id"))
            #expect(try await server.store.countEvents(matching: EventQuery()) == 2)
        }
    }

    @Test("allow_ips refuses other addresses with 403 and admits listed ones")
    func addressAllowlist() async throws {
        let extra = """
              - id: fenced
                provider: none
                allow_ips: ["203.0.113.0/24"]
              - id: local
                provider: none
                allow_ips: ["127.0.0.0/8", "::1"]
            """
        try await TestServer.with(config: TestConfigs.standard(extraSources: extra)) { (server: TestServer) async throws in
            let body = Array(#"{"type":"ping"}"#.utf8)
            let refused = try await post("\(server.baseURL)/hooks/fenced", body: body)
            #expect(refused.status == 403)
            #expect(refused.body.contains("127.0.0.1 not allowed"))
            #expect(try await post("\(server.baseURL)/hooks/local", body: body).status == 200)
            #expect(try await server.store.countEvents(matching: EventQuery(source: "fenced")) == 0)
        }
    }

    @Test("a truncated body (the client hangs up early) stores nothing and the server keeps serving")
    func truncatedBody() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            let body = TestFixtures.stripeEvent(id: "evt_truncated")
            let signature = TestFixtures.stripeHeaders(body, secret: secret)[0].1
            let port = server.baseURL.split(separator: ":").last!
            // A real socket from a child process: promise the whole body, send half, close.
            let script = """
                import socket, sys
                body = sys.argv[2].encode()
                s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
                head = "POST /hooks/stripe HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                head += "Stripe-Signature: %s\\r\\nContent-Length: %d\\r\\n\\r\\n" % (sys.argv[3], len(body))
                s.sendall(head.encode() + body[: len(body) // 2])
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                reply = s.recv(4096)
                print(reply.split(b"\\r\\n")[0].decode() if reply else "closed")
                """
            let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, String(port), String(decoding: body, as: UTF8.self), signature])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stdout.contains(" 200"), "a truncated body must not be acknowledged: \(result.stdout)")
            #expect(try await server.store.countEvents(matching: EventQuery()) == 0)
            let whole = try await post("\(server.baseURL)/hooks/stripe", body: body, headers: TestFixtures.stripeHeaders(body, secret: secret))
            #expect(whole.status == 200)
        }
    }

    @Test("health and readiness")
    func health() async throws {
        try await TestServer.with(config: TestConfigs.standard()) { (server: TestServer) async throws in
            #expect(try await get("\(server.baseURL)/healthz").status == 200)
            #expect(try await get("\(server.baseURL)/readyz").status == 200)
        }
    }
}
