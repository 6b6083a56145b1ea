import DoorbellCore
import Foundation
import Subprocess
import Synchronization

/// `exec` steps: argv only (no shell), the event context as JSON on stdin, bounded output capture.
///
/// Built on swift-subprocess rather than Foundation's `Process`, because a server running a command per
/// webhook needs what `Process` did not give: every pipe and process descriptor closed when the run
/// ends (they leaked, two per run, until the server ran out), no other descriptor of the server
/// inherited, signal dispositions reset in the child, and output reads that end when the child exits
/// even while a grandchild still holds the pipes (their remaining bytes are drained, not lost).
///
/// Each child leads a process group of its own. At the timeout the whole group gets SIGTERM, then
/// SIGKILL after `grace`; and whenever a run ends — success, failure or timeout — what is left of
/// the group is killed, so `sh -c 'sleep 30 & echo hi'` finishes at once and leaves nothing behind.
/// A command that wants to outlive its step must leave the group itself (`setsid`).
enum ExecRunner {
    static let captureLimit = 64 * 1024
    /// Between SIGTERM and SIGKILL when a step times out; a timed-out step ends within timeout + grace.
    static let grace: Duration = .seconds(5)
    /// Passed on from the server's environment when set; any other variable only when the step names
    /// it in `inherit_env` (the server's environment holds API tokens, SMTP and provider secrets).
    static let passedEnvironment = ["PATH", "HOME", "LANG", "TZ"]

