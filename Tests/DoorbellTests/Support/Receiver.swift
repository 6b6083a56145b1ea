import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A real HTTP receiver on loopback that records every request and can be told to fail a path a
/// number of times first (with a status, optionally Retry-After). An `Answer` given to `with`
/// replaces the default `{"ok":…}` answer for the paths it chooses.
final class Receiver: @unchecked Sendable {
    /// The answer to a recorded request at this path, or nil for the default answer. Called after
    /// `fail`, `hold` and `delay` had their say (a failure planned for the path wins).
    typealias Answer = @Sendable (_ path: String, _ receiver: Receiver) -> Response?

    struct Received: Sendable {
        let path: String
        let headers: [String: String]
        let body: String
    }

    private let lock = NSLock()
    private var received: [Received] = []
    private var failures: [String: (count: Int, status: Int, retryAfter: String?)] = [:]
    private var held: Set<String> = []
    private var delays: [String: Double] = [:]
    /// (path, body, start, end) of every request, for ordering checks.
    private var spans: [(path: String, body: String, start: Date, end: Date)] = []

    /// Requests to `path` take `seconds` before answering.
    func delay(_ path: String, seconds: Double) { lock.withLock { delays[path] = seconds } }

    func timeline(_ path: String) -> [(body: String, start: Date, end: Date)] {
        lock.withLock { spans.filter { $0.path == path }.map { ($0.body, $0.start, $0.end) } }
    }

    private func finished(_ path: String, body: String, start: Date) {
        lock.withLock { spans.append((path, body, start, Date())) }
    }

    private func delayFor(_ path: String) -> Double { lock.withLock { delays[path] ?? 0 } }
    private var stopping = false

    /// True once the test body is done and the receiver shuts down: an answer that streams for long
    /// ends early, so shutdown is not held up by it.
    var isStopping: Bool { lock.withLock { stopping } }
    private func stop() { lock.withLock { stopping = true } }
    private(set) var baseURL = ""

    func fail(_ path: String, times: Int, status: Int = 500, retryAfter: String? = nil) {
        lock.withLock { failures[path] = (times, status, retryAfter) }
    }

    /// Requests to `path` wait (recorded) until `release`.
    func hold(_ path: String) { lock.withLock { _ = held.insert(path) } }
    func release(_ path: String) { lock.withLock { _ = held.remove(path) } }
    func isHeld(_ path: String) -> Bool { lock.withLock { held.contains(path) } }

    func requests(_ path: String) -> [Received] {
        lock.withLock { received.filter { $0.path == path } }
    }

    private func record(_ request: Received) -> (Int, String?) {
        lock.withLock {
            received.append(request)
            if var failure = failures[request.path], failure.count > 0 {
                failure.count -= 1
                failures[request.path] = failure
                return (failure.status, failure.retryAfter)
            }
            return (200, nil)
        }
    }

    /// Runs the receiver around `body`.
    static func with<T>(answer: Answer? = nil, _ body: (Receiver) async throws -> T) async throws -> T {
        let receiver = Receiver()
        let router = Router()
        router.on("/**", method: .post) { request, _ -> Response in
            let start = Date()
            let bytes = try await request.body.collect(upTo: 1 << 20)
            defer { receiver.finished(request.uri.path, body: String(buffer: bytes), start: start) }
            let headers = Dictionary(request.headers.map { ($0.name.canonicalName, $0.value) }, uniquingKeysWith: { first, _ in first })
            let (status, retryAfter) = receiver.record(Received(path: request.uri.path, headers: headers, body: String(buffer: bytes)))
            let deadline = Date().addingTimeInterval(30)
            while receiver.isHeld(request.uri.path) && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let delay = receiver.delayFor(request.uri.path)
            if delay > 0 { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) }
            if status == 200, let answer, let response = answer(request.uri.path, receiver) { return response }
            var response = Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: #"{"ok":\#(status == 200),"crm_id":"crm_42"}"#)))
            response.headers[.contentType] = "application/json"
            if let retryAfter { response.headers[.retryAfter] = retryAfter }
            return response
        }
        var logger = Logger(label: "receiver")
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            receiver.baseURL = "http://127.0.0.1:\(await iterator.next() ?? 0)"
            defer {
                receiver.stop()
                Task { await group.triggerGracefulShutdown() }
            }
            let result = try await body(receiver)
            receiver.stop()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
