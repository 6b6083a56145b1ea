import Crypto
import DoorbellCore
import Foundation
import Testing

@testable import DoorbellVerification

/// The ingest fast path (`JSONFieldScanner`, `HeaderText.trimmingWhitespace`) against the Foundation
/// calls it replaces: an event's type, id and refusals must not change with it.
@Suite("JSON field scanner")
struct JSONFieldScannerTests {
    /// Pointer sets the identity asks for: provider conventions, nested and odd configured pointers.
    static let pointerSets: [[JSONPointer]] = [
        ["/type", "/id"],
        ["/data/object/id", "/type"],
        ["/\u{e9}", "/K"],
        ["/a~1b", "/x~0y"],
        [""],
        ["/items/0", "/id"],
        ["/a/b/c", "/"],
    ].map { $0.map { JSONPointer($0)! } }

    /// What `JSONSerialization` + `JSONPointer.string(in:)` say about a body.
    enum Reference: Equatable, CustomStringConvertible {
        case refused
        case notObject
        case fields([String?])

        var description: String {
            switch self {
            case .refused: "refused"
            case .notObject: "not an object"
            case .fields(let values): "\(values)"
            }
        }
    }

    static func reference(_ body: [UInt8], _ pointers: [JSONPointer]) -> Reference {
        guard let root = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else { return .refused }
        guard root is [String: Any] else { return .notObject }
        return .fields(pointers.map { $0.string(in: root) })
    }

    /// The scanner's answer in the same terms, or nil when it hands the body to Foundation.
    static func scanned(_ body: [UInt8], _ pointers: [JSONPointer]) -> Reference? {
        JSONFieldScanner.scan(body, pointers: pointers).map { fields in
            .fields(fields.map { if case .text(let text) = $0 { text } else { nil } })
        }
    }

