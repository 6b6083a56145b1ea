/// One problem found in `doorbell.yml`: where it is (a dotted path such as `sources[1].hmac.header`,
/// plus the line when known) and what is wrong.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var line: Int?

    public init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    public var description: String {
        let location = path.isEmpty ? "(top level)" : path
        if let line { return "\(location): \(message) (line \(line))" }
        return "\(location): \(message)"
    }
}

/// Thrown when a config cannot be used; carries every error found, not just the first.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]

    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }

    public var description: String {
        let count = issues.count == 1 ? "1 error" : "\(issues.count) errors"
        return "\(file): \(count)\n" + issues.map { "  \($0)" }.joined(separator: "\n")
    }
}
