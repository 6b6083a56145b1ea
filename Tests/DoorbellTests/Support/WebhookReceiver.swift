import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A subscriber in a child process (Fixtures/webhook_receiver.py) that verifies every delivery with
/// the official `standardwebhooks` library (v1) and Ed25519 from `cryptography` (v1a).
final class WebhookReceiver: @unchecked Sendable {
    let process = Process()
    private(set) var port = 0

    /// `keys`: whsec_ secrets and whpk_ public keys to verify with.
    init(keys: [String]) throws {
        let keysJSON = String(decoding: try JSONSerialization.data(withJSONObject: keys), as: UTF8.self)
        let ready = try startPythonFixture(process, script: "webhook_receiver.py", arguments: [keysJSON])
        guard let first = ready.first, let port = Int(first) else {
            process.terminate()
            throw TestFailure("webhook receiver said: READY \(ready.joined(separator: " "))")
        }
        self.port = port
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    struct Delivery {
        let path: String
        let time: Double
        let status: Int
        let id: String
        let signature: String
        /// Key → whether the official verifier accepted the delivery with it.
        let verified: [String: Bool]
        let body: [String: Any]
        let headers: [String: String]
    }

    func log() async throws -> [Delivery] {
        let reply = try await get(baseURL + "/_log")
        let items = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [[String: Any]] ?? []
        return items.map { item in
            Delivery(
                path: item["path"] as? String ?? "", time: item["t"] as? Double ?? 0, status: item["status"] as? Int ?? 0,
                id: item["id"] as? String ?? "", signature: item["signature"] as? String ?? "",
                verified: item["verified"] as? [String: Bool] ?? [:],
                body: (try? JSONSerialization.jsonObject(with: Data((item["body"] as? String ?? "").utf8))) as? [String: Any] ?? [:],
                headers: item["headers"] as? [String: String] ?? [:]
            )
        }
    }

    func log(_ path: String) async throws -> [Delivery] {
        try await log().filter { $0.path == path }
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    static func with<T>(keys: [String], _ body: (WebhookReceiver) async throws -> T) async throws -> T {
        let receiver = try WebhookReceiver(keys: keys)
        defer { receiver.stop() }
        return try await body(receiver)
    }
}

let apiToken = "test-token-0123456789abcdef"

/// Calls the JSON API with the test token.
func api(_ method: HTTPMethod, _ url: String, _ json: [String: Any]? = nil, token: String = apiToken) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.method = method
    request.headers.add(name: "Authorization", value: "Bearer \(token)")
    if let json {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(try JSONSerialization.data(withJSONObject: json))
    }
    let response = try await testClient.execute(request, timeout: .seconds(30))
    let text = try await response.body.collect(upTo: 1 << 20)
    return Reply(status: Int(response.status.code), body: String(buffer: text))
}

/// A fresh `whsec_` secret of 32 random bytes.
func newSecret() -> String {
    "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
}
