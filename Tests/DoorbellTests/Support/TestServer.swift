import AsyncHTTPClient
import DoorbellConfig
import DoorbellCore
import DoorbellServer
import DoorbellStorage
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// A real Doorbell server on a loopback port chosen by the kernel, with its SQLite file in a fresh
/// temporary folder; stopped gracefully when the body returns.
struct TestServer {
    let baseURL: String
    let store: any DoorbellStore
    let directory: URL

    static func with<T>(
        config yaml: String,
        environment: [String: String] = [:],
        directory: URL? = nil,
        now: @escaping @Sendable () -> Date = { Date() },
        _ body: (TestServer) async throws -> T
    ) async throws -> T {
        let folder = try directory ?? TemporaryFolder.make()
        let configuration = try ConfigLoader.parse(yaml: yaml, directory: folder.path, environment: environment)
        var logger = Logger(label: "test-server")
        logger.logLevel = .critical
        let store = try await StoreFactory.open(configuration.storage, logger: logger)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try await DoorbellApplication.make(configuration: configuration, store: store, logger: logger, now: now, onServerRunning: { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
        })
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("server did not start") }
            let server = TestServer(baseURL: "http://127.0.0.1:\(port)", store: store, directory: folder)
            do {
                let result = try await body(server)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum TemporaryFolder {
    static func make() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("doorbell-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A reply from the server: status and body text.
struct Reply {
    let status: Int
    let body: String

    /// The body as a JSON object.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
}

/// Sends `body` to `url` with `headers`; `chunked` leaves out Content-Length.
func post(_ url: String, body: [UInt8], headers: [(String, String)] = [], chunked: Bool = false, timeout: Int64 = 30) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if chunked {
        let chunks = stride(from: 0, to: body.count, by: 16_384).map { Array(body[$0..<min($0 + 16_384, body.count)]) }
        request.body = .stream(chunks.map { ByteBuffer(bytes: $0) }.async, length: .unknown)
    } else {
        request.body = .bytes(body)
    }
    let response = try await testClient.execute(request, timeout: .seconds(timeout))
    let text = try await response.body.collect(upTo: 1 << 20)
    return Reply(status: Int(response.status.code), body: String(buffer: text))
}

/// One client for all tests, allowed 64 connections per host so concurrency tests are concurrent
/// on the wire, not queued in the client's pool (its default is 8).
let testClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}()

func get(_ url: String) async throws -> Reply {
    let response = try await testClient.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
    let text = try await response.body.collect(upTo: 1 << 20)
    return Reply(status: Int(response.status.code), body: String(buffer: text))
}

extension Array where Element: Sendable {
    /// An async sequence over the array, for streamed request bodies.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
