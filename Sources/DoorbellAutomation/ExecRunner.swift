import DoorbellCore
import Foundation

/// `exec` steps: argv only (no shell), the event context as JSON on stdin, bounded output capture,
/// and a timeout that sends SIGTERM, then SIGKILL five seconds later.
enum ExecRunner {
    static let captureLimit = 64 * 1024

    static func run(_ exec: ExecStep, input: StepInput) async throws -> [String: Any] {
        let argv = try exec.argv.map { try Templates.render($0, input.context) }
        guard let program = resolve(argv[0]) else {
            throw StepFailure("command not found: \(argv[0])", retryable: false)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = Array(argv.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in exec.env { environment[name] = try Templates.render(value, input.context) }
        process.environment = environment
        if let directory = exec.directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr

        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
        do {
            try process.run()
        } catch {
            throw StepFailure("cannot start \(program): \(error)", retryable: false)
        }
        let stdinData = (try? JSONSerialization.data(withJSONObject: sanitized(input.context), options: [.sortedKeys])) ?? Data("{}".utf8)
        Thread.detachNewThread {
            try? stdin.fileHandleForWriting.write(contentsOf: stdinData)
            try? stdin.fileHandleForWriting.close()
        }
        async let out = readBounded(stdout.fileHandleForReading)
        async let err = readBounded(stderr.fileHandleForReading)

        let pid = process.processIdentifier
        let timedOut = Flag()
        let watchdog = Task {
            try await Task.sleep(for: .milliseconds(Int64(exec.timeout * 1000)))
            timedOut.set()
            kill(pid, SIGTERM)
            try await Task.sleep(for: .seconds(5))
            kill(pid, SIGKILL)
        }
        var iterator = exited.stream.makeAsyncIterator()
        let status = await iterator.next() ?? -1
        watchdog.cancel()
        let (outText, errText) = await (out, err)
        if timedOut.isSet {
            throw StepFailure("\(argv[0]) timed out after \(exec.timeout) s; stderr: \(errText.suffix(500))", retryable: true)
        }
        guard status == 0 else {
            throw StepFailure("\(argv[0]) exited with \(status): \(errText.suffix(1000))", retryable: true)
        }
        var output: [String: Any] = ["exit_code": Int(status), "stdout": outText, "stderr": errText]
        if let json = try? JSONSerialization.jsonObject(with: Data(outText.utf8)) { output["json"] = json }
        return output
    }

    /// A program path: as given when it contains a slash, else the first match on PATH.
    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Reads to the end, keeping the last `captureLimit` bytes.
    private static func readBounded(_ handle: FileHandle) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var kept = Data()
                while let chunk = try? handle.read(upToCount: 16 * 1024), !chunk.isEmpty {
                    kept.append(chunk)
                    if kept.count > captureLimit { kept = kept.suffix(captureLimit) }
                }
                continuation.resume(returning: String(decoding: kept, as: UTF8.self))
            }
        }
    }

    /// JSONSerialization accepts only plain values; dates and other objects become text.
    private static func sanitized(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: dictionary.mapValues(sanitized)
        case let array as [Any]: array.map(sanitized)
        case is String, is NSNumber, is NSNull, is Int, is Double, is Bool: value
        default: "\(value)"
        }
    }
}

/// A flag set once from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
