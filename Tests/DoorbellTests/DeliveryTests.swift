import Crypto
import DoorbellCore
import DoorbellStorage
import Foundation
import Synchronization
import Testing

/// Outbound webhooks end to end: a real server publishes, a real subscriber verifies with the
/// official Standard Webhooks library.
@Suite("Deliveries", .serialized)
struct DeliveryTests {
    static func config(endpoints: String, schedule: String = "[0s, 50ms, 50ms, 50ms]", outbound: String = "", extra: String = "") -> String {
        """
        server: { listen: "127.0.0.1:0" }
        storage: "sqlite:doorbell.db"
        api: { tokens: ["\(apiToken)"] }
        outbound: { allow_private: ["127.0.0.0/8"], timeout: 2s\(outbound) }
        retry: { schedule: \(schedule), jitter: 0 }
        sources:
          - { id: open, provider: none, forward_to: [relay] }
        endpoints:
        \(endpoints)
        \(extra)
        """
    }

    static func publish(_ server: TestServer, _ type: String, _ data: [String: Any], key: String? = nil) async throws -> Reply {
        var body: [String: Any] = ["type": type, "data": data]
        if let key { body["idempotency_key"] = key }
        return try await api(.POST, server.baseURL + "/api/v1/events", body)
    }

    static func deliveries(_ server: TestServer, endpoint: String) async throws -> [RunRecord] {
        try await server.store.runs(matching: RunQuery(endpoint: endpoint, deliveries: true, limit: 1000))
    }

    @Test("published events reach matching endpoints, signed v1 and v1a, verified by the official library; idempotency key stores once")
    func publishAndVerify() async throws {
        let secret = newSecret()
        let signing = Curve25519.Signing.PrivateKey()
        let whsk = "whsk_" + signing.rawRepresentation.base64EncodedString()
        let whpk = "whpk_" + signing.publicKey.rawRepresentation.base64EncodedString()
        try await WebhookReceiver.with(keys: [secret, whpk]) { receiver in
            let config = Self.config(endpoints: """
                  - { id: erp, url: "\(receiver.baseURL)/ok", events: ["order.*"], secret: "\(secret)", headers: { X-Tenant: bakery } }
                  - { id: partner, url: "\(receiver.baseURL)/ed", events: ["*"], secret: "\(whsk)" }
                  - { id: invoices, url: "\(receiver.baseURL)/invoices", events: ["invoice.*"] }
                  - { id: relay, url: "\(receiver.baseURL)/relay", events: ["form.*"] }
                """)
            try await TestServer.with(config: config) { (server: TestServer) async throws in
                #expect(try await api(.POST, server.baseURL + "/api/v1/events", ["type": "order.paid", "data": [:]], token: "wrong-token-0000000000").status == 401)
                #expect(try await api(.POST, server.baseURL + "/api/v1/events", ["type": "order.paid"]).status == 400)
                let first = try await Self.publish(server, "order.paid", ["order": "A-17", "amount": 4200], key: "order-A-17")
                let again = try await Self.publish(server, "order.paid", ["order": "A-17", "amount": 4200], key: "order-A-17")
                #expect(first.status == 202 && again.status == 202)
                #expect(first.json["id"] as? String == again.json["id"] as? String)
                #expect(again.json["duplicate"] as? Bool == true)
                let eventID = first.json["id"] as? String ?? ""
                #expect(try await eventually { try await receiver.log().count >= 2 })
                try await Task.sleep(for: .milliseconds(300))
                let log = try await receiver.log()
                // The idempotent repeat made no second delivery; invoice-only and relay endpoints got nothing.
                #expect(log.map(\.path).sorted() == ["/ed", "/ok"])
                let erp = try #require(log.first { $0.path == "/ok" })
                #expect(erp.verified[secret] == true)
                #expect(erp.id == eventID)
                #expect(erp.headers["x-tenant"] == "bakery")
                #expect(erp.body["type"] as? String == "order.paid")
                #expect((erp.body["data"] as? [String: Any])?["order"] as? String == "A-17")
                #expect(erp.body["timestamp"] is String)
                let partner = try #require(log.first { $0.path == "/ed" })
                #expect(partner.signature.hasPrefix("v1a,"))
                #expect(partner.verified[whpk] == true)
                #expect(partner.verified[secret] == false)
                let delivery = try #require(try await Self.deliveries(server, endpoint: "erp").first)
                #expect(delivery.status == .succeeded)
                let shown = try await api(.GET, server.baseURL + "/api/v1/deliveries/\(delivery.id)")
                #expect((shown.json["attempts"] as? [[String: Any]])?.first?["status"] as? Int == 200)
            }
        }
    }

    @Test("a received event is relayed byte for byte to its source's forward_to endpoint, re-signed")
    func forwardTo() async throws {
        let secret = newSecret()
        try await WebhookReceiver.with(keys: [secret]) { receiver in
            let config = Self.config(endpoints: "  - { id: relay, url: \"\(receiver.baseURL)/relay\", secret: \"\(secret)\" }")
            try await TestServer.with(config: config) { (server: TestServer) async throws in
                let body = #"{"type":"form.submitted","name":"Ada"}"#
                let reply = try await post(server.baseURL + "/hooks/open", body: Array(body.utf8), headers: [("Content-Type", "application/json")])
                #expect(reply.status == 200)
                #expect(try await eventually { try await receiver.log("/relay").count == 1 })
                let relayed = try await receiver.log("/relay")[0]
                #expect(relayed.verified[secret] == true)
                #expect(relayed.body["name"] as? String == "Ada")
                #expect(relayed.id == reply.json["id"] as? String)
            }
        }
    }

    @Test("secret rotation: both signatures are sent during the overlap; the old and the new secret each verify")
    func rotation() async throws {
        let old = newSecret()
        let new = newSecret()
        try await WebhookReceiver.with(keys: [old, new]) { receiver in
          try await TestServer.with(config: Self.config(endpoints: "  []")) { (server: TestServer) async throws in
            let created = try await api(.POST, server.baseURL + "/api/v1/endpoints", ["id": "erp", "url": receiver.baseURL + "/ok", "events": ["order.*"], "secret": old])
            #expect(created.status == 201)
            _ = try await Self.publish(server, "order.created", ["n": 1])
            #expect(try await eventually { try await receiver.log().count == 1 })
            let rotated = try await api(.POST, server.baseURL + "/api/v1/endpoints/erp/rotate-secret", ["secret": new, "overlap": "1h"])
            #expect(rotated.status == 200)
            #expect(((rotated.json["secrets"] as? [[String: Any]])?.count) == 2)
            _ = try await Self.publish(server, "order.created", ["n": 2])
            #expect(try await eventually { try await receiver.log().count == 2 })
            let log = try await receiver.log()
            #expect(log[0].verified == [old: true, new: false])
            #expect(log[1].verified == [old: true, new: true])
            #expect(log[1].signature.split(separator: " ").count == 2)
            // After the overlap only the new secret signs.
            _ = try await api(.POST, server.baseURL + "/api/v1/endpoints/erp/rotate-secret", ["secret": newSecret(), "overlap": "0s"])
            _ = try await Self.publish(server, "order.created", ["n": 3])
            #expect(try await eventually { try await receiver.log().count == 3 })
            #expect(try await receiver.log()[2].verified == [old: false, new: false])
          }
        }
    }
}
