import Logging
import Synchronization

/// Whether the store may acknowledge writes, as a value: `/readyz` and every group commit ask it.
///
/// Two kinds of trouble. A failed write (disk full, I/O error, a read-only file system) is passing:
/// the next write tries again and a success clears it. A database file deleted, replaced or
/// truncated under the running server is not: reopening would start an empty database and lose
/// everything, so the store stays unavailable until the operator restores the file and restarts.
struct StoreHealth: Sendable, Equatable {
    /// Why the last write failed; cleared by the next write that commits.
    private(set) var writeFailure: String?
    /// What happened to the database file; never cleared while the process runs.
    private(set) var fileProblem: String?
    /// Failed writes so far: a success that began before a failure must not clear it.
    private(set) var failures = 0

    /// Why the store cannot acknowledge writes now; nil when it can.
    var unavailableReason: String? {
        if let fileProblem { return fileProblem + "; put the database file back (a rescued copy beside it, or a backup) and restart doorbell" }
        if let writeFailure { return "the last write failed: \(writeFailure)" }
        return nil
    }

    /// `failuresBefore`: the count when the write began, for a write that committed outside the
    /// group commit (the readiness probe), where a failure may have been recorded meanwhile.
    mutating func writeSucceeded(failuresBefore: Int? = nil) {
        if let failuresBefore, failuresBefore != failures { return }
        writeFailure = nil
    }

    mutating func writeFailed(_ reason: String) {
        writeFailure = reason
        failures += 1
    }

    /// Returns true the first time, so the loud log line is written once.
    mutating func fileLost(_ reason: String) -> Bool {
        guard fileProblem == nil else { return false }
        fileProblem = reason
        return true
    }
}

/// The store's `StoreHealth` and its file watch, shared by the group commit and `/readyz`. Logs a
/// lost database file loudly, once.
final class StoreMonitor: Sendable {
    enum Readiness: Equatable {
        case ready
        case lastWriteFailed(String)
        case fileLost(String)
    }

    private let health = Mutex(StoreHealth())
    private let watch: DatabaseFileWatch?
    private let logger: Logger
    /// Called once, when the loss is first noticed (the store rescues a copy).
    private let onFileLost: @Sendable (DatabaseFileWatch.Loss) -> Void

    init(watch: DatabaseFileWatch?, logger: Logger, onFileLost: @escaping @Sendable (DatabaseFileWatch.Loss) -> Void = { _ in }) {
        self.watch = watch
        self.logger = logger
        self.onFileLost = onFileLost
    }

    /// Throws when the file is gone (noticed now or earlier): nothing may be committed.
    func beforeWrite() throws {
        if let reason = checkFile() { throw StoreError.unavailable(reason, summary: Self.fileLostSummary) }
    }

    /// After a commit: throws when the file went away meanwhile (the commit is not where anyone
    /// will look for it); otherwise the write counts as a success. `failuresBefore` (`failures` when
    /// the write began), for a write outside the group commit (the readiness probe): a write that
    /// failed since then still stands; only an older failure is cleared.
    func afterCommit(failuresBefore: Int? = nil) throws {
        if let reason = checkFile() { throw StoreError.unavailable(reason, summary: Self.fileLostSummary) }
        health.withLock { $0.writeSucceeded(failuresBefore: failuresBefore) }
    }

    /// Failed writes so far (see `afterCommit`).
    var failures: Int { health.withLock { $0.failures } }

    func writeFailed(_ reason: String) {
        let first = health.withLock { health in
            defer { health.writeFailed(reason) }
            return health.writeFailure == nil
        }
        if first { logger.error("storage write failed; answering 503 until a write succeeds", metadata: ["error": "\(reason)"]) }
    }

    func readiness() -> Readiness {
        if let reason = checkFile() { return .fileLost(reason) }
        return health.withLock { health in
            health.writeFailure.map { .lastWriteFailed("the last write failed: \($0)") } ?? .ready
        }
    }

    /// False once the database file was found deleted, replaced or truncated.
    var fileIntact: Bool { health.withLock { $0.fileProblem == nil } }

    func stop() { watch?.stop() }

    /// What `/readyz` answers for a lost file, and for a failed write: no paths, no error text.
    static let fileLostSummary = "database file lost"
    static let writeFailedSummary = "last write failed"

    /// Before our own checkpoint: false (no checkpoint) when the file is lost;
    /// otherwise header comparisons pause until `checkpointed()`.
    func checkpointStarts() -> Bool {
        guard checkFile() == nil else { return false }
        watch?.checkpointStarts()
        return true
    }

    /// Right after our own checkpoint (also a failed one; ours run one at a time): the main file's
    /// header as it stands now is ours.
    func checkpointed() { watch?.rememberHeader() }

    /// The file problem with advice, checking the files now unless one was already found.
    private func checkFile() -> String? {
        if let known = health.withLock({ $0.fileProblem == nil ? nil : $0.unavailableReason }) { return known }
        guard let loss = watch?.check() else { return nil }
        let (first, reason) = health.withLock { health in (health.fileLost(loss.description), health.unavailableReason ?? loss.description) }
        if first {
            logger.critical("\(loss.description). Refusing every write (503) until restarted: reopening would start an empty database. Restore the file (e.g. from doorbell backup) and restart doorbell.")
            onFileLost(loss)
        }
        return reason
    }
}
