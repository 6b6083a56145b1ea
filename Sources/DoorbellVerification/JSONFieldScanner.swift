import DoorbellCore

/// Reads the few values an event's identity needs (`/type`, `/id`, a configured pointer) from a JSON
/// body in one pass over its UTF-8 bytes, without building Foundation values: parsing every body
/// with `JSONSerialization` into `[String: Any]` was 8 % of ingest CPU (issue 13).
///
/// The answer must be exactly what `JSONSerialization` + `JSONPointer.string(in:)` would give, so the
/// scanner validates the whole document and answers only when it is sure; `scan` returns nil for
/// anything it does not handle itself (invalid JSON, a trailing comma, a BOM, a top level that is not
/// an object, an array on a pointer's path, a fraction or a long number at a pointer, deep nesting,
/// big exponents…) and the caller then asks Foundation, which also words the refusal.
struct JSONFieldScanner {
    /// What a pointer resolved to, as `JSONPointer.string(in:)` sees it.
    enum Field: Equatable {
        /// A string, or a boolean or plain integer printed as Foundation prints it.
        case text(String)
        /// Missing, null, an object or an array: `string(in:)` gives nil.
        case none
    }

    /// Deepest nesting answered here; `JSONSerialization` refuses past 512, so bodies near the limit
    /// go to Foundation.
    static let maxDepth = 500
    /// Longest number accepted without asking Foundation: it refuses numbers that overflow a
    /// Double (a 400-digit integer, `1e400`), so only numbers far from that are judged here.
    static let maxNumberDigits = 30

    /// Resolution state of one pointer while scanning; `unsure` sends the body to Foundation.
    private enum State {
        case field(Field)
        case unsure
    }

    private let bytes: [UInt8]
    private var index = 0
    /// Each pointer's reference tokens.
    private let targets: [[String]]
    private var states: [State]

    /// The value at each of `pointers` (at most 8), or nil when Foundation has to decide.
    static func scan(_ body: [UInt8], pointers: [JSONPointer]) -> [Field]? {
        guard pointers.count <= 8 else { return nil }
        var scanner = JSONFieldScanner(body, pointers)
        guard scanner.run() else { return nil }
        var fields: [Field] = []
        fields.reserveCapacity(scanner.states.count)
        for state in scanner.states {
            guard case .field(let field) = state else { return nil }
            fields.append(field)
        }
        return fields
    }

    private init(_ body: [UInt8], _ pointers: [JSONPointer]) {
        self.bytes = body
        self.targets = pointers.map(\.tokens)
        // The empty pointer names the root object itself: nil from `string(in:)`.
        self.states = Array(repeating: .field(.none), count: pointers.count)
    }

    /// A container being read: whether it is an object, and which pointers still match its path.
    private struct Frame {
        let isObject: Bool
        let active: UInt8
    }

