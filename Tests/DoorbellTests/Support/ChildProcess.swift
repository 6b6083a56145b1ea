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
/// of its `READY …` line (at most 20 s, a real deadline), or throws with what it printed.
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
    // poll() first, so a fixture that hangs without a word ends the wait at the deadline
    // (`availableData` alone blocks until it writes or exits).
    while !text.contains("\n") {
        let remaining = deadline.timeIntervalSinceNow
        guard remaining > 0 else { break }
        var entry = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, Int32(remaining * 1000) + 1)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { break }
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

/// `doorbell serve` as a child process (the real binary): crash, signal, descriptor and log tests.
/// Its stdout and stderr go whole to files (`serve.out`, `serve.err`), so the child never blocks on a
/// full pipe and a test can grep everything it printed; `openFiles` starts it under `ulimit -n`;
/// `environment` is added to this process's for the child only (never `setenv` here: other suites
/// run in parallel, and glibc's environment is not safe to change while they read it).
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let outURL: URL
    let errURL: URL
    private(set) var port = 0

    init(config: URL, environment: [String: String] = [:], openFiles: Int? = nil, logLevel: String = "notice", logFolder: URL? = nil) throws {
        let folder = try logFolder ?? TemporaryFolder.make()
        outURL = folder.appendingPathComponent("serve.out")
        errURL = folder.appendingPathComponent("serve.err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let arguments = ["serve", "--config", config.path, "--log-level", logLevel]
        if let openFiles {
            // The shell sets the limit, then becomes the server (`exec`): the pid is the server's.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(openFiles) && exec \"$0\" \"$@\"", ChildProcess.doorbellBinary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: ChildProcess.doorbellBinary)
            process.arguments = arguments
        }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
    }

    /// Starts the server and waits for its "listening on" line, at most `seconds`: the log file is
    /// polled, never read with a blocking call, so a server that hangs silently ends the wait on time.
    func start(seconds: Double = 30) throws {
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let text = output()
            if let range = text.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = Int(text[range].split(separator: ":").last!)!
                return
            }
            guard Date() < deadline, process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let running = process.isRunning
        if running { kill9() }
        throw TestFailure("doorbell serve did not start \(running ? "within \(seconds) s" : "(it exited)"): \(output())")
    }

    /// A server started at once, or an error with what it printed.
    static func started(config: URL, environment: [String: String] = [:], openFiles: Int? = nil, logLevel: String = "notice", logFolder: URL? = nil) throws -> ServeProcess {
        let server = try ServeProcess(config: config, environment: environment, openFiles: openFiles, logLevel: logLevel, logFolder: logFolder)
        try server.start()
        return server
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var isRunning: Bool { process.isRunning }

    /// Everything the server printed so far, stdout then stderr.
    func output() -> String {
        ((try? String(contentsOf: outURL, encoding: .utf8)) ?? "") + ((try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// How many descriptors the server holds open now (from /proc, so this process's are not counted).
    func openDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/fd").count
    }

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

    /// Ends the server if it still runs (SIGTERM, then waits); for `defer`.
    func stop() {
        guard process.isRunning else { return }
        _ = terminate()
    }
}
