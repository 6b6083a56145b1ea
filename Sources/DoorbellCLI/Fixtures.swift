import DoorbellCore
import Foundation

/// A sample event `doorbell trigger` can send: a realistic payload for one provider, with fresh
/// ids each time so repeated triggers are distinct events.
public struct Fixture: Sendable {
    /// How the fixture is named on the command line: `stripe payment_intent.succeeded`, `form`.
    public let name: String
    /// The provider whose sources accept it.
    public let provider: ProviderKind
    public let summary: String
    public let contentType: String
    /// The body, built anew for each send.
    public let makeBody: @Sendable () -> [UInt8]

    /// Every fixture, in the order `--list` prints them.
    public static let all: [Fixture] = [
        Fixture(name: "stripe payment_intent.succeeded", provider: .stripe, summary: "a card payment of $42.00 succeeded", contentType: "application/json", makeBody: StripeFixtures.paymentIntentSucceeded),
        Fixture(name: "stripe checkout.session.completed", provider: .stripe, summary: "a Checkout session was paid", contentType: "application/json", makeBody: StripeFixtures.checkoutSessionCompleted),
        Fixture(name: "form", provider: .hmac, summary: "a contact form submission (generic HMAC)", contentType: "application/json", makeBody: FormFixtures.contactForm),
    ]

    /// Finds a fixture from the words given on the command line (`stripe payment_intent.succeeded`,
    /// `stripe/payment_intent.succeeded`, or the event type alone when it is unambiguous).
    public static func find(_ words: [String]) -> Fixture? {
        let wanted = words.joined(separator: " ").replacingOccurrences(of: "/", with: " ").lowercased()
        if let exact = all.first(where: { $0.name == wanted }) { return exact }
        let byType = all.filter { $0.name.split(separator: " ").last.map(String.init) == wanted }
        return byType.count == 1 ? byType[0] : nil
    }
}

enum FixtureIDs {
    /// A Stripe-style id: prefix + 24 random alphanumerics.
    static func stripe(_ prefix: String) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        return prefix + String((0..<24).map { _ in alphabet.randomElement()! })
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        // Pretty-printed like the providers' own payloads; sorted for stable diffs in docs.
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return [UInt8](data)
    }
}

enum StripeFixtures {
    @Sendable static func paymentIntentSucceeded() -> [UInt8] {
        let now = Int(Date().timeIntervalSince1970)
        let intent = FixtureIDs.stripe("pi_")
        let customer = FixtureIDs.stripe("cus_")
        let object: [String: Any] = [
            "id": intent, "object": "payment_intent", "amount": 4200, "amount_received": 4200,
            "currency": "usd", "customer": customer, "status": "succeeded", "created": now - 3,
            "description": "Order #1042", "livemode": false,
            "receipt_email": "jenny.rosen@example.com",
            "payment_method": FixtureIDs.stripe("pm_"), "payment_method_types": ["card"],
            "latest_charge": FixtureIDs.stripe("ch_"),
            "metadata": ["order_id": "1042"],
        ]
        return event(type: "payment_intent.succeeded", object: object, created: now)
    }

    @Sendable static func checkoutSessionCompleted() -> [UInt8] {
        let now = Int(Date().timeIntervalSince1970)
        let object: [String: Any] = [
            "id": FixtureIDs.stripe("cs_test_"), "object": "checkout.session", "mode": "payment",
            "amount_subtotal": 4200, "amount_total": 4200, "currency": "usd",
            "customer": FixtureIDs.stripe("cus_"),
            "customer_details": ["email": "jenny.rosen@example.com", "name": "Jenny Rosen"],
            "payment_intent": FixtureIDs.stripe("pi_"), "payment_status": "paid", "status": "complete",
            "created": now - 60, "livemode": false,
            "metadata": ["order_id": "1043"],
        ]
        return event(type: "checkout.session.completed", object: object, created: now)
    }

    /// Stripe's event envelope around `object`.
    private static func event(type: String, object: [String: Any], created: Int) -> [UInt8] {
        FixtureIDs.json([
            "id": FixtureIDs.stripe("evt_"), "object": "event", "api_version": "2024-06-20",
            "created": created, "type": type, "livemode": false, "pending_webhooks": 1,
            "request": ["id": FixtureIDs.stripe("req_"), "idempotency_key": UUID().uuidString.lowercased()],
            "data": ["object": object],
        ])
    }
}

enum FormFixtures {
    @Sendable static func contactForm() -> [UInt8] {
        FixtureIDs.json([
            "type": "form.submitted",
            "submission_id": "sub_" + UUID().uuidString.lowercased().prefix(12),
            "form": "contact",
            "submitted_at": ISO8601DateFormatter().string(from: Date()),
            "fields": [
                "name": "Jenny Rosen", "email": "jenny.rosen@example.com", "company": "Rosen Bakery",
                "message": "Hello! Could you send me a quote for 40 croissants every Saturday?",
            ],
        ])
    }
}
