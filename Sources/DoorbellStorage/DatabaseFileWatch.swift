import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Notices when the database's files are deleted, replaced or truncated under a running server.
/// SQLite keeps writing through its open descriptors, so without this check commits would land in
/// an unlinked inode (gone at the next restart) while ingest answers 200.
///
/// Each watched path is held open by a descriptor of our own, so its inode cannot be freed and reused
/// by a new file; a check compares `fstat` of that descriptor with `stat` of the path (a few
/// microseconds, cheap enough for every group commit). Truncation shows as a smaller size, or, when
/// writes have grown the file again since, as a header that is no longer there (the first bytes of
/// a truncated file read back as zeros). A file overwritten in place (`cp backup.db doorbell.db`:
/// same inode, a valid header, not necessarily smaller) shows as a changed header: in WAL mode only a
/// checkpoint writes the main file, the server's connections never checkpoint on their own
/// (`wal_autocheckpoint = 0`), and after each of our checkpoints the store calls `rememberHeader()`,
/// so any other change of the main file's first 100 bytes (change counter, page count, ...) was made
/// by someone else. Blind spots: a file overwritten during one of our checkpoints (milliseconds, at
/// most every 100 ms) is taken for ours, and another program that checkpoints (a `sqlite3` shell writing
/// to the live database) is taken for an overwrite. The descriptors are closed only after SQLite has closed the database: closing any
/// descriptor of a file drops the process's POSIX locks on it.
final class DatabaseFileWatch: Sendable {
    private struct Watched {
        let path: String
        let descriptor: Int32
        /// The largest size seen. The main file only grows while we run (no auto-vacuum), and the
        /// WAL only shrinks at our own TRUNCATE checkpoint on close, so a smaller size is truncation.
        var largest: Int64
        /// How the file must start once it is this long: SQLite's database header, or a WAL's magic.
        let header: (length: Int, valid: @Sendable ([UInt8]) -> Bool)
        /// The main file's first `headerBytes` bytes as our last checkpoint left them (nil for the WAL,
        /// which every commit rewrites).
        var expected: [UInt8]?
    }

    /// SQLite's database header: what a checkpoint rewrites, and what another file's copy differs in.
    static let headerBytes = 100

    /// "SQLite format 3\0".
    private static let databaseHeader: (Int, @Sendable ([UInt8]) -> Bool) = (16, { $0 == Array("SQLite format 3\0".utf8) })
    /// 0x377f0682 or 0x377f0683, big-endian.
    private static let walHeader: (Int, @Sendable ([UInt8]) -> Bool) = (4, { $0.count == 4 && $0[0] == 0x37 && $0[1] == 0x7f && $0[2] == 0x06 && ($0[3] == 0x82 || $0[3] == 0x83) })

    private let watched: Mutex<[Watched]>
    /// True while our own checkpoint writes the main file (its header may be half new): header
    /// comparisons wait for `rememberHeader()`.
    private let checkpointing = Atomic<Bool>(false)
    private let optional: [String]

    /// Watches `path` and, once it exists, each of `companions` (the `-wal` file).
    init(path: String, companions: [String]) {
        optional = companions
        watched = Mutex([])
        for file in [path] + companions { watch(file) }
    }

    deinit {
        watched.withLock { files in
            for file in files { _ = close(file.descriptor) }
        }
    }

    /// Releases the descriptors; call after the database has been closed.
    func stop() {
        watched.withLock { files in
            for file in files { _ = close(file.descriptor) }
            files.removeAll()
        }
    }

    /// What happened to a watched file.
    struct Loss: Sendable, Equatable {
        /// What happened, naming the file.
        let description: String
        /// The open file still holds everything committed (it was deleted or replaced, not cut
        /// short), so a copy of it can be rescued.
        let rescuable: Bool
    }

    /// Nil while every watched file is the one opened, has not shrunk and (the main file) still
    /// starts as our last checkpoint left it; otherwise what happened.
    func check() -> Loss? {
        watched.withLock { files in
            // Looked for and opened under the same lock, so two callers (a group commit and /readyz)
            // cannot both find the WAL unwatched and both open it.
            for path in optional where !files.contains(where: { $0.path == path }) {
                if let file = Self.openWatched(path) { files.append(file) }
            }
            for index in files.indices {
                let file = files[index]
                var opened = stat()
                var current = stat()
                guard fstat(file.descriptor, &opened) == 0 else { return Loss(description: "cannot inspect \(file.path): \(String(cString: strerror(errno)))", rescuable: false) }
                if stat(file.path, &current) != 0 {
                    let reason = errno == ENOENT ? "was deleted" : "cannot be inspected: \(String(cString: strerror(errno)))"
                    return Loss(description: "the database file \(file.path) \(reason) while the server was running", rescuable: errno == ENOENT)
                }
                if current.st_ino != opened.st_ino || current.st_dev != opened.st_dev {
                    return Loss(description: "the database file \(file.path) was replaced by another file while the server was running", rescuable: true)
                }
                let size = Int64(opened.st_size)
                if size < file.largest {
                    return Loss(description: "the database file \(file.path) was truncated from \(file.largest) to \(size) bytes while the server was running", rescuable: false)
                }
                if size >= file.header.length {
                    let bytes = Self.read(file.descriptor, file.header.length)
                    if bytes.count == file.header.length, !file.header.valid(bytes) {
                        return Loss(description: "the database file \(file.path) was truncated (its header is gone) while the server was running", rescuable: false)
                    }
                }
                if let expected = file.expected, !checkpointing.load(ordering: .acquiring), Self.read(file.descriptor, Self.headerBytes) != expected {
                    return Loss(description: "the database file \(file.path) was overwritten in place (its header changed outside the server's checkpoints) while the server was running", rescuable: false)
                }
                files[index].largest = size
            }
            return nil
        }
    }

    /// Our checkpoint is about to write the main file: a check meanwhile (a group commit, `/readyz`)
    /// must not take its half-written header for someone else's.
    func checkpointStarts() {
        watched.withLock { _ in checkpointing.store(true, ordering: .releasing) }
    }

    /// Takes the main file's header as it stands now as ours; call right after our own checkpoint
    /// (also a failed one), before the next one starts (ours run one at a time, and nothing else
    /// checkpoints; commits write only the WAL).
    func rememberHeader() {
        watched.withLock { files in
            for index in files.indices where files[index].expected != nil {
                files[index].expected = Self.read(files[index].descriptor, Self.headerBytes)
            }
            checkpointing.store(false, ordering: .releasing)
        }
    }

    private func watch(_ path: String) {
        guard let file = Self.openWatched(path) else { return }
        watched.withLock { $0.append(file) }
    }

    private static func openWatched(_ path: String) -> Watched? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        var status = stat()
        let size = fstat(descriptor, &status) == 0 ? Int64(status.st_size) : 0
        let isWAL = path.hasSuffix("-wal")
        return Watched(path: path, descriptor: descriptor, largest: size, header: isWAL ? walHeader : databaseHeader,
                       expected: isWAL ? nil : read(descriptor, headerBytes))
    }

    /// Up to `count` bytes from the start of the file (fewer when it is shorter), with `pread`.
    private static func read(_ descriptor: Int32, _ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, 0) }
        return Array(bytes.prefix(max(0, read)))
    }
}
