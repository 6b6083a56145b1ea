import Foundation

/// A position in a list of runs, which is ordered newest first by (created_at, seq): the next page
/// starts after it. Shown to API clients as an opaque text (`description`, parsed back by `init?(_:)`).
public struct RunCursor: Sendable, Hashable, CustomStringConvertible {
    public var createdAtMillis: Int64
    public var sequence: Int64

    public init(createdAtMillis: Int64, sequence: Int64) {
        self.createdAtMillis = createdAtMillis
        self.sequence = sequence
    }

    /// `<created_at millis>.<seq>`, both whole numbers.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let created = Int64(parts[0]), let sequence = Int64(parts[1]), created >= 0, sequence >= 0 else { return nil }
        self.init(createdAtMillis: created, sequence: sequence)
    }

    public var description: String { "\(createdAtMillis).\(sequence)" }
}
