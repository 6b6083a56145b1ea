import DoorbellCore
import Foundation

/// A sample event `doorbell trigger` and the dashboard's set-up page send: a realistic payload for one provider, with fresh
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
    /// Headers the provider sends besides its signature (event type, delivery id), built anew each send.
    public var makeHeaders: @Sendable () -> [Header] = { [] }

    /// Every fixture, in the order `--list` prints them.
    public static let all: [Fixture] = [
        Fixture(name: "stripe payment_intent.succeeded", provider: .stripe, summary: "a card payment of $42.00 succeeded", contentType: "application/json", makeBody: StripeFixtures.paymentIntentSucceeded),
        Fixture(name: "stripe checkout.session.completed", provider: .stripe, summary: "a Checkout session was paid", contentType: "application/json", makeBody: StripeFixtures.checkoutSessionCompleted),
        Fixture(name: "github push", provider: .github, summary: "commits pushed to main", contentType: "application/json", makeBody: GitHubFixtures.push, makeHeaders: { GitHubFixtures.headers(event: "push") }),
        Fixture(name: "github pull_request", provider: .github, summary: "a pull request was opened", contentType: "application/json", makeBody: GitHubFixtures.pullRequest, makeHeaders: { GitHubFixtures.headers(event: "pull_request") }),
        Fixture(name: "shopify orders/create", provider: .shopify, summary: "a new order in the shop", contentType: "application/json", makeBody: ShopifyFixtures.orderCreated, makeHeaders: { ShopifyFixtures.headers(topic: "orders/create") }),
        Fixture(name: "twilio sms", provider: .twilio, summary: "an incoming SMS (form-encoded)", contentType: "application/x-www-form-urlencoded", makeBody: TwilioFixtures.incomingSMS),
        Fixture(name: "standard order.created", provider: .standard, summary: "a Standard Webhooks event", contentType: "application/json", makeBody: StandardFixtures.orderCreated),
        Fixture(name: "form", provider: .hmac, summary: "a contact form submission (generic HMAC)", contentType: "application/json", makeBody: FormFixtures.contactForm),
    ]

    /// Finds a fixture from the words given on the command line (`stripe payment_intent.succeeded`,
    /// `stripe/payment_intent.succeeded`, or the event type alone when it is unambiguous).
    public static func find(_ words: [String]) -> Fixture? {
        let wanted = words.joined(separator: " ").lowercased()
        if let exact = all.first(where: { $0.name == wanted }) { return exact }
        if let slash = wanted.firstIndex(of: "/"), let match = all.first(where: { $0.name == wanted.replacingCharacters(in: slash...slash, with: " ") }) {
            return match
        }
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

enum GitHubFixtures {
    static func headers(event: String) -> [Header] {
        [
            Header(name: "X-GitHub-Event", value: event),
            Header(name: "X-GitHub-Delivery", value: UUID().uuidString.lowercased()),
            Header(name: "X-GitHub-Hook-ID", value: "512345678"),
            Header(name: "User-Agent", value: "GitHub-Hookshot/doorbell"),
        ]
    }

    private static var repository: [String: Any] { [
        "id": 786_543_210, "name": "storefront", "full_name": "rosen-bakery/storefront", "private": true,
        "html_url": "https://github.com/rosen-bakery/storefront", "default_branch": "main",
        "owner": ["login": "rosen-bakery", "id": 9_876_543, "type": "Organization"],
    ] }
    private static var sender: [String: Any] { ["login": "jenny-rosen", "id": 1_234_567, "type": "User"] }

    @Sendable static func push() -> [UInt8] {
        let after = (0..<40).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        return FixtureIDs.json([
            "ref": "refs/heads/main", "before": String(repeating: "a", count: 40), "after": after,
            "repository": repository, "sender": sender, "pusher": ["name": "jenny-rosen", "email": "jenny@example.com"],
            "created": false, "deleted": false, "forced": false,
            "compare": "https://github.com/rosen-bakery/storefront/compare/aaaaaaaaaaaa...\(after.prefix(12))",
            "commits": [[
                "id": after, "message": "Add Saturday croissant subscription", "timestamp": ISO8601DateFormatter().string(from: Date()),
                "author": ["name": "Jenny Rosen", "email": "jenny@example.com", "username": "jenny-rosen"],
                "added": ["subscriptions/saturday.md"], "removed": [], "modified": ["README.md"],
            ]],
            "head_commit": ["id": after, "message": "Add Saturday croissant subscription"],
        ])
    }

    @Sendable static func pullRequest() -> [UInt8] {
        let number = Int.random(in: 10...9999)
        return FixtureIDs.json([
            "action": "opened", "number": number, "repository": repository, "sender": sender,
            "pull_request": [
                "id": Int.random(in: 1_000_000...9_999_999), "number": number, "state": "open", "draft": false,
                "title": "Online ordering for Saturday pickups", "body": "Adds a pickup slot picker.",
                "html_url": "https://github.com/rosen-bakery/storefront/pull/\(number)",
                "user": sender, "head": ["ref": "saturday-pickup"], "base": ["ref": "main"],
                "created_at": ISO8601DateFormatter().string(from: Date()),
            ],
        ])
    }
}

enum ShopifyFixtures {
    static func headers(topic: String) -> [Header] {
        [
            Header(name: "X-Shopify-Topic", value: topic),
            Header(name: "X-Shopify-Webhook-Id", value: UUID().uuidString.lowercased()),
            Header(name: "X-Shopify-Shop-Domain", value: "rosen-bakery.myshopify.com"),
            Header(name: "X-Shopify-API-Version", value: "2024-07"),
            Header(name: "X-Shopify-Triggered-At", value: ISO8601DateFormatter().string(from: Date())),
        ]
    }

    @Sendable static func orderCreated() -> [UInt8] {
        let id = Int.random(in: 5_000_000_000_000...5_999_999_999_999)
        return FixtureIDs.json([
            "id": id, "admin_graphql_api_id": "gid://shopify/Order/\(id)", "name": "#\(Int.random(in: 1001...9999))",
            "email": "jenny.rosen@example.com", "currency": "USD", "financial_status": "paid",
            "total_price": "42.00", "subtotal_price": "38.00", "total_tax": "4.00",
            "created_at": ISO8601DateFormatter().string(from: Date()),
            "customer": ["id": 7_123_456_789, "first_name": "Jenny", "last_name": "Rosen", "email": "jenny.rosen@example.com"],
            "line_items": [
                ["id": 13_579_246_810, "title": "Butter croissant", "quantity": 10, "price": "3.00", "sku": "CRS-BTR"],
                ["id": 13_579_246_811, "title": "Pain au chocolat", "quantity": 2, "price": "4.00", "sku": "PAC-01"],
            ],
            "shipping_address": ["name": "Jenny Rosen", "address1": "1 Market St", "city": "San Francisco", "zip": "94105", "country_code": "US"],
        ])
    }
}

enum TwilioFixtures {
    @Sendable static func incomingSMS() -> [UInt8] {
        let sid = "SM" + (0..<32).map { _ in String("0123456789abcdef".randomElement()!) }.joined()
        let fields: [(String, String)] = [
            ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", sid), ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"), ("SmsSid", sid), ("FromState", "CA"),
            ("SmsStatus", "received"), ("FromCity", "SAN FRANCISCO"), ("Body", "Is the bakery open on Sunday? 🥐"),
            ("FromCountry", "US"), ("To", "+14155550100"), ("ToZip", "94105"), ("NumSegments", "1"),
            ("MessageSid", sid), ("AccountSid", "AC" + String(repeating: "0", count: 32)), ("From", "+14155550199"),
            ("ApiVersion", "2010-04-01"),
        ]
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return Array(fields.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }.joined(separator: "&").utf8)
    }
}

enum StandardFixtures {
    @Sendable static func orderCreated() -> [UInt8] {
        FixtureIDs.json([
            "type": "order.created", "timestamp": ISO8601DateFormatter().string(from: Date()),
            "data": [
                "order_id": "ord_" + UUID().uuidString.lowercased().prefix(12), "total": 4200, "currency": "usd",
                "customer": ["name": "Jenny Rosen", "email": "jenny.rosen@example.com"],
                "items": [["sku": "CRS-BTR", "quantity": 10]],
            ],
        ])
    }
}
