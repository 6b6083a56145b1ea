import DoorbellCore
import DoorbellVerification
import Foundation
import Testing

/// Stripe vectors produced by Stripe's official Python library (scripts/vectors/stripe_vectors.py).
@Suite("Stripe signatures")
struct StripeSchemeTests {
    struct Vector: CustomTestStringConvertible, Sendable {
        let name: String
        let body: String
        let header: String?
        let secrets: [String]
        let now: Int
        let tolerance: Int
        let expect: String
        let reason: String?
        let libraryAccepts: Bool
        var testDescription: String { name }
    }

    static let vectors: [Vector] = {
        let root = try! TestFixtures.json("stripe-vectors.json")
        return (root["vectors"] as! [[String: Any]]).map { item in
            Vector(
                name: item["name"] as! String, body: item["body"] as! String, header: item["header"] as? String,
                secrets: item["secrets"] as! [String], now: item["now"] as! Int, tolerance: item["tolerance"] as! Int,
                expect: item["expect"] as! String, reason: item["reason"] as? String,
                libraryAccepts: item["library_accepts"] as! Bool
            )
        }
    }()

    @Test("the committed vectors cover every required case")
    func coverage() {
        let names = Set(Self.vectors.map(\.name))
        for required in ["valid", "tampered body (one byte)", "wrong secret", "two v1 during rotation, new secret configured", "v0 only", "stale timestamp", "future timestamp", "missing header", "garbage header"] {
            #expect(names.contains(required), "missing vector: \(required)")
        }
    }

    @Test("each vector gets the expected verdict", arguments: vectors)
    func vector(_ vector: Vector) {
        var headers: [Header] = [Header(name: "Content-Type", value: "application/json")]
        if let header = vector.header { headers.append(Header(name: "Stripe-Signature", value: header)) }
        let request = SignedRequest(headers: headers, body: Array(vector.body.utf8))
        let now = Date(timeIntervalSince1970: TimeInterval(vector.now))
        let outcome = Result { () throws(VerificationFailure) in
            try StripeScheme().verify(request, secrets: vector.secrets, tolerance: vector.tolerance, now: now)
        }
        switch (vector.expect, outcome) {
        case ("accept", .success):
            #expect(vector.libraryAccepts, "Stripe's library refused a vector Doorbell accepts")
        case ("reject", .failure(let failure)):
            #expect(failure.label == vector.reason, "wrong reason: \(failure)")
            #expect(!"\(failure)".contains(vector.secrets[0]), "a refusal must never echo a secret")
        default:
            Issue.record("expected \(vector.expect), got \(outcome)")
        }
    }

    @Test("what Doorbell signs passes Stripe's official verifier")
    func signedByDoorbellVerifiedByStripe() throws {
        let body = TestFixtures.stripeEvent()
        let header = StripeScheme().sign(body: body, url: "", secret: TestConfigs.stripeSecret, now: Date())[0].value
        let script = """
            import sys, stripe
            body, header, secret = sys.argv[1], sys.argv[2], sys.argv[3]
            stripe.WebhookSignature.verify_header(body, header, secret, 300)
            try:
                stripe.WebhookSignature.verify_header(body + " ", header, secret, 300)
                sys.exit("tampered body accepted")
            except stripe.SignatureVerificationError:
                pass
            print("verified")
            """
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, String(decoding: body, as: UTF8.self), header, TestConfigs.stripeSecret])
        #expect(result.status == 0, "python: \(result.stderr)")
        #expect(result.stdout.contains("verified"))
    }
}