    /// Validates the whole document and records the pointers' values; false when not sure.
    private mutating func run() -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return false }
        index += 1
        var rootActive: UInt8 = 0
        for (number, target) in targets.enumerated() where !target.isEmpty { rootActive |= 1 << number }
        var frames: [Frame] = [Frame(isObject: true, active: rootActive)]
        frames.reserveCapacity(8)
        // Just after an opening bracket: the container may be empty.
        var opened = true

        while let frame = frames.last {
            skipWhitespace()
            guard index < bytes.count else { return false }
            let closing = frame.isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            if bytes[index] == closing {
                // `{"a":1,}` is accepted by Foundation; the scanner leaves that to it.
                guard opened else { return false }
                index += 1
                frames.removeLast()
                guard afterValue(&frames, &opened) else { return false }
                continue
            }
            opened = false
            var leaves: UInt8 = 0
            var descending: UInt8 = 0
            if frame.isObject {
                guard bytes[index] == UInt8(ascii: "\"") else { return false }
                let depth = frames.count - 1
                guard let key = readString(decode: false) else { return false }
                if frame.active != 0 {
                    var decodedKey: String?
                    for number in targets.indices where frame.active & (1 << number) != 0 {
                        guard matches(key, target: targets[number], depth: depth, decoded: &decodedKey) else { continue }
                        if targets[number].count == depth + 1 { leaves |= 1 << number } else { descending |= 1 << number }
                    }
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
                index += 1
                skipWhitespace()
            }
            // A repeated key replaces the earlier value, as in Foundation's dictionary: start over.
            for number in targets.indices where descending & (1 << number) != 0 { states[number] = .field(.none) }
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = bytes[index] == UInt8(ascii: "{")
                guard frames.count < Self.maxDepth else { return false }
                index += 1
                set(leaves, .field(.none))
                // A pointer through an array needs its index rules: Foundation's job.
                if !isObject { set(descending, .unsure) }
                frames.append(Frame(isObject: isObject, active: isObject ? descending : 0))
                opened = true
            case UInt8(ascii: "\""):
                guard let text = readString(decode: leaves != 0) else { return false }
                if leaves != 0 { set(leaves, .field(.text(text.decoded ?? ""))) }
                guard afterValue(&frames, &opened) else { return false }
            case UInt8(ascii: "t"):
                guard literal("true") else { return false }
                set(leaves, .field(.text("true")))
                guard afterValue(&frames, &opened) else { return false }
            case UInt8(ascii: "f"):
                guard literal("false") else { return false }
                set(leaves, .field(.text("false")))
                guard afterValue(&frames, &opened) else { return false }
            case UInt8(ascii: "n"):
                guard literal("null") else { return false }
                set(leaves, .field(.none))
                guard afterValue(&frames, &opened) else { return false }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard let number = readNumber() else { return false }
                if leaves != 0 {
                    set(leaves, number.plainInteger ? .field(.text(String(decoding: bytes[number.range], as: UTF8.self))) : .unsure)
                }
                guard afterValue(&frames, &opened) else { return false }
            default:
                return false
            }
        }
        skipWhitespace()
        return index == bytes.count
    }

    private mutating func set(_ mask: UInt8, _ state: State) {
        guard mask != 0 else { return }
        for number in targets.indices where mask & (1 << number) != 0 { states[number] = state }
    }

    /// After a value inside a container: a comma (then another member) or the closing bracket.
    private mutating func afterValue(_ frames: inout [Frame], _ opened: inout Bool) -> Bool {
        guard let frame = frames.last else { return true }
        skipWhitespace()
        guard index < bytes.count else { return false }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            opened = false
            return true
        }
        // The closing bracket is read by the loop; `opened` lets it through without a comma.
        guard bytes[index] == (frame.isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
        opened = true
        return true
    }

    /// Swift `String` equality, as Foundation's `[String: Any]` lookup uses (canonical equivalence:
    /// U+212A KELVIN SIGN equals `K`); bytes are compared directly only when both sides are ASCII.
    private func matches(_ key: StringToken, target: [String], depth: Int, decoded: inout String?) -> Bool {
        let token = target[depth]
        if key.plainASCII && token.utf8.allSatisfy({ $0 < 0x80 }) {
            return key.range.count == token.utf8.count && bytes[key.range].elementsEqual(token.utf8)
        }
        if decoded == nil { decoded = decodeString(key.range) }
        return decoded == token
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0a, 0x0d, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        let matched = word.withUTF8Buffer { buffer in
            var offset = 0
            while offset < count {
                if bytes[index + offset] != buffer[offset] { return false }
                offset += 1
            }
            return true
        }
        guard matched else { return false }
        index += count
        return true
    }

    /// A string's raw contents (between the quotes), checked, and decoded when asked.
    private struct StringToken {
        let range: Range<Int>
        /// No escapes and no bytes ≥ 0x80: the raw bytes are the text.
        let plainASCII: Bool
        let decoded: String?
    }

    /// Reads a string at `index` (on its opening quote). Refuses (nil) raw control characters,
    /// invalid UTF-8, unknown escapes and unpaired surrogate escapes, all of which Foundation
    /// refuses too.
    private mutating func readString(decode: Bool) -> StringToken? {
        index += 1
        let start = index
        var plainASCII = true
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let range = start..<index
                index += 1
                let decoded = decode ? decodeString(range) : nil
                if decode, decoded == nil { return nil }
                return StringToken(range: range, plainASCII: plainASCII, decoded: decoded)
            case UInt8(ascii: "\\"):
                plainASCII = false
                guard index + 1 < bytes.count else { return nil }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard let unit = hexUnit(at: index + 2) else { return nil }
                    index += 6
                    if unit >= 0xD800 && unit < 0xDC00 {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                            let low = hexUnit(at: index + 2), low >= 0xDC00 && low < 0xE000
                        else { return nil }
                        index += 6
                    } else if unit >= 0xDC00 && unit < 0xE000 {
                        return nil
                    }
                default:
                    return nil
                }
            case 0x00..<0x20:
                return nil
            case 0x80...:
                plainASCII = false
                guard let length = utf8SequenceLength(at: index) else { return nil }
                // A raw U+FEFF: Foundation on Linux drops one at the start of a string or right after
                // an escape (found by a differential attack), so such a body goes to Foundation.
                if length == 3, bytes[index] == 0xEF, bytes[index + 1] == 0xBB, bytes[index + 2] == 0xBF { return nil }
                index += length
            default:
                index += 1
            }
        }
        return nil
    }

    /// Four hex digits at `position`, as a UTF-16 unit.
    private func hexUnit(at position: Int) -> UInt16? {
        guard position + 4 <= bytes.count else { return nil }
        var value: UInt16 = 0
        for offset in 0..<4 {
            let byte = bytes[position + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// Length of the well-formed UTF-8 sequence at `position` (Unicode table 3-7: no overlongs, no
    /// encoded surrogates, nothing past U+10FFFF), or nil.
    private func utf8SequenceLength(at position: Int) -> Int? {
        let lead = bytes[position]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return nil
        }
        guard position + length <= bytes.count else { return nil }
        let second = bytes[position + 1]
        guard second >= low && second <= high else { return nil }
        for offset in 2..<length where bytes[position + offset] & 0xC0 != 0x80 { return nil }
        return length
    }

    /// The text of an already checked string body: escapes resolved, surrogate pairs joined.
    private func decodeString(_ range: Range<Int>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var position = range.lowerBound
        while position < range.upperBound {
            let byte = bytes[position]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                position += 1
                continue
            }
            let escape = bytes[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let unit = hexUnit(at: position) else { return nil }
                position += 4
                var scalarValue = UInt32(unit)
                if unit >= 0xD800 && unit < 0xDC00 {
                    guard let lowUnit = hexUnit(at: position + 2) else { return nil }
                    position += 6
                    scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(lowUnit) - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { return nil }
                out.append(contentsOf: UTF8.encode(scalar)!)
            default: out.append(escape)  // `"`, `\`, `/`: themselves
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A number's bytes, and whether it is a plain integer that Foundation prints back unchanged.
    private struct NumberToken {
        let range: Range<Int>
        let plainInteger: Bool
    }

    /// Reads a number in RFC 8259 form. Long numbers and exponents of three or more digits are left
    /// to Foundation (nil), since it refuses those that do not fit a Double.
    private mutating func readNumber() -> NumberToken? {
        let start = index
        var digits = 0
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            digits += 1
        } else if isDigit(at: index) {
            while isDigit(at: index) { index += 1; digits += 1 }
        } else {
            return nil
        }
        let integerDigits = digits
        var plain = true
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            plain = false
            index += 1
            guard isDigit(at: index) else { return nil }
            while isDigit(at: index) { index += 1; digits += 1 }
        }
        if index < bytes.count && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
            plain = false
            index += 1
            if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) { index += 1 }
            guard isDigit(at: index) else { return nil }
            var exponentDigits = 0
            while isDigit(at: index) { index += 1; exponentDigits += 1 }
            guard exponentDigits <= 2 else { return nil }
        }
        guard digits <= Self.maxNumberDigits else { return nil }
        // `-0` prints as `0`, and integers past Int64 become NSDecimalNumber: only short ones are
        // printed here.
        let negativeZero = bytes[start] == UInt8(ascii: "-") && bytes[start + 1] == UInt8(ascii: "0")
        return NumberToken(range: start..<index, plainInteger: plain && integerDigits <= 18 && !negativeZero)
    }

    private func isDigit(at position: Int) -> Bool {
        position < bytes.count && bytes[position] >= UInt8(ascii: "0") && bytes[position] <= UInt8(ascii: "9")
    }
}
