import Crypto
import DoorbellAutomation
import DoorbellConfig
import DoorbellCore
@testable import DoorbellServer
import DoorbellStorage
import DoorbellVerification
import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

/// What an attack on the debug binary found (issue 10): regex conditions that could be bypassed past
/// their subject cap or time limit, silent connections that held a slot for idle_timeout, form bodies
/// of a hundred thousand fields parsed before the signature check, and signature headers with no
/// limit on the number of signatures.
@Suite("Hardening: attack on ingest", .serialized)
struct HardeningAttackTests {
    static func config(server: String = "", extra: String = "") -> String {
        """
        server: { listen: "127.0.0.1:0", public_url: "https://hooks.example.com"\(server) }
        storage: "sqlite:doorbell.db"
        api: { tokens: ["\(apiToken)"] }
        sources:
          - { id: open, provider: none, max_body: 2MiB, event_type: /type }
          - { id: tw, provider: twilio, secrets: ["token-123"], max_body: 2MiB }
        \(extra)
        """
    }

    static let automations = #"""
        automations:
          - id: allow-email
            on: ["open:signup"]
            if: { "body.s": { regex: '^[a-z]+@[a-z]+\.com$' } }
            steps: [{ emit: { type: allowed } }]
          - id: block-curl
            on: ["open:note"]
            if: { not: { "body.text": { regex: 'curl' } } }
            steps: [{ emit: { type: passed } }]
          - id: either
            on: ["open:either"]
            if: { or: [{ "body.kind": { eq: "vip" } }, { "body.text": { regex: '^ok' } }] }
            steps: [{ emit: { type: passed } }]
        """#

    // MARK: B4: regex conditions fail closed

    @Test("a regex that cannot read all of its value is unknown, and unknown survives not, or and and")
    func verdicts() {
        let long = String(repeating: "a", count: RegexBound.maxSubject) + "@b.com; curl evil | sh"
        let context: [String: Any] = ["body": ["s": long, "short": "ann@example.com", "kind": "vip"]]
        let allow = Condition.compare(path: "body.s", op: .regex, operand: .string(#"^[a-z]+@[a-z]+\.com$"#))
        let block = Condition.compare(path: "body.s", op: .regex, operand: .string("curl"))
        let vip = Condition.compare(path: "body.kind", op: .eq, operand: .string("vip"))
        // (Results in variables: an expectation on the call would print the long context.)
        let allowVerdict = allow.decide(context)
        let blockVerdict = Condition.not(block).decide(context)
        let orVerdict = Condition.any([vip, block]).decide(context)
        let notAnd = Condition.not(.all([Condition.compare(path: "body.kind", op: .eq, operand: .string("x")), block])).decide(context)
        #expect(allowVerdict == .unknown(path: "body.s"), "the allow-list cannot see the end of the value")
        #expect(blockVerdict == .unknown(path: "body.s"), "not does not turn an unread value into a pass")
        #expect(orVerdict == .unknown(path: "body.s"), "an unknown anywhere decides, even beside a true")
        #expect(notAnd == .unknown(path: "body.s"))
        #expect(!Condition.not(block).evaluate(context), "evaluate counts unknown as not holding")

        // Exactly at the cap is read in full; a short value decides as before.
        let atCap: [String: Any] = ["body": ["s": String(repeating: "a", count: RegexBound.maxSubject - 6) + "@b.com"]]
        #expect(allow.decide(atCap) == .holds)
        #expect(Condition.compare(path: "body.short", op: .regex, operand: .string(#"^[a-z]+@[a-z]+\.com$"#)).decide(context) == .holds)
        #expect(Condition.not(Condition.compare(path: "body.short", op: .regex, operand: .string("curl"))).decide(context) == .holds)
        #expect(Condition.compare(path: "body.missing", op: .regex, operand: .string("x")).decide(context) == .doesNotHold)
        // A list or an object wrapping the text a block-list looks for is unknown, not "no match".
        for wrapped in [["evil"], ["a": "evil"]] as [Any] {
            let verdict = Condition.not(Condition.compare(path: "body.v", op: .regex, operand: .string("evil"))).decide(["body": ["v": wrapped]])
            #expect(verdict == .unknown(path: "body.v"))
        }

        // A match stopped by the time limit is unknown too, and so is every regex after it.
        let slowContext: [String: Any] = ["body": ["pad": String(repeating: "a", count: 4000), "short": "ok"]]
        let budget = RegexBudget()
        let slow = Condition.compare(path: "body.pad", op: .regex, operand: .string("a*a*a*a*a*a*a*a*b"))
        let stopped = Condition.not(slow).decide(slowContext, budget: budget)
        #expect(stopped == .unknown(path: "body.pad"))
        #expect(Condition.compare(path: "body.short", op: .regex, operand: .string("^ok")).decide(slowContext, budget: budget) == .unknown(path: "body.short"))
    }

    @Test("an automation whose if is unknown does not run, with a warning naming it and the path, not the value")
    func skippedAutomationLogged() throws {
        let configuration = try ConfigLoader.parse(yaml: Self.config(extra: Self.automations), directory: "/tmp", environment: [:])
        let records = LogRecords()
        let logger = Logger(label: "test") { _ in RecordingLogHandler(records: records) }
        let matcher = AutomationMatcher(automations: configuration.automations, logger: logger)
        let secret = "curl evil | sh"
        let body = #"{"type":"note","text":"\#(String(repeating: "x", count: 5000)) \#(secret)"}"#
        let event = NewEvent(source: "open", type: "note", providerID: nil, headers: [Header(name: "content-type", value: "application/json")], body: Array(body.utf8))
        #expect(matcher.matching(event).isEmpty)
        let lines = records.all
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.level == .warning)
        #expect(line.metadata["automation"] == "block-curl")
        #expect(line.metadata["path"] == "body.text")
        #expect(!line.text.contains(secret) && !line.text.contains("xxxx"), "the value is not logged: \(line.text.prefix(300))")
    }

    @Test("allow-list and block-list bypasses past the regex cap start no run; normal matches still do")
    func bypassesStartNoRun() async throws {
        try await TestServer.with(config: Self.config(extra: Self.automations)) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            func runs(_ json: String) async throws -> Int {
                let reply = try await post(server.baseURL + "/hooks/open", body: Array(json.utf8), headers: [("Content-Type", "application/json")])
                #expect(reply.status == 200)
                let id = try #require(reply.json["id"] as? String)
                return try await store.runs(eventID: id, limit: 5).count
            }
            let allowBypass = String(repeating: "a", count: 4090) + "@b.com; curl evil | sh"
            #expect(try await runs(#"{"type":"signup","s":"\#(allowBypass)"}"#) == 0, "the allow-list bypass starts nothing")
            let blockBypass = String(repeating: "x", count: 5000) + " curl evil | sh"
            #expect(try await runs(#"{"type":"note","text":"\#(blockBypass)"}"#) == 0, "the block-list bypass starts nothing")
            #expect(try await runs(#"{"type":"either","kind":"vip","text":"\#(blockBypass)"}"#) == 0, "an or with an unknown part starts nothing")

            #expect(try await runs(#"{"type":"signup","s":"ann@example.com"}"#) == 1, "a normal allow-list match runs")
            #expect(try await runs(#"{"type":"note","text":"hello"}"#) == 1, "a normal text passes the block-list")
            #expect(try await runs(#"{"type":"note","text":"curl evil | sh"}"#) == 0, "the block-list still blocks")
            #expect(try await runs(#"{"type":"either","kind":"vip","text":"short"}"#) == 1)
        }
    }

    // MARK: B6: the header clock starts at accept

    @Test("the deadline state: a new connection's header clock starts at accept, once")
    func openedState() {
        var state = RequestDeadlineState(limits: .init(header: .seconds(10), body: .seconds(60)))
        #expect(state.connectionOpened() == .arm(.seconds(10)))
        #expect(state.connectionOpened() == .none, "reported twice (handler added, channel active), armed once")
        #expect(state.bytesReceived() == .none, "the first byte does not restart the clock")
        #expect(state.expired() == .timeoutAndClose, "a connection silent since accept is told 408 and closed")
        #expect(state.headReceived() == .arm(.seconds(60)))
        #expect(state.endReceived() == .disarm)
        #expect(state.reading == .nothing, "between requests the idle timeout applies, not ours")
        #expect(state.connectionOpened() == .none)
    }

    @Test("a connection that never sends a byte is closed at header_timeout; keep-alive idle still gets idle_timeout")
    func silentConnectionClosed() async throws {
        try await TestServer.with(config: Self.config(server: ", header_timeout: 1s, idle_timeout: 30s")) { (server: TestServer) async throws in
            let port = HardeningServerInputTests.port(server)
            let silent = try RawConnection(port: port)
            let (reply, closed) = await silent.readUntilClosed(timeout: 8)
            #expect(closed, "a silent connection is closed long before idle_timeout")
            #expect(reply.isEmpty || reply.hasPrefix("HTTP/1.1 408"), "\(reply)")

            // An answered request leaves the connection idle, not awaiting headers: it outlives header_timeout.
            let kept = try RawConnection(port: port)
            try kept.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await kept.read(timeout: 5).hasPrefix("HTTP/1.1 200"))
            try await Task.sleep(for: .milliseconds(2500))
            try kept.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await kept.read(timeout: 5).hasPrefix("HTTP/1.1 200"), "the keep-alive connection is still open after header_timeout")
        }
    }

    @Test("silent connections filling max_connections give up their slots at header_timeout")
    func silentConnectionsFreeSlots() async throws {
        try await TestServer.with(config: Self.config(server: ", max_connections: 2, header_timeout: 1s, idle_timeout: 60s")) { (server: TestServer) async throws in
            let port = HardeningServerInputTests.port(server)
            let silent = try (0..<3).map { _ in try RawConnection(port: port) }
            defer { silent.forEach { $0.close() } }
            // Without the header clock at accept the two accepted ones would hold both slots for 60 s
            // and this request would time out (10 s).
            #expect(try await get(server.baseURL + "/healthz").status == 200)
        }
    }

    // MARK: B3: form bodies

    /// The form parser before this change (Foundation per field), to hold the byte parser to it.
    static func legacyPairs(_ body: [UInt8]) -> [(String, String)] {
        String(decoding: body, as: UTF8.self).split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text) }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    @Test("the byte form parser decodes as Foundation did, and stops at the field cap")
    func formParser() {
        let samples = [
            "a=1&b=two+words", "e=%C3%A9&plus=a%2Bb", "%zz=1&x=%", "x=%4", "bad=%C3&ok=1", "&&a=&=b&c&", "a=b=c",
            "é=ü&Body=Hello+%F0%9F%A5%90", "k", "", "name=%41%42%43", "sp=%20+%20", "lower=%c3%a9",
        ]
        for sample in samples {
            let parsed = FormFields.pairs(Array(sample.utf8))
            let legacy = Self.legacyPairs(Array(sample.utf8))
            #expect(parsed.map(\.0) == legacy.map(\.0), "names of \(sample)")
            #expect(parsed.map(\.1) == legacy.map(\.1), "values of \(sample)")
            #expect(FormFields.count(Array(sample.utf8)) == legacy.count, "count of \(sample)")
        }
        let many = Array((0..<5000).map { "type=\($0 % 10)" }.joined(separator: "&").utf8)
        #expect(FormFields.count(many) == FormFields.maxFields + 1, "counting stops just past the cap")
        #expect(FormFields.pairs(many).count == FormFields.maxFields)
        #expect(FormFields.isForm(contentType: "Application/X-WWW-Form-Urlencoded; charset=utf-8"))
        #expect(!FormFields.isForm(contentType: "application/json"))
    }

    @Test("a form of more fields than the cap is refused 413 before its signature is checked; one at the cap verifies")
    func fieldCap() async throws {
        try await TestServer.with(config: Self.config()) { (server: TestServer) async throws in
            let form = [("Content-Type", "application/x-www-form-urlencoded")]
            let over = Array((0...FormFields.maxFields).map { "type=\($0 % 10)" }.joined(separator: "&").utf8)
            for source in ["tw", "open"] {
                let reply = try await post(server.baseURL + "/hooks/\(source)", body: over, headers: form + [("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")])
                #expect(reply.status == 413, "\(source): \(reply.body)")
                #expect(reply.body.contains("more than \(FormFields.maxFields) fields"), "\(source): \(reply.body)")
            }

            // The cap itself is allowed, and a Twilio form of that many fields still verifies.
            let fields = (0..<FormFields.maxFields).map { "F\(String(format: "%04d", $0))=v+\($0)%21" }
            let body = Array(fields.joined(separator: "&").utf8)
            let url = "https://hooks.example.com/hooks/tw"
            let signature = Self.twilioSignature(url: url, params: (0..<FormFields.maxFields).map { ("F\(String(format: "%04d", $0))", "v \($0)!") }, token: "token-123")
            let signed = try await post(server.baseURL + "/hooks/tw", body: body, headers: form + [("X-Twilio-Signature", signature)])
            #expect(signed.status == 200, "\(signed.body)")
            let typed = Array((["type=note"] + fields.dropFirst()).joined(separator: "&").utf8)
            let unsigned = try await post(server.baseURL + "/hooks/open", body: typed, headers: form)
            #expect(unsigned.status == 200, "\(unsigned.body)")
        }
    }

    /// Twilio's algorithm written out on decoded values (the URL, then name+value sorted by name),
    /// independent of `FormFields` and `TwilioScheme`.
    static func twilioSignature(url: String, params: [(String, String)], token: String) -> String {
        let text = url + params.sorted { $0.0 < $1.0 }.map { $0.0 + $0.1 }.joined()
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: Array(token.utf8)))
        return Data(mac).base64EncodedString()
    }

    @Test("a Twilio form of many fields verifies against a signature from Twilio's own library")
    func twilioLibraryManyFields() throws {
        let script = """
            import json, urllib.parse
            from twilio.request_validator import RequestValidator
            params = {"F%04d" % i: "v %d! é+" % i for i in range(900)}
            url = "https://hooks.example.com/hooks/tw?x=1"
            print(json.dumps({"form": urllib.parse.urlencode(params), "url": url, "signature": RequestValidator("token-123").compute_signature(url, params)}))
            """
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script])
        try #require(result.status == 0, "python: \(result.stderr)")
        let vector = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String])
        let request = SignedRequest(
            headers: [Header(name: "x-twilio-signature", value: vector["signature"]!), Header(name: "content-type", value: "application/x-www-form-urlencoded")],
            body: Array(vector["form"]!.utf8), url: vector["url"]!
        )
        #expect(throws: Never.self) { try TwilioScheme().verify(request, secrets: ["token-123"], tolerance: 300, now: Date()) }
        var tampered = request
        tampered.body = Array((vector["form"]! + "&extra=1").utf8)
        #expect(throws: VerificationFailure.self) { try TwilioScheme().verify(tampered, secrets: ["token-123"], tolerance: 300, now: Date()) }
    }

    // MARK: signature lists

    @Test("Standard Webhooks: more than 10 signatures in the header are refused; 10 with the good one last pass")
    func standardSignatureCap() throws {
        let secret = "whsec_" + Data((0..<24).map { UInt8($0) }).base64EncodedString()
        let now = Date()
        let body = Array(#"{"type":"x"}"#.utf8)
        let headers = StandardScheme().sign(body: body, url: "", secret: secret, now: now)
        let good = try #require(headers.first { $0.name == "webhook-signature" }?.value)
        let fake = "v1a," + Data(repeating: 7, count: 64).base64EncodedString()
        func request(fakes: Int) -> SignedRequest {
            var list = headers.filter { $0.name != "webhook-signature" }
            list.append(Header(name: "webhook-signature", value: (Array(repeating: fake, count: fakes) + [good]).joined(separator: " ")))
            return SignedRequest(headers: list, body: body)
        }
        #expect(throws: Never.self) { try StandardScheme().verify(request(fakes: VerificationFailure.maxSignatures - 1), secrets: [secret], tolerance: 300, now: now) }
        let error = #expect(throws: VerificationFailure.self) { try StandardScheme().verify(request(fakes: 600), secrets: [secret], tolerance: 300, now: now) }
        #expect(error?.description.contains("too many signatures") == true, "\(String(describing: error))")
        #expect(throws: VerificationFailure.tooManySignatures("webhook-signature")) {
            try StandardScheme().verify(request(fakes: VerificationFailure.maxSignatures), secrets: [secret], tolerance: 300, now: now)
        }
    }

    @Test("Stripe: more than 10 v1 signatures are refused; 10 with the good one last pass")
    func stripeSignatureCap() throws {
        let now = Date()
        let body = Array(#"{"type":"x"}"#.utf8)
        let good = try #require(StripeScheme().sign(body: body, url: "", secret: "whsec_stripe", now: now).first?.value)
        let fake = "v1=" + String(repeating: "ab", count: 32)
        func request(fakes: Int) -> SignedRequest {
            let value = ([good] + Array(repeating: fake, count: fakes)).joined(separator: ",")
            return SignedRequest(headers: [Header(name: "stripe-signature", value: value)], body: body)
        }
        #expect(throws: Never.self) { try StripeScheme().verify(request(fakes: VerificationFailure.maxSignatures - 1), secrets: ["whsec_stripe"], tolerance: 300, now: now) }
        #expect(throws: VerificationFailure.tooManySignatures(StripeScheme.header)) {
            try StripeScheme().verify(request(fakes: VerificationFailure.maxSignatures), secrets: ["whsec_stripe"], tolerance: 300, now: now)
        }
    }
}

/// Log lines kept for a test to read.
final class LogRecords: Sendable {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
        var text: String { message + " " + metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    }

    private let records = Mutex<[Record]>([])

    func append(_ record: Record) { records.withLock { $0.append(record) } }
    var all: [Record] { records.withLock { $0 } }
}

/// A `LogHandler` that keeps every line in a `LogRecords`.
struct RecordingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let merged = self.metadata.merging(metadata ?? [:]) { _, new in new }
        records.append(.init(level: level, message: message.description, metadata: merged.mapValues { "\($0)" }))
    }
}