    /// Runs one body through every pointer set; true when the fast path answered at least once.
    @discardableResult
    static func agree(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        var answered = false
        for pointers in pointerSets {
            guard let fast = scanned(body, pointers) else { continue }
            answered = true
            let slow = reference(body, pointers)
            #expect(fast == slow, "body \(String(decoding: body, as: UTF8.self).debugDescription) pointers \(pointers)", sourceLocation: sourceLocation)
        }
        return answered
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    static func wrap(_ value: String) -> [UInt8] { Array(#"{"type":"\#(value)","id":"evt_1"}"#.utf8) }

    /// Bodies the fast path answers itself, each checked against Foundation.
    static let answered: [(String, [UInt8])] = [
        ("stripe-like", bytes(#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","amount":2000,"paid":true,"lines":[1,2.5,{"x":null}]}},"livemode":false}"#)),
        ("whitespace everywhere", bytes(" \t\r\n{ \"type\" : \"a\" ,\n\t\"id\"\r: \"b\" }\n ")),
        ("escapes", wrap(#"a\"b\\c\/d\b\f\n\r\t"#)),
        ("unicode escape", wrap(#"caf\u00e9 \u00E9"#)),
        ("surrogate pair", wrap(#"\ud83d\ude00 smile"#)),
        ("NUL escape", wrap(#"a\u0000b"#)),
        ("raw UTF-8", bytes("{\"type\":\"caf\u{e9} \u{1F600} \u{FFFF}\",\"id\":\"\u{10FFFF}\"}")),
        ("raw DEL", bytes("{\"type\":\"a\u{7f}b\"}")),
        ("nested", bytes(#"{"data":{"object":{"id":"in_9"}},"type":"t"}"#)),
        ("duplicate key: last wins", bytes(#"{"type":"first","type":"second"}"#)),
        ("duplicate parent: last wins", bytes(#"{"data":{"object":{"id":"x"}},"data":{"object":{}}}"#)),
        ("duplicate parent: earlier scalar", bytes(#"{"data":"x","data":{"object":{"id":"y"}}}"#)),
        ("canonically equal keys", bytes("{\"\u{e9}\":\"one\",\"e\u{301}\":\"two\"}")),
        ("kelvin sign equals K", bytes("{\"\u{212A}\":\"kelvin\"}")),
        ("escaped key", bytes(#"{"\u0074ype":"escaped","i\u0064":"x"}"#)),
        ("escaped non-ASCII key", bytes(#"{"\u00e9":"acute"}"#)),
        ("pointer escapes", bytes(#"{"a/b":"slash","x~y":"tilde"}"#)),
        ("empty key", bytes(#"{"":"empty"}"#)),
        ("null at pointer", bytes(#"{"type":null,"id":null}"#)),
        ("object and array at pointer", bytes(#"{"type":{"a":1},"id":[1]}"#)),
        ("booleans at pointer", bytes(#"{"type":true,"id":false}"#)),
        ("integers at pointer", bytes(#"{"type":42,"id":-7}"#)),
        ("zero at pointer", bytes(#"{"type":0,"id":123456789012345678}"#)),
        ("numbers elsewhere", bytes(#"{"type":"t","n":[0,-0,1.5,-2.25e10,1E+2,0.1234567890123456789]}"#)),
        ("missing", bytes(#"{"other":"x"}"#)),
        ("empty object", bytes("{}")),
        ("scalar on the path", bytes(#"{"data":"text","a":{"b":5}}"#)),
        ("deep but allowed", bytes(String(repeating: #"{"a":"#, count: 400) + "1" + String(repeating: "}", count: 400))),
        ("array of arrays", bytes(#"{"type":"t","x":[[],[[]],{},[{}]]}"#)),
    ]

    @Test("common and tricky bodies are answered on the fast path, as Foundation answers them")
    func answeredBodies() {
        for (name, body) in Self.answered {
            #expect(Self.agree(body), "\(name): expected the fast path to answer")
        }
    }

    /// Bodies Foundation refuses, accepts in a non-standard way, or that need its number or array
    /// rules: the scanner must not answer them differently (it hands them over).
    static let handedOver: [(String, [UInt8])] = [
        ("empty", []),
        ("whitespace only", bytes("  \n")),
        ("top-level array", bytes(#"[{"type":"a"}]"#)),
        ("top-level string", bytes(#""type""#)),
        ("top-level number", bytes("12")),
        ("BOM", [0xEF, 0xBB, 0xBF] + bytes(#"{"type":"a"}"#)),
        ("UTF-16", Array("{\"type\":\"a\"}".data(using: .utf16LittleEndian)!)),
        ("trailing comma in object", bytes(#"{"type":"a",}"#)),
        ("trailing comma in array", bytes(#"{"type":"a","x":[1,]}"#)),
        ("trailing garbage", bytes(#"{"type":"a"} x"#)),
        ("two documents", bytes(#"{"type":"a"}{}"#)),
        ("trailing NUL", bytes(#"{"type":"a"}"#) + [0]),
        ("form feed", bytes("{\"type\":\"a\"}\u{c}")),
        ("no-break space", bytes("{\"type\":\"a\"}\u{a0}")),
        ("lone high surrogate", wrap(#"\ud800"#)),
        ("lone low surrogate", wrap(#"\udc00"#)),
        ("reversed pair", wrap(#"\ude00\ud83d"#)),
        ("high then non-low", wrap(#"\ud83d\u0041"#)),
        ("bad escape", wrap(#"\x"#)),
        ("capital U escape", wrap(#"\U00e9"#)),
        ("short unicode escape", wrap(#"\u00e"#)),
        ("raw control character", bytes("{\"type\":\"a\u{1}\"}")),
        ("raw newline in string", bytes("{\"type\":\"a\nb\"}")),
        ("invalid UTF-8", bytes(#"{"type":""#) + [0xFF] + bytes(#""}"#)),
        ("overlong UTF-8", bytes(#"{"type":""#) + [0xC0, 0xAF] + bytes(#""}"#)),
        ("encoded surrogate", bytes(#"{"type":""#) + [0xED, 0xA0, 0x80] + bytes(#""}"#)),
        ("past U+10FFFF", bytes(#"{"type":""#) + [0xF4, 0x90, 0x80, 0x80] + bytes(#""}"#)),
        ("truncated UTF-8", bytes(#"{"type":""#) + [0xE2, 0x82] + bytes(#""}"#)),
        ("invalid UTF-8 in key", bytes(#"{""#) + [0xFE] + bytes(#"":"a"}"#)),
        ("unterminated string", bytes(#"{"type":"a"#)),
        ("unterminated object", bytes(#"{"type":"a""#)),
        ("huge integer", bytes(#"{"type":"a","n":"# + String(repeating: "9", count: 400) + "}")),
        ("huge exponent", bytes(#"{"type":"a","n":1e400}"#)),
        ("tiny exponent", bytes(#"{"type":"a","n":1e-400}"#)),
        ("leading zero", bytes(#"{"n":01}"#)),
        ("bare dot", bytes(#"{"n":1.}"#)),
        ("dot first", bytes(#"{"n":.5}"#)),
        ("plus sign", bytes(#"{"n":+1}"#)),
        ("bare minus", bytes(#"{"n":-}"#)),
        ("empty exponent", bytes(#"{"n":1e}"#)),
        ("NaN", bytes(#"{"n":NaN}"#)),
        ("Infinity", bytes(#"{"n":-Infinity}"#)),
        ("TRUE", bytes(#"{"n":TRUE}"#)),
        ("truncated true", bytes(#"{"n":tru}"#)),
        ("true with tail", bytes(#"{"n":truex}"#)),
        ("null with tail", bytes(#"{"n":null1}"#)),
        ("number with tail", bytes(#"{"n":1x}"#)),
        ("missing comma", bytes(#"{"a":"1" "b":"2"}"#)),
        ("missing colon", bytes(#"{"a" "1"}"#)),
        ("number key", bytes(#"{1:"1"}"#)),
        ("single quotes", bytes("{'type':'a'}")),
        ("comment", bytes(#"{"type":"a" /* c */}"#)),
        ("lone comma", bytes("{,}")),
        ("double comma", bytes(#"{"a":1,,"b":2}"#)),
        ("deep past the limit", bytes(String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600))),
        ("deep arrays past the limit", bytes("{\"a\":" + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}")),
        ("fraction at pointer", bytes(#"{"type":1.5,"id":2.0}"#)),
        ("exponent at pointer", bytes(#"{"type":1e2}"#)),
        ("minus zero at pointer", bytes(#"{"type":-0}"#)),
        ("long integer at pointer", bytes(#"{"type":12345678901234567890123}"#)),
        ("array on the path", bytes(#"{"items":["first"],"id":"x"}"#)),
        // A raw U+FEFF: Foundation on Linux drops one at the start of a string or after an escape.
        ("raw U+FEFF as the whole type", bytes(#"{"type":""#) + [0xEF, 0xBB, 0xBF] + bytes(#""}"#)),
        ("raw U+FEFF before the type", bytes(#"{"type":""#) + [0xEF, 0xBB, 0xBF] + bytes(#"x"}"#)),
        ("raw U+FEFF after an escape", bytes(#"{"type":"A"#) + [0xEF, 0xBB, 0xBF] + bytes(#"x"}"#)),
        ("raw U+FEFF twice", bytes(#"{"type":""#) + [0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF] + bytes(#"x"}"#)),
        ("raw U+FEFF in a key", bytes(#"{""#) + [0xEF, 0xBB, 0xBF] + bytes(#"type":"k"}"#)),
        ("raw U+FEFF before the id", bytes(#"{"type":"a","id":""#) + [0xEF, 0xBB, 0xBF] + bytes(#"evt_1"}"#)),
    ]

    @Test("refused and unusual bodies get Foundation's answer")
    func handedOverBodies() {
        for (_, body) in Self.handedOver {
            Self.agree(body)
        }
        for (name, body) in Self.handedOver where name.hasPrefix("raw U+FEFF") {
            #expect(JSONFieldScanner.scan(body, pointers: []) == nil, "\(name): left to Foundation")
        }
        // The refusals themselves: the scanner leaves every one to Foundation.
        for (name, body) in Self.handedOver where Self.reference(body, []) == .refused {
            #expect(JSONFieldScanner.scan(body, pointers: []) == nil, "\(name)")
        }
    }

    @Test("thousands of generated and mutated documents: same answer as Foundation")
    func randomDocuments() {
        var random = SplitMix64(seed: 0x000D_00BE_1113)
        var answered = 0
        var refusedByFoundation = 0
        for round in 0..<4_000 {
            let document = Generator.document(&random)
            if Self.agree(document) { answered += 1 }
            // Mutations: a byte dropped, changed or inserted, a cut, a slice repeated.
            var mutated = document
            for _ in 0...Int(random.next() % 3) where !mutated.isEmpty {
                let at = Int(random.next() % UInt64(mutated.count))
                switch random.next() % 5 {
                case 0: mutated.remove(at: at)
                case 1: mutated[at] = Generator.noise(&random)
                case 2: mutated.insert(Generator.noise(&random), at: at)
                case 3: mutated.removeSubrange(at...)
                default: mutated.insert(contentsOf: mutated[at..<min(mutated.count, at + 8)], at: at)
                }
            }
            if Self.reference(mutated, []) == .refused {
                refusedByFoundation += 1
                #expect(JSONFieldScanner.scan(mutated, pointers: []) == nil, "round \(round): a body Foundation refuses was accepted")
            }
            Self.agree(mutated)
        }
        // The comparison means something only if both paths were exercised.
        #expect(answered > 1_000)
        #expect(refusedByFoundation > 1_000)
    }

    @Test("header trimming matches Foundation's trimmingCharacters(in: .whitespaces)")
    func headerTrimming() {
        let values = [
            "", " ", "\t", "  \t ", "abc", " abc ", "\tsha256=ab12\t", "a b", " a b ", "abc\r\n", "\r\nabc \r",
            "\u{a0}abc\u{a0}", " \u{a0}abc", "abc\u{3000} ", "\u{2003}x", " \u{301}abc", "abc \u{301}", "abc\u{301} ",
            "caf\u{e9}", " caf\u{e9} ", "\u{1F600} ", " t=1,v1=ab ", "\u{85}x\u{85}", "\u{200B}x",
        ]
        for value in values {
            let expected = value.trimmingCharacters(in: .whitespaces)
            #expect(String(HeaderText.trimmingWhitespace(value)) == expected, "\(value.debugDescription)")
            let padded = "," + value + ","
            let inner = padded.dropFirst().dropLast()
            #expect(String(HeaderText.trimmingWhitespace(inner)) == inner.trimmingCharacters(in: .whitespaces), "\(value.debugDescription)")
        }
    }

    @Test("provider conventions are the same prepared once as built per call")
    func conventions() {
        for provider in ProviderKind.allCases {
            let prepared = ProviderConventions.of(provider)
            let built = ProviderConventions(provider)
            #expect(prepared.type == built.type && prepared.id == built.id, "\(provider)")
            #expect(prepared.typeRequired == built.typeRequired && prepared.idRequired == built.idRequired, "\(provider)")
        }
    }

    @Test("the event identity and its refusals are unchanged")
    func identity() throws {
        func read(_ provider: ProviderKind, _ body: String, type: String? = nil, id: String? = nil, headers: [Header] = []) -> String {
            var source = Source(id: "s", provider: provider)
            source.eventType = type.flatMap { ValueRule.parse($0) }
            source.eventID = id.flatMap { ValueRule.parse($0) }
            let request = SignedRequest(headers: [Header(name: "content-type", value: "application/json")] + headers, body: Array(body.utf8))
            do {
                let identity = try EventIdentity.read(from: request, source: source)
                return "\(identity.type) \(identity.providerID ?? "-")"
            } catch {
                return "refused: \(error.description)"
            }
        }
        #expect(read(.stripe, #"{"id":"evt_1","type":"invoice.paid"}"#) == "invoice.paid evt_1")
        #expect(read(.stripe, #"{"id":"evt_1","type":"a","type":"b"}"#) == "b evt_1")
        #expect(read(.stripe, #"{"id":"evt_1"}"#) == "refused: event type not found at JSON pointer /type")
        #expect(read(.stripe, #"{"type":"a","id":""}"#) == "refused: event id (the dedupe key) not found at JSON pointer /id")
        #expect(read(.stripe, #"{"type":"a","id":7}"#) == "a 7")
        #expect(read(.stripe, #"{"type":"a","id":1.5}"#) == "a 1.5")
        #expect(read(.stripe, #"{"type":"a","id":"x",}"#) == "a x")
        #expect(read(.stripe, #"[{"type":"a"}]"#) == "refused: expected a JSON object")
        #expect(read(.stripe, #"{"type":"a""#) == "refused: malformed JSON")
        #expect(read(.stripe, "") == "refused: empty body; expected JSON")
        #expect(read(.stripe, #"{"type":"\ud800","id":"x"}"#) == "refused: malformed JSON")
        #expect(read(.hmac, #"{"type":"caf\u00e9"}"#) == "caf\u{e9} -")
        #expect(read(.hmac, #"{"data":{"kind":"k","id":"i"}}"#, type: "/data/kind", id: "/data/id") == "k i")
        #expect(read(.hmac, #"{"items":[{"id":"i"}],"type":"t"}"#, id: "/items/0/id") == "t i")
        #expect(read(.none, #"{"nothing":1}"#) == "webhook -")
        #expect(read(.standard, #"{"type":"user.created"}"#, headers: [Header(name: "webhook-id", value: "msg_1")]) == "user.created msg_1")
    }
}

/// Keys prepared at start-up (`SignatureScheme.preparing(secrets:)`) must verify exactly as keys
/// derived per request, and a scheme holding them must never show a secret.
@Suite("Prepared signature keys")
struct PreparedKeysTests {
    static let secrets = ["whsec_" + Data("prepared-secret-one".utf8).base64EncodedString(), "whsec_" + Data("prepared-secret-two".utf8).base64EncodedString()]
    static let schemes: [(String, any SignatureScheme)] = [
        ("hmac", HMACScheme(settings: HMACSettings())), ("github", HMACScheme.github), ("shopify", HMACScheme.shopify),
        ("stripe", StripeScheme()), ("standard", StandardScheme()), ("twilio", TwilioScheme()),
    ]

    static func outcome(_ scheme: any SignatureScheme, _ request: SignedRequest, _ secrets: [String], _ now: Date) -> String {
        do {
            try scheme.verify(request, secrets: secrets, tolerance: 300, now: now)
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test("prepared and per-request keys give the same verdicts")
    func sameVerdicts() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let body = Array(#"{"type":"t","id":"evt_1"}"#.utf8)
        // Twilio signs a JSON body through the bodySHA256 the URL carries.
        let url = "https://hooks.example.com/hooks/s?bodySHA256=" + SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        for (name, scheme) in Self.schemes {
            let prepared = scheme.preparing(secrets: Self.secrets)
            for signer in Self.secrets + ["whsec_" + Data("someone-else".utf8).base64EncodedString()] {
                let headers = scheme.sign(body: body, url: url, secret: signer, now: now).map { Header(name: $0.name.lowercased(), value: $0.value) }
                let request = SignedRequest(headers: headers + [Header(name: "content-type", value: "application/json")], body: body, url: url)
                // The prepared secrets, a copy of them, other secrets, and none at all.
                for secrets in [Self.secrets, Self.secrets.map { String($0) }, [signer], Array(Self.secrets.reversed()), []] {
                    let expected = Self.outcome(scheme, request, secrets, now)
                    #expect(Self.outcome(prepared, request, secrets, now) == expected, "\(name)")
                }
                let genuine = Self.secrets.contains(signer)
                #expect((Self.outcome(prepared, request, Self.secrets, now) == "accepted") == genuine, "\(name)")
            }
        }
    }

    @Test("a prepared scheme never shows its secrets")
    func noSecretsShown() {
        for (name, scheme) in Self.schemes {
            let prepared = scheme.preparing(secrets: Self.secrets)
            var dumped = ""
            dump(prepared, to: &dumped)
            for text in ["\(prepared)", String(reflecting: prepared), dumped] {
                for secret in Self.secrets {
                    #expect(!text.contains(secret) && !text.contains("prepared-secret"), "\(name): \(text)")
                }
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random JSON objects whose keys are often the ones the pointers ask for.
enum Generator {
    static let keys = ["type", "id", "data", "object", "a", "b", "c", "K", "\u{212A}", "\u{e9}", "e\u{301}", "items", "0", "a/b", "x~y", ""]
    static let texts = ["evt_1", "invoice.paid", "", "caf\u{e9}", "\u{1F600}", "a\"b", "back\\slash", "tab\there", "nl\nx", "\u{0}", "\u{7f}", "\u{FFFF}", "\u{2028}", "K"]
    static let numbers = ["0", "-0", "1", "-1", "42", "123456789012345678", "1234567890123456789", "99999999999999999999", "1.5", "-2.25", "1e2", "1E+2", "2e-3", "0.1", "1.0", "-0.0", "3.14159265358979323846"]

    static func document(_ random: inout SplitMix64) -> [UInt8] {
        var out: [UInt8] = []
        object(&out, &random, depth: 0)
        if random.next() % 4 == 0 { out.append(contentsOf: whitespace(&random)) }
        return out
    }

    static func noise(_ random: inout SplitMix64) -> UInt8 {
        let picks: [UInt8] = Array(#"{}[]":,\ u0123456789eE.-+tfnlx"#.utf8) + [0x00, 0x09, 0x0A, 0x7F, 0x80, 0xBB, 0xBF, 0xC3, 0xE2, 0xED, 0xEF, 0xF0, 0xFF]
        return picks[Int(random.next() % UInt64(picks.count))]
    }

    static func whitespace(_ random: inout SplitMix64) -> [UInt8] {
        switch random.next() % 6 {
        case 0: [0x20]
        case 1: [0x0A, 0x20, 0x20]
        case 2: [0x09, 0x0D, 0x0A]
        default: []
        }
    }

    static func object(_ out: inout [UInt8], _ random: inout SplitMix64, depth: Int) {
        out.append(UInt8(ascii: "{"))
        let count = Int(random.next() % 5)
        for member in 0..<count {
            if member > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: whitespace(&random))
            string(&out, &random, keys[Int(random.next() % UInt64(keys.count))])
            out.append(contentsOf: whitespace(&random))
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: whitespace(&random))
            value(&out, &random, depth: depth + 1)
        }
        out.append(contentsOf: whitespace(&random))
        out.append(UInt8(ascii: "}"))
    }

    static func value(_ out: inout [UInt8], _ random: inout SplitMix64, depth: Int) {
        switch random.next() % (depth > 4 ? 4 : 7) {
        case 0: string(&out, &random, texts[Int(random.next() % UInt64(texts.count))])
        case 1: out.append(contentsOf: numbers[Int(random.next() % UInt64(numbers.count))].utf8)
        case 2: out.append(contentsOf: ["true", "false", "null"][Int(random.next() % 3)].utf8)
        case 3: string(&out, &random, texts[Int(random.next() % UInt64(texts.count))])
        case 4, 5: object(&out, &random, depth: depth)
        default:
            out.append(UInt8(ascii: "["))
            for element in 0..<Int(random.next() % 4) {
                if element > 0 { out.append(UInt8(ascii: ",")) }
                value(&out, &random, depth: depth + 1)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    /// A JSON string of `text`, each character written raw or as an escape at random.
    static func string(_ out: inout [UInt8], _ random: inout SplitMix64, _ text: String) {
        out.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            let mustEscape = scalar == "\"" || scalar == "\\" || scalar.value < 0x20
            if mustEscape || random.next() % 8 == 0 {
                switch scalar {
                case "\"": out.append(contentsOf: #"\""#.utf8)
                case "\\": out.append(contentsOf: #"\\"#.utf8)
                case "\n" where random.next() % 2 == 0: out.append(contentsOf: #"\n"#.utf8)
                case "\t" where random.next() % 2 == 0: out.append(contentsOf: #"\t"#.utf8)
                case "/": out.append(contentsOf: #"\/"#.utf8)
                default:
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        let padded = String(repeating: "0", count: 4 - hex.count) + hex
                        out.append(contentsOf: ("\\u" + (random.next() % 2 == 0 ? padded : padded.uppercased())).utf8)
                    }
                }
            } else {
                out.append(contentsOf: String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
