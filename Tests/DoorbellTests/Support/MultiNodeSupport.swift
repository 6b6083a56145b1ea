import Foundation
import Testing

/// Several `doorbell serve` processes ("nodes") on one PostgreSQL database, and what the test receiver
/// saw of them: the multi-node tests' shared parts.
enum MultiNode {
    /// One doorbell.yml for every node: each listens on a port the kernel picks, reads the database URL
    /// from `DOORBELL_PG` (the file never holds the password) and names itself in an `X-Node` header on
    /// its step calls (`DOORBELL_NODE`), so the receiver can tell which node ran them. Deliveries carry
    /// no such header: an endpoint's headers live in the shared database, so one node's value wins.
    /// An order event starts a two-step run (`/one`, then `/two`), one run at a time per customer, and is
    /// relayed to the `sink` endpoint (`/deliveries`; received events go to the endpoints in `forward_to`).
    static func config(receiver: String, lease: String) -> String {
        let input = #"json: { event: "{{event.id}}", customer: "{{body.customer}}", n: "{{body.n}}" }"#
        return """
            server: { listen: "127.0.0.1:0" }
            storage: "${DOORBELL_PG}"
            outbound: { allow_private: ["127.0.0.0/8"], timeout: 10s }
            retry: { schedule: [0s, 500ms, 1s, 1s, 2s, 2s, 3s, 3s, 5s, 5s, 5s, 5s], jitter: 0 }
            worker: { lease: \(lease) }
            sources:
              - { id: open, provider: none, forward_to: [sink] }
            automations:
              - id: ordered
                on: ["open:order"]
                concurrency: { key: "{{body.customer}}", limit: 1 }
                steps:
                  - { id: one, http: { url: "\(receiver)/one", headers: { X-Node: "${DOORBELL_NODE}" }, \(input) } }
                  - { id: two, http: { url: "\(receiver)/two", headers: { X-Node: "${DOORBELL_NODE}" }, \(input) } }
            endpoints:
              - { id: sink, url: "\(receiver)/deliveries", events: ["*"] }
            """
    }

    /// Writes the config to a new temporary folder; returns its path.
    static func writeConfig(receiver: String, lease: String) throws -> URL {
        let url = try TemporaryFolder.make().appendingPathComponent("doorbell.yml")
        try config(receiver: receiver, lease: lease).write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Starts node `name` on `database` and waits until it listens.
    static func start(_ name: String, config: URL, database: String) throws -> ServeProcess {
        try ServeProcess.started(config: config, environment: ["DOORBELL_PG": database, "DOORBELL_NODE": name])
    }

    /// SIGTERM, then at most `seconds` for the node to exit before SIGKILL; for `defer`. A node that
    /// ignores SIGTERM is a failure, but must not hold up the rest of the suite.
    static func stop(_ node: ServeProcess, seconds: Double = 15) {
        guard node.isRunning else { return }
        Foundation.kill(node.process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while node.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if node.isRunning {
            Issue.record("a node did not exit within \(seconds) s of SIGTERM; its log ends: \(tail(node))")
            node.kill9()
        }
    }

    /// Posts one order event for `customer` to `node`'s open source.
    static func postOrder(_ node: ServeProcess, customer: String, n: Int, timeout: Int64 = 10) async throws -> Reply {
        let body = #"{"type":"order","customer":"\#(customer)","n":\#(n)}"#
        return try await post("\(node.baseURL)/hooks/open", body: Array(body.utf8), headers: [("Content-Type", "application/json")], timeout: timeout)
    }

    /// `/readyz`'s status, or nil when the node did not answer.
    static func readiness(_ node: ServeProcess) async -> Int? {
        try? await get("\(node.baseURL)/readyz").status
    }

    /// The last lines a node printed, for failure messages; any database URL is cut out, so a password
    /// never reaches the test log even if a message quoted one.
    static func tail(_ node: ServeProcess, lines: Int = 25) -> String {
        node.output().split(separator: "\n").suffix(lines).joined(separator: "\n")
            .replacingOccurrences(of: #"postgres(ql)?://\S*"#, with: "postgres://…", options: .regularExpression)
    }

    /// One request the receiver saw: which event, customer and position, which node sent it, and its
    /// dedupe key (`Idempotency-Key` for a step, `webhook-id` for a delivery).
    struct Call {
        let event: String
        let customer: String
        let n: Int
        let node: String
        let key: String
    }

    /// The receiver's requests to a step path (`/one`, `/two`) or to `/deliveries`, in arrival order.
    static func calls(_ receiver: Receiver, _ path: String) -> [Call] {
        receiver.requests(path).map { request in
            let json = (try? JSONSerialization.jsonObject(with: Data(request.body.utf8))) as? [String: Any] ?? [:]
            let n = (json["n"] as? Int) ?? Int(json["n"] as? String ?? "") ?? -1
            let node = request.headers["x-node"] ?? "?"  // "?" for deliveries (see `config`)
            if path == "/deliveries" {
                let id = request.headers["webhook-id"] ?? ""
                return Call(event: id, customer: json["customer"] as? String ?? "", n: n, node: node, key: id)
            }
            return Call(event: json["event"] as? String ?? "", customer: json["customer"] as? String ?? "", n: n, node: node, key: request.headers["idempotency-key"] ?? "")
        }
    }

    /// For one customer, the positions in the order the receiver first saw them (repeats left out).
    static func firstSeenOrder(_ calls: [Call], customer: String) -> [Int] {
        var seen = Set<Int>()
        return calls.filter { $0.customer == customer }.compactMap { seen.insert($0.n).inserted ? $0.n : nil }
    }
}

/// How many requests per path the receiver had when a node was killed: anything after came from the others.
final class KillMark: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    func set(_ counts: [String: Int]) { lock.withLock { self.counts = counts } }
    func count(_ path: String) -> Int { lock.withLock { counts[path] ?? 0 } }
}

/// Events answered 2xx (id → customer and position), and every ingest answer with its timing, from many tasks.
final class IngestLedger: @unchecked Sendable {
    struct Answer {
        let node: String
        let start: Date
        let end: Date
        /// nil: no HTTP answer (refused, timed out).
        let status: Int?
    }

    private let lock = NSLock()
    private var acked: [String: (customer: String, n: Int)] = [:]
    private var answers: [Answer] = []

    func record(node: String, start: Date, reply: Reply?, customer: String, n: Int) {
        lock.withLock {
            answers.append(Answer(node: node, start: start, end: Date(), status: reply?.status))
            if let reply, (200..<300).contains(reply.status), let id = reply.json["id"] as? String { acked[id] = (customer, n) }
        }
    }

    var acknowledged: [String: (customer: String, n: Int)] { lock.withLock { acked } }
    var all: [Answer] { lock.withLock { answers } }
}
