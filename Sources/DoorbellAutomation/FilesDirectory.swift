import DoorbellCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `files_dir`: the one folder `file` steps write into and `email.attach` reads from. Their paths are
/// templates that webhook data fills, so every path is confined to the folder by the file system
/// itself, not by comparing strings: it is opened component by component from a descriptor of the
/// folder (`openat`), with `O_NOFOLLOW` on every component, and `..` may not climb above the folder.
/// A symbolic link below the folder is therefore never followed — refused even when it points back
/// inside, because following none is simpler to trust than following some. The folder itself may
/// be a link (that is the operator's choice, made in the config).
struct FilesDirectory: Sendable {
    /// The folder as configured (absolute).
    let path: String
    /// The largest file `attach` reads; larger ones are refused rather than held in memory.
    static let attachmentLimit = 25 * 1024 * 1024

    /// Writes `contents` to `given` (relative to the folder, or absolute below it) atomically: a
    /// temporary file in the same folder, then a rename. Missing folders on the way are created.
    /// Returns the path written, for later steps (`{{steps.<id>.path}}`).
    func write(_ given: String, contents: [UInt8]) throws(StepFailure) -> String {
        let components = try relativeComponents(given)
        let parent = try openParent(components, given: given, create: true)
        defer { close(parent) }
        let name = components[components.count - 1]
        var status = stat()
        if fstatat(parent, name, &status, AT_SYMLINK_NOFOLLOW) == 0 {
            if status.st_mode & S_IFMT == S_IFLNK { throw refusal(given, "is a symbolic link; links below files_dir are not followed") }
            if status.st_mode & S_IFMT == S_IFDIR { throw StepFailure("file path '\(given)' is a folder in files_dir \(path)", retryable: false) }
        }
        // A fixed-length name, so a long target name cannot make it too long; O_EXCL|O_NOFOLLOW: never
        // an existing file or link.
        let temporary = ".doorbell-" + String(UInt64.random(in: .min ... .max), radix: 16) + ".tmp"
        let descriptor = openat(parent, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot write", given, errno) }
        var written = 0
        var problem: Int32 = 0
        contents.withUnsafeBytes { bytes in
            while written < bytes.count {
                let count = posixWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    problem = errno
                    return
                }
                written += count
            }
        }
        if problem == 0 && fsync(descriptor) != 0 { problem = errno }
        if close(descriptor) != 0 && problem == 0 { problem = errno }
        // rename replaces the name itself: were a link put there meanwhile, it is replaced, not followed.
        if problem == 0 && renameat(parent, temporary, parent, name) != 0 { problem = errno }
        if problem != 0 {
            unlinkat(parent, temporary, 0)
            throw failure("cannot write", given, problem)
        }
        return ([path] + components).joined(separator: "/")
    }

    /// Reads the regular file at `given` (relative to the folder, or absolute below it), for `attach`.
    func read(_ given: String) throws(StepFailure) -> (name: String, data: Data) {
        let components = try relativeComponents(given)
        let parent = try openParent(components, given: given, create: false)
        defer { close(parent) }
        let name = components[components.count - 1]
        // O_NONBLOCK: a FIFO planted in the folder must not hang the step.
        let descriptor = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            if isLink(parent, name) { throw refusal(given, "is a symbolic link; links below files_dir are not followed") }
            throw failure("cannot read attachment", given, code)
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure("cannot read attachment", given, errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw StepFailure("attachment '\(given)' is not a regular file", retryable: false) }
        guard Int(status.st_size) <= Self.attachmentLimit else {
            throw StepFailure("attachment '\(given)' is \(status.st_size) bytes, more than the \(Self.attachmentLimit) allowed", retryable: false)
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while data.count <= Self.attachmentLimit {
            let count = buffer.withUnsafeMutableBytes { posixRead(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read attachment", given, errno)
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        guard data.count <= Self.attachmentLimit else {
            throw StepFailure("attachment '\(given)' grew past the \(Self.attachmentLimit) bytes allowed", retryable: false)
        }
        return (name, data)
    }

    /// The components of `given` below the folder. An absolute path must start with the folder (as
    /// configured or as resolved); `.` and empty components drop out; `..` may not climb above it.
    func relativeComponents(_ given: String) throws(StepFailure) -> [String] {
        guard !given.contains("\0") else { throw refusal(given, "contains a NUL byte") }
        var relative = Substring(given)
        if given.hasPrefix("/") {
            let roots = [path, RealPath.of(path)].map { $0 == "/" ? "" : $0 }
            guard let root = roots.first(where: { given.hasPrefix($0 + "/") }) else {
                throw refusal(given, "is outside files_dir \(path)")
            }
            relative = given.dropFirst(root.count + 1)
        }
        try Self.checkLimits(relative, given: given)
        var components: [String] = []
        for part in relative.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                guard !components.isEmpty else { throw refusal(given, "leads out of files_dir \(path)") }
                components.removeLast()
            default: components.append(String(part))
            }
        }
        guard !components.isEmpty else { throw refusal(given, "names files_dir itself, not a file in it") }
        try Self.checkLimits(components, given: given)
        return components
    }

    /// An open descriptor of the folder that holds the last component, reached without following links.
    private func openParent(_ components: [String], given: String, create: Bool) throws(StepFailure) -> Int32 {
        if create {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw StepFailure("cannot create files_dir \(path): \(error)", retryable: true)
            }
        }
        var current = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { throw failure(create ? "cannot write" : "cannot read attachment", given, errno) }
        for (index, name) in components.dropLast().enumerated() {
            if create && mkdirat(current, name, 0o755) != 0 && errno != EEXIST {
                let code = errno
                close(current)
                throw failure("cannot create a folder for", given, code)
            }
            let next = openat(current, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 {
                let code = errno
                let link = isLink(current, name)
                close(current)
                let shown = components[0...index].joined(separator: "/")
                if link { throw refusal(given, "passes through the symbolic link '\(shown)'; links below files_dir are not followed") }
                if code == ENOTDIR { throw refusal(given, "passes through '\(shown)', which is not a folder") }
                throw failure(create ? "cannot write" : "cannot read attachment", given, code)
            }
            close(current)
            current = next
        }
        return current
    }

    private func isLink(_ directory: Int32, _ name: String) -> Bool {
        var status = stat()
        return fstatat(directory, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    /// A path that breaks the folder's rules: never worth retrying, the same data gives the same path.
    private func refusal(_ given: String, _ reason: String) -> StepFailure {
        StepFailure("file path '\(given)' \(reason)", retryable: false)
    }

    /// A system error: a missing file or a denied permission will not change by itself; a full disk,
    /// a descriptor limit or an I/O error might.
    private func failure(_ action: String, _ given: String, _ code: Int32) -> StepFailure {
        let permanent = [ENOENT, EACCES, EPERM, ENOTDIR, EISDIR, ELOOP, ENAMETOOLONG, EROFS].contains(code)
        return StepFailure("\(action) '\(given)' in files_dir \(path): \(String(cString: strerror(code)))", retryable: !permanent)
    }
}

// The C calls under names the methods above do not shadow.
private func posixWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, bytes, count) }
private func posixRead(_ descriptor: Int32, _ bytes: UnsafeMutableRawPointer, _ count: Int) -> Int { read(descriptor, bytes, count) }
