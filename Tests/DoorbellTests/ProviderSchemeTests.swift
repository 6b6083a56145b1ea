import Crypto
import DoorbellCore
import DoorbellVerification
import Foundation
import Testing

/// GitHub, Shopify, Twilio, Standard Webhooks (v1, v1a) and generic HMAC vectors, produced by the
/// official libraries where they exist (scripts/vectors/provider_vectors.py).
@Suite("Provider signatures")
struct ProviderSchemeTests {
    struct Vector: CustomTestStringConvertible, Sendable {
        let provider: ProviderKind
        let name: String
        let body: String
        let headers: [Header]
        let url: String
        let secrets: [String]
        let now: Int
        let tolerance: Int
        let expect: String
        let reason: String?
        let hmac: HMACSettings?
        let libraryAccepts: Bool?
        var testDescription: String { name }
    }

    nonisolated(unsafe) static let root = try! TestFixtures.json("provider-vectors.json")
    static let keys = root["keys"] as! [String: String]
    static let vectors: [Vector] = (root["vectors"] as! [[String: Any]]).map { item in
        var hmac: HMACSettings?
        if let settings = item["hmac"] as? [String: String] {
            hmac = HMACSettings(
                header: settings["header"]!, algorithm: .init(rawValue: settings["algorithm"]!)!,
                encoding: .init(rawValue: settings["encoding"]!)!, prefix: settings["prefix"] ?? "",
                timestampHeader: settings["timestamp_header"]
            )
        }
        return Vector(
            provider: ProviderKind(rawValue: item["provider"] as! String)!, name: item["name"] as! String,
            body: item["body"] as! String,
            headers: (item["headers"] as! [String: String]).map { Header(name: $0.key, value: $0.value) },
            url: item["url"] as! String, secrets: item["secrets"] as! [String], now: item["now"] as! Int,
            tolerance: item["tolerance"] as! Int, expect: item["expect"] as! String, reason: item["reason"] as? String,
            hmac: hmac, libraryAccepts: item["library_accepts"] as? Bool
        )
    }

    @Test("every scheme has valid, tampered, wrong-secret and missing-header vectors")
    func coverage() {
        for provider in [ProviderKind.github, .shopify, .twilio, .standard] {
            let reasons = Set(Self.vectors.filter { $0.provider == provider }.map { $0.reason ?? "accept" })
            for needed in ["accept", "signature_mismatch", "missing_header", "malformed_header"] {
                #expect(reasons.contains(needed), "\(provider) lacks a \(needed) vector")
            }
        }
    }

    @Test("each vector gets the expected verdict", arguments: vectors)
    func vector(_ vector: Vector) throws {
        let scheme = try #require(vector.provider.scheme(hmac: vector.hmac))
        let request = SignedRequest(headers: vector.headers, body: Array(vector.body.utf8), url: vector.url)
        let outcome = Result { () throws(VerificationFailure) in
            try scheme.verify(request, secrets: vector.secrets, tolerance: vector.tolerance, now: Date(timeIntervalSince1970: TimeInterval(vector.now)))
        }
        if let library = vector.libraryAccepts {
            #expect(library == (vector.expect == "accept"), "the official library disagrees with the expectation")
        }
        switch (vector.expect, outcome) {
        case ("accept", .success): break
        case ("reject", .failure(let failure)):
            #expect(failure.label == vector.reason, "wrong reason: \(failure)")
        default:
            Issue.record("expected \(vector.expect), got \(outcome)")
        }
    }

    @Test("what Doorbell signs passes the official verifiers (standardwebhooks, twilio, Ed25519)")
    func signedByDoorbellVerifiedByLibraries() throws {
        let body = Array(#"{"type":"order.created","data":{"order_id":"ord_9","note":"café"}}"#.utf8)
        let now = Date()
        let v1 = StandardScheme().sign(body: body, url: "", secret: Self.keys["standard_v1"]!, now: now)
        let v1a = StandardScheme().sign(body: body, url: "", secret: Self.keys["standard_secret_key"]!, now: now)
        let form = Array("Body=Hello+%F0%9F%A5%90&From=%2B14155550199&MessageSid=SM1&To=%2B14155550100".utf8)
        let twilioURL = "https://hooks.example.com/hooks/twilio?x=1"
        let twilio = StandardHeaders(TwilioScheme().sign(body: form, url: twilioURL, secret: "token-123", now: now))
        let script = """
            import base64, json, sys, urllib.parse, standardwebhooks
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from twilio.request_validator import RequestValidator
            a = json.loads(sys.argv[1])
            standardwebhooks.Webhook(a["v1_secret"]).verify(a["body"], a["v1"])
            h = a["v1a"]
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(a["public"][5:]))
            signed = (h["webhook-id"] + "." + h["webhook-timestamp"] + "." + a["body"]).encode()
            public.verify(base64.b64decode(h["webhook-signature"].split(",", 1)[1]), signed)
            params = dict(urllib.parse.parse_qsl(a["form"]))
            assert RequestValidator("token-123").validate(a["twilio_url"], params, a["twilio"]["x-twilio-signature"]), "twilio"
            print("verified")
            """
        let arguments: [String: Any] = [
            "body": String(decoding: body, as: UTF8.self), "v1_secret": Self.keys["standard_v1"]!,
            "v1": StandardHeaders(v1).dictionary, "v1a": StandardHeaders(v1a).dictionary, "public": Self.keys["standard_public"]!,
            "form": String(decoding: form, as: UTF8.self), "twilio_url": twilioURL, "twilio": twilio.dictionary,
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, json])
        #expect(result.status == 0, "python: \(result.stderr)")
        #expect(result.stdout.contains("verified"))
    }

