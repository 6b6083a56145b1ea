/// Limits on a `file`/`attach` path below `files_dir`: the path is a template that webhook data fills,
/// and without them `{"p": "d/d/d/…"}` created 20,000 nested folders with one request.
extension FilesDirectory {
    /// Folders and file name together, after `.` and `..` are resolved.
    static let maxComponents = 16
    /// The path below files_dir, in bytes, as given (before `.` and `..` are resolved).
    static let maxPathBytes = 1024
    /// One folder or file name, in bytes: what common file systems allow.
    static let maxComponentBytes = 255

    /// Refuses a relative path over the limits, for good (the same data renders the same path). The
    /// error shows only the path's start: the path is the sender's text and may be long.
    static func checkLimits(_ relative: Substring, given: String) throws(StepFailure) {
        if relative.utf8.count > maxPathBytes {
            throw limitRefusal(given, "is \(relative.utf8.count) bytes below files_dir; at most \(maxPathBytes) are allowed")
        }
        for part in relative.split(separator: "/") where part.utf8.count > maxComponentBytes {
            throw limitRefusal(given, "has a name of \(part.utf8.count) bytes; at most \(maxComponentBytes) are allowed per folder or file name")
        }
    }

    static func checkLimits(_ components: [String], given: String) throws(StepFailure) {
        if components.count > maxComponents {
            throw limitRefusal(given, "is \(components.count) folders and names deep; at most \(maxComponents) are allowed")
        }
    }

    private static func limitRefusal(_ given: String, _ reason: String) -> StepFailure {
        let shown = given.utf8.count > 120 ? "\(given.prefix(100))…" : given
        return StepFailure("file path '\(shown)' \(reason)", retryable: false)
    }
}
