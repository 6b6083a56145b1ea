import DoorbellCore
import DoorbellStorage
import Foundation

/// Stable 64-bit hashes for a poller's memory: of item ids (the in-memory key) and of versions
/// (stored). FNV-1a, not Swift's `Hasher`, whose seed changes with every process: these outlive it.
public struct ItemDigest: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inline(__always)
    public mutating func add(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x100_0000_01b3
    }

    public mutating func add(_ text: String) {
        var text = text
        text.withUTF8 { bytes in for byte in bytes { add(byte) } }
    }

    public static func of(_ text: String) -> UInt64 {
        var digest = ItemDigest()
        digest.add(text)
        return digest.value
    }

    /// The hash of `value`'s canonical JSON (object keys sorted, numbers as Foundation prints
    /// them), fed straight into the hash without building the text: two answers that list the same
    /// item with its keys in another order hash alike.
    public static func canonical(_ value: Any) -> UInt64 {
        var digest = ItemDigest()
        digest.addCanonical(value)
        return digest.value
    }

    private static let booleanType = type(of: NSNumber(value: true))

    mutating func addCanonical(_ value: Any) {
        if let text = value as? String {
            add(UInt8(ascii: "\""))
            add(text)
            add(UInt8(ascii: "\""))
        } else if let object = value as? [String: Any] {
            add(UInt8(ascii: "{"))
            for key in object.keys.sorted() {
                add(UInt8(ascii: "\""))
                add(key)
                add(UInt8(ascii: ":"))
                addCanonical(object[key]!)
                add(UInt8(ascii: ","))
            }
            add(UInt8(ascii: "}"))
        } else if let array = value as? [Any] {
            add(UInt8(ascii: "["))
            for item in array {
                addCanonical(item)
                add(UInt8(ascii: ","))
            }
            add(UInt8(ascii: "]"))
        } else if value is NSNull {
            add("null")
        } else if let number = value as? NSNumber {
            if type(of: number) == Self.booleanType { add(number.boolValue ? "true" : "false") } else { add(number.stringValue) }
        } else {
            add(String(describing: value))
        }
    }
}

/// What a poller remembers in memory: item id hash → version hash. 16 bytes an item (plus the
/// table's slack), so 100,000 remembered ids cost a few MB whatever the ids' length.
public struct SeenSet: Sendable {
    private(set) var versions: [UInt64: UInt64] = [:]

    public init() {}

    public init(_ items: [SeenItem]) {
        versions.reserveCapacity(items.count)
        for item in items { versions[ItemDigest.of(item.id)] = item.version }
    }

    public var count: Int { versions.count }

    public func version(ofID hash: UInt64) -> UInt64? { versions[hash] }

    public mutating func remember(idHash: UInt64, version: UInt64) { versions[idHash] = version }
}