    @Test("a kept signing key signs every payload as a freshly keyed one does, from concurrent tasks too")
    func keptSigningKeys() async throws {
        let signer = StandardSigner(capacity: 2)
        let v1 = Self.keys["standard_v1"]!, whsk = Self.keys["standard_secret_key"]!
        let other = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString(), third = "whsec_" + Data(repeating: 9, count: 32).base64EncodedString()
        /// How many keys the signer keeps, as its dump reports it.
        func kept() -> Int? { Mirror(reflecting: signer).children.first { $0.label == "kept" }?.value as? Int }
        /// What the header must be: the HMAC keyed anew for this one payload (swift-crypto's one-shot API).
        func expected(_ id: String, _ body: [UInt8], _ secret: String) -> String {
            let key = SymmetricKey(data: Data(base64Encoded: String(secret.dropFirst(6)))!)
            let payload = Array("\(id).1700000000.".utf8) + body
            return "v1," + Data(HMAC<SHA256>.authenticationCode(for: payload, using: key)).base64EncodedString()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for n in 0..<200 {
                        let id = "evt_\(task)_\(n)", body = Array("{\"n\":\(n),\"pad\":\"\(String(repeating: "x", count: n))\"}".utf8)
                        // Three secrets through a signer that keeps two: kept, dropped and prepared again.
                        let secret = [v1, other, third][n % 3]
                        let header = signer.signatureHeader(id: id, timestamp: 1_700_000_000, body: body, secrets: [secret])
                        #expect(header == expected(id, body, secret), "payload \(n) of task \(task)")
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(kept().map { $0 >= 1 && $0 <= 2 } == true, "kept \(String(describing: kept())) keys; capacity 2")
        // Both kinds at once, as during a rotation: v1 is the one-shot HMAC, v1a verifies with the
        // public key (Ed25519 signatures need not be deterministic, so no string comparison).
        let body = Array(#"{"type":"order.paid"}"#.utf8)
        let publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: try #require(Data(base64Encoded: String(Self.keys["standard_public"]!.dropFirst(5)))))
        for _ in 0..<2 {
            let parts = signer.signatureHeader(id: "evt_1", timestamp: 1_700_000_000, body: body, secrets: [v1, whsk]).split(separator: " ").map(String.init)
            #expect(parts.count == 2 && parts[0] == expected("evt_1", body, v1))
            let v1a = try #require(parts.last.flatMap { $0.hasPrefix("v1a,") ? Data(base64Encoded: String($0.dropFirst(4))) : nil })
            #expect(publicKey.isValidSignature(v1a, for: Array("evt_1.1700000000.".utf8) + body))
        }
        // A dump of the signer names no secret.
        var dumped = ""
        dump(signer, to: &dumped)
        #expect(!dumped.contains(String(v1.dropFirst(6))) && !dumped.contains(String(whsk.dropFirst(5))), "\(dumped)")
        // A public key cannot sign: no signature, kept or not.
        #expect(signer.signatureHeader(id: "evt_1", timestamp: 1_700_000_000, body: body, secrets: [Self.keys["standard_public"]!]) == "")
        #expect(signer.signatureHeader(id: "evt_1", timestamp: 1_700_000_000, body: body, secrets: [Self.keys["standard_public"]!]) == "")
    }

    @Test("random and truncated header values never crash a parser: always a refusal")
    func fuzzHeaders() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("tv01=,;: abcdefxyz+/_-.whsecpk\u{0}é\t")
        // Vectors with one signature only: with two, changing the one that does not match changes nothing.
        let samples = Self.vectors.filter { $0.expect == "accept" && !$0.name.contains("rotation") && !$0.name.contains("beside") }
        for _ in 0..<3000 {
            let vector = samples.randomElement(using: &generator)!
            let scheme = vector.provider.scheme(hmac: vector.hmac)!
            var headers = vector.headers
            let index = Int.random(in: 0..<headers.count, using: &generator)
            let original = headers[index].value
            let value: String = switch Int.random(in: 0..<3, using: &generator) {
            case 0: String(original.prefix(Int.random(in: 0..<max(1, original.count), using: &generator)))
            case 1: String((0..<Int.random(in: 0..<80, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            default: original + String(alphabet.randomElement(using: &generator)!)
            }
            guard value != original else { continue }
            headers[index] = Header(name: headers[index].name, value: value)
            let request = SignedRequest(headers: headers, body: Array(vector.body.utf8), url: vector.url)
            let accepted = (try? scheme.verify(request, secrets: vector.secrets, tolerance: vector.tolerance, now: Date(timeIntervalSince1970: TimeInterval(vector.now)))) != nil
            // Changing a signature, timestamp or id header must never keep a request valid; other headers
            // (Content-Type, event names) are not signed and may change freely.
            let signedHeader = ["stripe-signature", "x-hub-signature-256", "x-shopify-hmac-sha256", "x-twilio-signature", "webhook-signature", "webhook-timestamp", "webhook-id", "svix-signature", "svix-timestamp", "svix-id", "x-signature", "x-timestamp", "x-hook-signature"].contains(headers[index].name)
            if signedHeader && accepted && !isEquivalent(original, value) {
                Issue.record("\(vector.name): changed \(headers[index].name) to '\(value)' and it still verified")
            }
        }
    }

    /// Appending a separator to a list header (`v1,… ` or `…,`) leaves the same signatures in it.
    private func isEquivalent(_ original: String, _ changed: String) -> Bool {
        changed.hasPrefix(original) && changed.dropFirst(original.count).allSatisfy { " ,;\t".contains($0) }
            || changed.trimmingCharacters(in: .whitespaces) == original
    }
}

/// Signed headers as a lower-cased dictionary, for handing to Python.
struct StandardHeaders {
    let dictionary: [String: String]
    init(_ headers: [Header]) {
        dictionary = Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
    }
}
