import AsyncHTTPClient
@testable import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import Foundation
import Synchronization
import Testing

/// The SSRF guard: which addresses are refused, spelled any way, and that the connection goes only
/// to the address that was checked.
@Suite("Outbound guard")
struct OutboundGuardTests {
    static let refused = [
        "127.0.0.1", "127.255.255.254", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "0.0.0.0", "0",
        "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.100.100.200",
        "::1", "::", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:a9fe:a9fe", "::127.0.0.1", "64:ff9b::7f00:1",
        "2002:7f00:1::", "fc00::1", "fd00:ec2::254", "fe80::1", "[::1]", "224.0.0.1", "255.255.255.255",
    ]
    static let reachable = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1", "100.128.0.1", "::ffff:8.8.8.8"]

    @Test("private, loopback, link-local, CGNAT and metadata addresses are refused in every spelling; public ones pass")
    func ranges() {
        let policy = AddressPolicy()
        for host in Self.refused {
            let address = AddressPolicy.parseLiteral(host)
            #expect(address != nil, "\(host) should parse as an address")
            #expect(address.flatMap(policy.refusal) != nil, "\(host) must be refused")
        }
        for host in Self.reachable {
            let address = AddressPolicy.parseLiteral(host)
            #expect(address.map(policy.refusal) == .some(nil), "\(host) must be allowed")
        }
        #expect(AddressPolicy.parseLiteral("example.com") == nil)
        #expect(AddressPolicy.parseLiteral("1.2.3.4.5") == nil)
        #expect(AddressPolicy.parseLiteral("256.1.1.1") == nil)
    }

    @Test("allow_private admits exactly the ranges it names")
    func allowPrivate() {
        let policy = AddressPolicy(allowPrivate: [CIDR("127.0.0.1/32")!, CIDR("fd12::/16")!])
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("127.0.0.1")!) == nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("::ffff:127.0.0.1")!) == nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("fd12::5")!) == nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("127.0.0.2")!) != nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("10.0.0.1")!) != nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("fd13::5")!) != nil)
        #expect(policy.refusal(for: AddressPolicy.parseLiteral("169.254.169.254")!) != nil)
    }

    static func send(_ http: OutboundHTTP, _ url: String, timeout: Double = 5) async -> Result<Int, any Error> {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.body = .bytes(Array("{}".utf8))
        do {
            return .success(try await http.fetch(request, timeout: timeout, keep: 1 << 16).status)
        } catch {
            return .failure(error)
        }
    }

    @Test("requests to a loopback listener are refused before connecting, whatever the spelling or resolver answer")
    func loopbackListenerNeverReached() async throws {
        try await Receiver.with { (receiver: Receiver) async throws in
            let port = URL(string: receiver.baseURL)!.port!
            let lookups = Mutex(0)
            let clock = ManualClock()
            let http = OutboundHTTP(policy: AddressPolicy(), resolver: { host in
                switch host {
                case "rebind.test":
                    // Public on the first answer, loopback afterwards: the classic rebinding trick.
                    let count = lookups.withLock { $0 += 1; return $0 }
                    return [AddressPolicy.parseLiteral(count == 1 ? "93.184.215.14" : "127.0.0.1")!]
                case "mixed.test":
                    return [AddressPolicy.parseLiteral("93.184.215.14")!, AddressPolicy.parseLiteral("127.0.0.1")!]
                default:
                    return try await OutboundHTTP.systemResolver(host)
                }
            }, now: clock.now)
            defer { Task { try? await http.shutdown() } }
            for host in ["127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "localhost", "mixed.test"] {
                let result = await Self.send(http, "http://\(host):\(port)/guarded")
                guard case .failure(let error) = result, error is OutboundRefusal else {
                    Issue.record("\(host): expected a refusal, got \(result)")
                    continue
                }
                #expect("\(error)".contains("outbound.allow_private"))
            }
            // Rebinding: the first answer is checked and is the only address ever connected to.
            let first = await Self.send(http, "http://rebind.test:\(port)/guarded", timeout: 1)
            if case .failure(let error) = first { #expect(!(error is OutboundRefusal)) } else { Issue.record("the public address is not reachable here") }
            // Answers are reused for 30 s; after that the new answer is checked like the first.
            clock.advance(by: 31)
            let second = await Self.send(http, "http://rebind.test:\(port)/guarded")
            if case .failure(let error) = second { #expect(error is OutboundRefusal) } else { Issue.record("expected a refusal") }
            #expect(receiver.requests("/guarded").isEmpty)
            #expect(await Self.send(http, "ftp://127.0.0.1/x").isRefusal)
        }
    }

    @Test("allow_private opens the loopback listener, and only the range named")
    func allowedListenerIsReached() async throws {
        try await Receiver.with { (receiver: Receiver) async throws in
            let port = URL(string: receiver.baseURL)!.port!
            let http = OutboundHTTP(policy: AddressPolicy(allowPrivate: [CIDR("127.0.0.1/32")!]))
            defer { Task { try? await http.shutdown() } }
            #expect(try await Self.send(http, "http://127.0.0.1:\(port)/open").get() == 200)
            #expect(try await Self.send(http, "http://2130706433:\(port)/open").get() == 200)
            #expect(await Self.send(http, "http://127.0.0.2:\(port)/open").isRefusal)
            #expect(await Self.send(http, "http://10.0.0.1:\(port)/open").isRefusal)
            #expect(receiver.requests("/open").count == 2)
        }
    }

    @Test("without allow_private, http steps and deliveries to loopback fail at once with the reason")
    func stepsAndDeliveriesRefused() async throws {
        try await Receiver.with { (receiver: Receiver) async throws in
            let config = """
                server: { listen: "127.0.0.1:0" }
                storage: "sqlite:doorbell.db"
                api: { tokens: ["\(apiToken)"] }
                sources:
                  - { id: open, provider: none }
                endpoints:
                  - { id: internal, url: "\(receiver.baseURL)/delivery" }
                automations:
                  - id: call
                    on: ["open:*"]
                    steps:
                      - { id: crm, http: { url: "\(receiver.baseURL)/step" } }
                """
            try await TestServer.with(config: config) { (server: TestServer) async throws in
                _ = try await post(server.baseURL + "/hooks/open", body: Array(#"{"type":"x"}"#.utf8))
                _ = try await api(.POST, server.baseURL + "/api/v1/events", ["type": "y", "data": [:]])
                #expect(try await eventually {
                    let runs = try await server.store.runs(matching: RunQuery(limit: 10))
                    return runs.count == 2 && runs.allSatisfy { $0.status == .dead }
                })
                for run in try await server.store.runs(matching: RunQuery(limit: 10)) {
                    #expect(run.lastError?.contains("loopback") == true, "\(run.lastError ?? "")")
                    #expect(run.attempt == 1)
                }
                #expect(receiver.requests("/step").isEmpty && receiver.requests("/delivery").isEmpty)
            }
        }
    }
}

extension Result where Failure == any Error {
    var isRefusal: Bool {
        if case .failure(let error) = self { return error is OutboundRefusal }
        return false
    }
}
