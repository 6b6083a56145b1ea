import DoorbellCLI
import DoorbellCore
import DoorbellVerification
import Foundation
import Testing

/// Every fixture, signed as its provider would, is accepted by a server configured for that
/// provider, and a provider retry of it is a duplicate; proxies and metrics behave.
@Suite("Ingest per provider")
struct ProviderIngestTests {
    static let config = """
        server:
          listen: "127.0.0.1:0"
          public_url: "https://hooks.example.com"
          trusted_proxies: ["127.0.0.1/32"]
        storage: "sqlite:doorbell.db"
        sources:
          - { id: stripe, provider: stripe, secrets: ["whsec_stripe_test_secret"] }
          - { id: github, provider: github, secrets: ["github-secret-0123456789"], max_body: 25MB }
          - { id: shopify, provider: shopify, secrets: ["shopify-secret-0123456789"] }
          - { id: twilio, provider: twilio, secrets: ["0123456789abcdef0123456789abcdef"] }
          - { id: standard, provider: standard, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
          - id: contact-form
            provider: hmac
            hmac: { header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=" }
            secrets: ["form-secret-0123456789"]
            event_type: form.submitted
            event_id: /submission_id
          - { id: proxied, provider: none, allow_ips: ["198.51.100.0/24"] }
        """

    static let sourceFor: [ProviderKind: String] = [.stripe: "stripe", .github: "github", .shopify: "shopify", .twilio: "twilio", .standard: "standard", .hmac: "contact-form"]
    static let secretFor: [ProviderKind: String] = [.stripe: "whsec_stripe_test_secret", .github: "github-secret-0123456789", .shopify: "shopify-secret-0123456789", .twilio: "0123456789abcdef0123456789abcdef", .standard: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", .hmac: "form-secret-0123456789"]

    @Test("each fixture is accepted by its provider's source, and its retry is a duplicate", arguments: Fixture.all.map(\.name))
    func fixtureAccepted(_ name: String) async throws {
        let fixture = try #require(Fixture.find(name.split(separator: " ").map(String.init)))
        try await TestServer.with(config: Self.config) { (server: TestServer) async throws in
            let sourceID = Self.sourceFor[fixture.provider]!
            let body = fixture.makeBody()
            let publicURL = "https://hooks.example.com/hooks/\(sourceID)"
            let scheme = try #require(fixture.provider.scheme(hmac: HMACSettings(header: "X-Signature", algorithm: .sha256, encoding: .hex, prefix: "sha256=")))
            var headers = [("Content-Type", fixture.contentType)]
            headers += fixture.makeHeaders().map { ($0.name, $0.value) }
            headers += scheme.sign(body: body, url: publicURL, secret: Self.secretFor[fixture.provider]!, now: Date()).map { ($0.name, $0.value) }
            let first = try await post("\(server.baseURL)/hooks/\(sourceID)", body: body, headers: headers)
            #expect(first.status == 200, "\(first.body)")
            let id = try #require(first.json["id"] as? String)
            let stored = try #require(try await server.store.event(id: id))
            #expect(stored.event.type == fixture.name.split(separator: " ").last.map(String.init) || fixture.provider == .twilio || fixture.provider == .hmac)
            if fixture.provider == .twilio { #expect(stored.event.type == "message.received") }
            if fixture.provider == .hmac { #expect(stored.event.type == "form.submitted") }
            let retry = try await post("\(server.baseURL)/hooks/\(sourceID)", body: body, headers: headers)
            #expect(retry.status == 200)
            #expect(retry.json["duplicate"] as? Bool == true, "a provider retry carries the same delivery id")
            // One byte changed: refused.
            var tampered = body
            tampered[tampered.count / 2] ^= 0x20
            #expect(try await post("\(server.baseURL)/hooks/\(sourceID)", body: tampered, headers: headers).status == 401)
        }
    }

    @Test("X-Forwarded-For counts only from a trusted proxy, and refusals are counted in /metrics")
    func proxiesAndMetrics() async throws {
        try await TestServer.with(config: Self.config) { (server: TestServer) async throws in
            let url = "\(server.baseURL)/hooks/proxied"
            let body = Array(#"{"type":"ping"}"#.utf8)
            // The test client is 127.0.0.1, a trusted proxy here: the forwarded client decides.
            #expect(try await post(url, body: body, headers: [("X-Forwarded-For", "198.51.100.7")]).status == 200)
            let refused = try await post(url, body: body, headers: [("X-Forwarded-For", "198.51.100.7, 203.0.113.9")])
            #expect(refused.status == 403)
            #expect(refused.body.contains("203.0.113.9 not allowed"))
            #expect(try await post(url, body: body).status == 403, "without the header the proxy itself is the client")
            #expect(try await post(url, body: body, headers: [("X-Forwarded-For", "not-an-ip")]).status == 403)

            let wrong = Array(#"{"id":"evt_1","type":"x"}"#.utf8)
            _ = try await post("\(server.baseURL)/hooks/stripe", body: wrong, headers: [("Stripe-Signature", "t=1,v1=\(String(repeating: "0", count: 64))")])
            let metrics = try await get("\(server.baseURL)/metrics").body
            #expect(metrics.contains(#"doorbell_rejections_total{source="proxied",reason="address_not_allowed"} 3"#), "\(metrics)")
            #expect(metrics.contains(#"doorbell_rejections_total{source="stripe",reason="signature_mismatch"} 1"#))
            #expect(metrics.contains(#"doorbell_events_received_total{source="proxied",duplicate="false"} 1"#))
        }
    }

    @Test("X-Forwarded-For from an untrusted peer is ignored")
    func spoofedForwardedFor() async throws {
        let config = Self.config.replacingOccurrences(of: #"trusted_proxies: ["127.0.0.1/32"]"#, with: #"trusted_proxies: ["10.0.0.0/8"]"#)
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let reply = try await post("\(server.baseURL)/hooks/proxied", body: Array("{}".utf8), headers: [("X-Forwarded-For", "198.51.100.7")])
            #expect(reply.status == 403)
            #expect(reply.body.contains("127.0.0.1 not allowed"))
        }
    }
}
