import Foundation

/// An RFC 6901 JSON pointer (`/data/object/id`), resolved over values from `JSONSerialization`.
public struct JSONPointer: Sendable, Equatable, CustomStringConvertible {
    public let tokens: [String]
    public let description: String

    /// nil when `text` is not a pointer (it must be empty or start with `/`).
    public init?(_ text: String) {
        guard text.isEmpty || text.hasPrefix("/") else { return nil }
        self.description = text
        self.tokens = text.isEmpty ? [] : text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    /// JSONSerialization's class for `true`/`false`, told apart from numbers without CoreFoundation.
    private static let booleanType = type(of: NSNumber(value: true))

    /// The value at this pointer, or nil when a step is missing.
    public func resolve(in root: Any) -> Any? {
        var current: Any = root
        for token in tokens {
            if let object = current as? [String: Any] {
                guard let next = object[token] else { return nil }
                current = next
            } else if let array = current as? [Any] {
                guard let index = Int(token), array.indices.contains(index) else { return nil }
                current = array[index]
            } else {
                return nil
            }
        }
        return current
    }

    /// The value at this pointer as text: strings as they are, numbers and booleans printed; nil for
    /// missing values, null, objects and arrays.
    public func string(in root: Any) -> String? {
        switch resolve(in: root) {
        case let string as String: return string
        case let number as NSNumber:
            if type(of: number) == JSONPointer.booleanType { return number.boolValue ? "true" : "false" }
            return number.stringValue
        default: return nil
        }
    }
}