    static func run(_ exec: ExecStep, input: StepInput) async throws -> [String: Any] {
        // A literal: `check` refuses templates in argv[0], so webhook data never chooses the program.
        let name = exec.argv[0]
        let arguments = try exec.argv.enumerated().dropFirst().map { try Templates.render($0.element, input.context, field: "exec.argv[\($0.offset)]") }
        let environment = try childEnvironment(exec, context: input.context, server: ProcessInfo.processInfo.environment)
        guard let program = resolve(name, searchPath: environment["PATH"], workingDirectory: exec.directory) else {
            let place = name.hasPrefix("/") ? "" : name.contains("/") ? " in \(exec.directory ?? FileManager.default.currentDirectoryPath)" : " on PATH"
            throw StepFailure("command not found: \(name)\(place)", retryable: false)
        }
        let stdin = (try? JSONSerialization.data(withJSONObject: sanitized(input.context), options: [.sortedKeys])) ?? Data("{}".utf8)
        ignoreBrokenPipes

        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: grace)]
        var keyed: [Environment.Key: String] = [:]
        for (key, value) in environment {
            if let key = Environment.Key(rawValue: key) { keyed[key] = value }
        }
        let configuration = Configuration(
            executable: .path(.init(program)), arguments: Arguments(arguments), environment: .custom(keyed),
            workingDirectory: exec.directory.map { .init($0) }, platformOptions: options
        )
        let group = ChildGroup()
        defer { group.killRemaining() }
        // Set once the child's output has ended (it exited, or closed both pipes): a deadline that
        // fires after that has nothing left to stop.
        let finished = Latch()

        var timedOut = false
        let ending: Ending
        do {
            ending = try await withThrowingTaskGroup(of: Ending?.self) { tasks in
                tasks.addTask {
                    let result = try await Subprocess.run(configuration, input: .inputWriter, output: .sequence, error: .sequence) { execution in
                        group.started(execution.processIdentifier.value)
                        async let out = tail(execution.standardOutput)
                        async let err = tail(execution.standardError)
                        // A command that does not read its stdin, or exits early, is not a failure.
                        _ = try? await execution.standardInputWriter.write(Array(stdin))
                        try? await execution.standardInputWriter.finish()
                        let output = await (out, err)
                        finished.set()
                        return output
                    }
                    return Ending(status: result.terminationStatus, stdout: result.closureResult.0, stderr: result.closureResult.1)
                }
                tasks.addTask {
                    do {
                        try await Task.sleep(for: .milliseconds(Int64(exec.timeout * 1000)))
                    } catch {
                        return nil
                    }
                    return .deadline
                }
                while let next = try await tasks.next() {
                    guard let next else { continue }
                    if next.isDeadline {
                        if finished.isSet { continue }
                        // Cancelling the run tears the group down: SIGTERM, SIGKILL after `grace`.
                        timedOut = true
                        tasks.cancelAll()
                        continue
                    }
                    tasks.cancelAll()
                    return next
                }
                throw CancellationError()
            }
        } catch {
            if timedOut { throw StepFailure("\(name) timed out after \(exec.timeout) s", retryable: true) }
            if error is CancellationError { throw error }
            // The program exists and is executable (checked above): what is left is mostly passing —
            // no descriptors or processes to spare — so it is worth another try.
            throw StepFailure("cannot run \(program): \(error)", retryable: true)
        }
        // A command we stopped at its deadline timed out, whatever it exited with: many exit 0 on
        // SIGTERM (a trap, a graceful handler), and their work was cut short all the same. One whose
        // output had already ended when the timer fired was not stopped and is judged by its status.
        if timedOut {
            throw StepFailure("\(name) timed out after \(exec.timeout) s; stderr: \(ending.stderr.suffix(500))", retryable: true)
        }
        switch ending.status {
        case .exited(0):
            var output: [String: Any] = ["exit_code": 0, "stdout": ending.stdout, "stderr": ending.stderr]
            if let json = try? JSONSerialization.jsonObject(with: Data(ending.stdout.utf8)) { output["json"] = json }
            return output
        case .exited(let code):
            throw StepFailure("\(name) exited with \(code): \(ending.stderr.suffix(1000))", retryable: true)
        case .signaled(let signal):
            throw StepFailure("\(name) was ended by signal \(signal): \(ending.stderr.suffix(1000))", retryable: true)
        }
    }

    /// The child's whole environment: `passedEnvironment` and the step's `inherit_env` names from the
    /// server's, then the step's own `env` (rendered) on top.
    static func childEnvironment(_ exec: ExecStep, context: [String: Any], server: [String: String]) throws -> [String: String] {
        var environment: [String: String] = [:]
        for name in passedEnvironment + exec.inheritEnv {
            if let value = server[name] { environment[name] = value }
        }
        for (name, value) in exec.env { environment[name] = try Templates.render(value, context, field: "exec.env.\(name)") }
        return environment
    }

    /// A program path: a name with a slash is a path, relative ones starting at the folder the command
    /// runs in (`dir`; the config's folder unless it says otherwise), where the child resolves every
    /// other relative name too; a name without one is the first match on the child's PATH.
    static func resolve(_ name: String, searchPath: String?, workingDirectory: String?) -> String? {
        if name.contains("/") {
            let base = workingDirectory ?? FileManager.default.currentDirectoryPath
            let path = name.hasPrefix("/") ? name : URL(fileURLWithPath: base).appendingPathComponent(name).standardizedFileURL.path
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        let path = searchPath ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").filter { $0.hasPrefix("/") }.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Writing the event to a child that has already exited must fail with EPIPE, not kill the server
    /// with SIGPIPE. Children start with default dispositions (swift-subprocess resets them).
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Reads to the end (or until the child exits), keeping the last `captureLimit` bytes.
    private static func tail(_ output: SubprocessOutputSequence) async -> String {
        var kept: [UInt8] = []
        do {
            for try await buffer in output {
                buffer.withUnsafeBytes { kept.append(contentsOf: $0) }
                if kept.count > 2 * captureLimit { kept.removeFirst(kept.count - captureLimit) }
            }
        } catch {
            // Cancelled at the timeout: what was read so far is still worth keeping.
        }
        return String(decoding: kept.suffix(captureLimit), as: UTF8.self)
    }

    /// JSONSerialization accepts only plain values; dates and other objects become text.
    static func sanitized(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: dictionary.mapValues(sanitized)
        case let array as [Any]: array.map(sanitized)
        case is String, is NSNumber, is NSNull, is Int, is Double, is Bool: value
        case let body as EventBody: sanitized(body.value)
        default: "\(value)"
        }
    }

    /// How a run ended: the child's status and output, or the timer.
    private struct Ending: Sendable {
        var status: TerminationStatus
        var stdout: String
        var stderr: String
        var isDeadline = false

        static let deadline = Ending(status: .exited(-1), stdout: "", stderr: "", isDeadline: true)
    }
}

/// The process group of one `exec` child, killed when the step ends so no grandchild outlives it.
private final class ChildGroup: Sendable {
    private let leader = Mutex<pid_t?>(nil)

    func started(_ pid: pid_t) {
        // Only a child that really leads its own group is signalled as a group.
        if getpgid(pid) == pid { leader.withLock { $0 = pid } }
    }

    /// After the leader is reaped its number stays reserved while any process of its group lives; once
    /// none does, the kill finds nobody (a new process would need that exact pid and a group of its own).
    func killRemaining() {
        guard let pid = leader.withLock({ $0 }) else { return }
        _ = kill(-pid, SIGKILL)
    }
}
