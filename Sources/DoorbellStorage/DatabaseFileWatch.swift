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
/// microseconds, cheap enough for every group commit). The descriptors are closed only after SQLite
/// has closed the database: closing any descriptor of a file drops the process's POSIX locks on it.
final class DatabaseFileWatch: Sendable {
    private struct Watched {
        let path: String
        let descriptor: Int32
        /// The largest size seen. The main file only grows while we run (no auto-vacuum), and the
        /// WAL only shrinks at our own TRUNCATE checkpoint on close, so a smaller size is truncation.
        var largest: Int64
    }

    private let watched: Mutex<[Watched]>
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

    /// Nil while every watched file is the one opened and has not shrunk; otherwise what happened,
    /// naming the file.
    func check() -> String? {
        for path in optional where !watched.withLock({ $0.contains { $0.path == path } }) { watch(path) }
        return watched.withLock { files in
            for index in files.indices {
                let file = files[index]
                var opened = stat()
                var current = stat()
                guard fstat(file.descriptor, &opened) == 0 else { return "cannot inspect \(file.path): \(String(cString: strerror(errno)))" }
                if stat(file.path, &current) != 0 {
                    let reason = errno == ENOENT ? "was deleted" : "cannot be inspected: \(String(cString: strerror(errno)))"
                    return "the database file \(file.path) \(reason) while the server was running"
                }
                if current.st_ino != opened.st_ino || current.st_dev != opened.st_dev {
                    return "the database file \(file.path) was replaced by another file while the server was running"
                }
                let size = Int64(opened.st_size)
                if size < file.largest {
                    return "the database file \(file.path) was truncated from \(file.largest) to \(size) bytes while the server was running"
                }
                files[index].largest = size
            }
            return nil
        }
    }

    private func watch(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        var status = stat()
        let size = fstat(descriptor, &status) == 0 ? Int64(status.st_size) : 0
        watched.withLock { $0.append(Watched(path: path, descriptor: descriptor, largest: size)) }
    }
}
