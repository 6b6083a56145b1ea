import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Paths compared by what they are on disk, not by how they are written: the `files_dir` rule (what
/// the folder must not hold) and `files_dir` itself (absolute paths below it) both need links seen through.
public enum RealPath {
    /// `path` standardized (`.` and `..` removed), with links resolved in every part that exists; the
    /// part that does not exist yet (a database created on first start, a files_dir created on first
    /// write) is appended as written.
    public static func of(_ path: String) -> String {
        var existing = standardized(path)
        var missing: [String] = []
        while true {
            if let resolved = realpath(existing, nil) {
                defer { free(resolved) }
                let parts = [String(cString: resolved)] + missing.reversed()
                return parts.joined(separator: "/").replacingOccurrences(of: "//", with: "/")
            }
            guard existing != "/", !existing.isEmpty else { return standardized(path) }
            missing.append(URL(fileURLWithPath: existing).lastPathComponent)
            existing = URL(fileURLWithPath: existing).deletingLastPathComponent().path
        }
    }

    /// `path` made absolute (against the working directory) with `.` and `..` removed; links kept.
    public static func standardized(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
