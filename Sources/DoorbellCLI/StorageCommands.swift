import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging

/// `doorbell prune [--dry-run]`: applies `retention:` now, as the server does every hour.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete what retention lets go now (old events with their runs, old finished runs and attempts) and print the counts.",
        discussion: """
            Only finished work goes: an event stays while any run or delivery of it is pending, running, waiting \
            for a retry or paused. A running server keeps answering meanwhile (small batches).
            """
    )

    @OptionGroup var options: ConfigOption
    @Flag(help: "Only count what would be deleted.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try options.load()
        let store = try await openStore(configuration, access: dryRun ? .readOnly : .readWrite)
        let counts: PruneCounts
        do {
            counts = try await store.prune(configuration.retention, now: Date(), dryRun: dryRun, batchSize: 100)
            try await store.close()
        } catch {
            try? await store.close()
            printError("doorbell: pruning failed: \(error)")
            throw ExitCode(1)
        }
        if json {
            printJSON(PruneJSON(dryRun: dryRun, counts: counts))
            return
        }
        print("\(dryRun ? "would prune" : "pruned") (retention: \(describe(configuration.retention))):")
        print("  events        \(counts.events)")
        print("  runs          \(counts.runs)")
        print("  step outputs  \(counts.stepOutputs)")
        print("  attempts      \(counts.attempts)")
        print("  dedupe keys   \(counts.dedupeKeysKept) kept after their event, \(counts.dedupeKeysExpired) expired")
    }
}

/// `doorbell backup <file>`: a consistent copy of the database, also while `serve` writes to it.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent copy of the SQLite database to a new file (safe while doorbell serve runs).",
        discussion: "Uses SQLite's VACUUM INTO from one read snapshot. Never overwrites a file. Restore by stopping doorbell and putting the copy in place of the database file. A PostgreSQL database is backed up with pg_dump, not by doorbell."
    )

    @OptionGroup var options: ConfigOption
    @Argument(help: "The new file to write.") var file: String

    func run() async throws {
        let configuration = try options.load()
        let target = URL(fileURLWithPath: file).standardizedFileURL.path
        // `fileExists` follows links: a dangling one would let the copy land wherever it points.
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: target)) != nil {
            printError("doorbell: \(target) is a symbolic link; a backup is written to a new plain file, choose a new name")
            throw ExitCode(1)
        }
        guard !FileManager.default.fileExists(atPath: target) else {
            printError("doorbell: \(target) exists; a backup never overwrites a file, choose a new name")
            throw ExitCode(1)
        }
        if case .sqlite(let path) = configuration.storage, URL(fileURLWithPath: path).standardizedFileURL.path == target {
            printError("doorbell: \(target) is the database itself")
            throw ExitCode(1)
        }
        // files_dir is where webhook data names files (attachments): a copy there could be mailed out.
        let files = RealPath.of(configuration.filesDirectory)
        if (RealPath.of(target) + "/").hasPrefix(files + "/") {
            printError("doorbell: \(target) is inside files_dir \(files), where email steps may attach files; write the backup elsewhere")
            throw ExitCode(1)
        }
        let store = try await openStore(configuration, access: .readOnly)
        do {
            try await store.backup(to: target)
            try await store.close()
        } catch {
            try? await store.close()
            printError("doorbell: backup to \(target) failed: \(error)")
            throw ExitCode(1)
        }
        // Open the copy as a user would, to show it holds what it should.
        let copy = try await StoreFactory.open(.sqlite(path: target), logger: .init(label: "doorbell"), access: .readOnly)
        let events = try await copy.countEvents(matching: EventQuery())
        let size = try await copy.storageSize()
        try await copy.close()
        print("backed up \(configuration.storage) to \(target): \(events) events, \(size.fileBytes) bytes")
    }
}

/// `doorbell prune --json`.
struct PruneJSON: Encodable {
    let dryRun: Bool
    let events, runs, stepOutputs, attempts, dedupeKeysKept, dedupeKeysExpired: Int

    enum CodingKeys: String, CodingKey {
        case events, runs, attempts
        case dryRun = "dry_run", stepOutputs = "step_outputs", dedupeKeysKept = "dedupe_keys_kept", dedupeKeysExpired = "dedupe_keys_expired"
    }

    init(dryRun: Bool, counts: PruneCounts) {
        self.dryRun = dryRun
        events = counts.events
        runs = counts.runs
        stepOutputs = counts.stepOutputs
        attempts = counts.attempts
        dedupeKeysKept = counts.dedupeKeysKept
        dedupeKeysExpired = counts.dedupeKeysExpired
    }
}

/// `events 30d, runs 30d, attempts 30d, dedupe window 7d`.
func describe(_ policy: RetentionPolicy) -> String {
    func age(_ seconds: Double?) -> String {
        guard let seconds else { return "forever" }
        if seconds.truncatingRemainder(dividingBy: 86400) == 0 { return "\(Int(seconds / 86400))d" }
        if seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        return "\(Int(seconds))s"
    }
    return "events \(age(policy.events)), runs \(age(policy.runs)), attempts \(age(policy.attempts)), dedupe window \(age(policy.dedupeWindow))"
}

/// The database's size for `doorbell check`, read-only; nil when there is no database yet.
func databaseSummary(_ configuration: Configuration) async -> String? {
    guard case .sqlite(let path) = configuration.storage, FileManager.default.fileExists(atPath: path) else { return nil }
    do {
        let store = try await StoreFactory.open(configuration.storage, logger: .init(label: "doorbell"), access: .readOnly)
        let size = try await store.storageSize()
        let events = try await store.countEvents(matching: EventQuery())
        try await store.close()
        return "\(size.fileBytes + size.walBytes) bytes (file \(size.fileBytes) + WAL \(size.walBytes)), \(size.pageCount) pages of \(size.pageSize) B, \(size.freePages) free; \(events) events"
    } catch {
        return "\(error)"
    }
}
