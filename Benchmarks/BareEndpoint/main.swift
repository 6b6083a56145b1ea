import Hummingbird

/// The benchmark's reference target: a bare Hummingbird endpoint that reads the body and answers
/// 200, with nothing verified or stored. Doorbell's ingest is measured against it.
/// Usage: doorbell-bench-bare [port]
let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8081 : 8081
let router = Router()
router.post("/hooks/:source") { request, _ -> HTTPResponse.Status in
    _ = try await request.body.collect(upTo: 1 << 20)
    return .ok
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
