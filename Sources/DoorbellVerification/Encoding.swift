import Foundation

/// Hex and base64 helpers for signatures.
enum ByteEncoding {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes of a hex string (either case); nil when it is not hex.
    static func fromHex(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Bytes of canonical base64 only: Foundation's decoder tolerates extra padding, and a signature
    /// with junk appended should not verify.
    static func fromBase64(_ text: Substring) -> [UInt8]? {
        let string = String(text)
        guard let data = Data(base64Encoded: string), data.base64EncodedString() == string else { return nil }
        return [UInt8](data)
    }
}

/// Header values as the schemes read them.
enum HeaderText {
    /// `text.trimmingCharacters(in: .whitespaces)`, but on the UTF-8 bytes when the ends are ASCII:
    /// the Foundation call was 4 % of ingest CPU. `.whitespaces` also holds Unicode spaces
    /// (U+00A0, U+3000, …), so when a non-ASCII byte is left at either end Foundation still decides.
    static func trimmingWhitespace<Text: StringProtocol>(_ text: Text) -> Substring
    where Text.SubSequence == Substring, Text.UTF8View: BidirectionalCollection {
        let utf8 = text.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start = utf8.index(after: start) }
        while end > start {
            let before = utf8.index(before: end)
            guard utf8[before] == 0x20 || utf8[before] == 0x09 else { break }
            end = before
        }
        if start < end, utf8[start] >= 0x80 || utf8[utf8.index(before: end)] >= 0x80 {
            return Substring(text.trimmingCharacters(in: .whitespaces))
        }
        return text[start..<end]
    }
}
