import AsyncHTTPClient
import Foundation
import Hummingbird

/// The benchmark's reference targets.
/// `doorbell-bench-bare [port]`: a bare Hummingbird endpoint that reads the body and answers 200,
/// with nothing verified or stored — Doorbell's ingest is measured against it.
/// `doorbell-bench-bare post URL COUNT CONCURRENCY`: a plain async-http-client loop posting the same
/// Standard-Webhooks-signed body COUNT times — the limit Doorbell's deliveries are measured against.
/// Prints `{"rps": …}`.
if CommandLine.arguments.count == 5, CommandLine.arguments[1] == "post" {
    let url = CommandLine.arguments[2]
    let count = Int(CommandLine.arguments[3]) ?? 1000
    let concurrency = Int(CommandLine.arguments[4]) ?? 16
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = concurrency
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    let body = Array(#"{"type":"order.paid","timestamp":"2026-11-29T00:00:00.000Z","data":{"n":1}}"#.utf8)
    let start = Date()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                var index = worker
                while index < count {
                    var request = HTTPClientRequest(url: url)
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.headers.add(name: "webhook-id", value: "msg_\(index)")
                    request.headers.add(name: "webhook-timestamp", value: String(Int(Date().timeIntervalSince1970)))
                    request.headers.add(name: "webhook-signature", value: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
                    request.body = .bytes(body)
                    let response = try await client.execute(request, timeout: .seconds(30))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    index += concurrency
                }
            }
        }
        try await group.waitForAll()
    }
    print(#"{"rps": \#(Double(count) / Date().timeIntervalSince(start))}"#)
    try await client.shutdown()
    exit(0)
}

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8081 : 8081
let router = Router()
router.post("/hooks/:source") { request, _ -> HTTPResponse.Status in
    _ = try await request.body.collect(upTo: 1 << 20)
    return .ok
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
