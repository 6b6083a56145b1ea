import DoorbellCore
import DoorbellVerification
import Foundation

/// Test fixture files (committed vectors) and signing helpers.
enum TestFixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: url(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// A Stripe event body with a unique id.
    static func stripeEvent(id: String = "evt_" + UUID().uuidString.replacingOccurrences(of: "-", with: ""), type: String = "payment_intent.succeeded") -> [UInt8] {
        Array(#"{"id":"\#(id)","object":"event","type":"\#(type)","data":{"object":{"amount":4200,"currency":"usd"}}}"#.utf8)
    }

    /// Headers that sign `body` for a Stripe source.
    static func stripeHeaders(_ body: [UInt8], secret: String, at date: Date = Date()) -> [(String, String)] {
        StripeScheme().sign(body: body, url: "", secret: secret, now: date).map { ($0.name, $0.value) } + [("Content-Type", "application/json")]
    }
}

/// The standard test config: a Stripe source, a generic HMAC form source, and an unsigned source.
enum TestConfigs {
    static let stripeSecret = "whsec_test_secret_for_doorbell"
    static let formSecret = "form-secret"

    static func standard(storage: String = "sqlite:doorbell.db", maxBody: String = "64KiB", extraSources: String = "") -> String {
        """
        server:
          listen: "127.0.0.1:0"
        storage: "\(storage)"
        outbound: { allow_private: ["127.0.0.0/8"] }   # the test receivers listen on loopback
        sources:
          - id: stripe
            provider: stripe
            secrets: ["\(stripeSecret)"]
            max_body: \(maxBody)
          - id: contact-form
            provider: hmac
            hmac: { header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=" }
            secrets: ["\(formSecret)"]
            event_type: form.submitted
            event_id: /submission_id
          - id: open
            provider: none
        \(extraSources)
        """
    }
}
