import Foundation

/// Runs real child processes: the built `doorbell` binary, python3 for official verifiers.
enum ChildProcess {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs to completion and captures both streams.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a full pipe cannot block the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// The `doorbell` executable built beside this test bundle.
    static var doorbellBinary: String {
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("doorbell"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("doorbell"),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("doorbell"),
        ]
        return (candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]).path
    }

    static func doorbell(_ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil) throws -> Result {
        try run(doorbellBinary, arguments, environment: environment, directory: directory)
    }
}

/// A Python fixture server (`Fixtures/<script>`) in a child process: starts it and returns the words
/// of its `READY …` line (at most 20 s), or throws with what it printed.
func startPythonFixture(_ process: Process, script: String, arguments: [String]) throws -> [Substring] {
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", TestFixtures.url(script).path] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let handle = out.fileHandleForReading
    var text = ""
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline, !text.contains("\n") {
        let data = handle.availableData
        if data.isEmpty { break }
        text += String(decoding: data, as: UTF8.self)
    }
    let words = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
    guard words.first == "READY" else {
        process.terminate()
        throw TestFailure("\(script) did not start: \(text)")
    }
    return Array(words.dropFirst())
}

/// `doorbell serve` as a child process, for crash and signal tests.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private let errPipe = Pipe()
    private(set) var port = 0

    init(config: URL, environment: [String: String] = [:]) throws {
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.executableURL = URL(fileURLWithPath: ChildProcess.doorbellBinary)
        process.arguments = ["serve", "--config", config.path, "--log-level", "notice"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errPipe
    }

    /// Starts the server and waits for its "listening on" line (at most 30 s).
    func start() throws {
        try process.run()
        let handle = errPipe.fileHandleForReading
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let data = handle.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
            if let range = text.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let match = text[range]
                port = Int(match.split(separator: ":").last!)!
                // Keep draining stderr so the child never blocks on a full pipe.
                handle.readabilityHandler = { $0.availableData.isEmpty ? ($0.readabilityHandler = nil) : () }
                return
            }
        }
        throw TestFailure("doorbell serve did not start: \(text)")
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private let stopLock = NSLock()
    private var stopped = false
    /// Set as soon as a kill or SIGTERM has been sent.
    var isStopped: Bool { stopLock.withLock { stopped } }

    func kill9() {
        stopLock.withLock { stopped = true }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends SIGTERM and waits; returns the exit status.
    func terminate() -> Int32 {
        stopLock.withLock { stopped = true }
        Foundation.kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }
}
