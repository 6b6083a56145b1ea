import Foundation

/// Writes JSON-shaped values (what `JSONSerialization` reads, and what templates render) as UTF-8
/// bytes. Written by hand because `JSONSerialization.data` bridges every dictionary to NSDictionary
/// on Linux and was the largest single cost of a run in the benchmark's profile.
public enum JSONText {
    public struct InvalidValue: Error, CustomStringConvertible {
        public let description: String
    }

    public static func data(_ value: Any) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try write(value, into: &out)
        return out
    }

    public static func string(_ value: Any) throws -> String {
        String(decoding: try data(value), as: UTF8.self)
    }

    private static let booleanType = type(of: NSNumber(value: true))

    private static func write(_ value: Any, into out: inout [UInt8]) throws {
        // Exact types first: a parsed NSNumber 1 also answers `as? Bool`, a native Int `as? NSNumber`.
        // Collections before the NSNull/NSNumber checks: casting a Swift dictionary to an NSObject
        // class bridges it to NSDictionary first, which is what made JSONSerialization slow.
        if let text = value as? String {
            writeString(text, into: &out)
        } else if type(of: value) == Bool.self {
            out += (value as! Bool) ? Array("true".utf8) : Array("false".utf8)
        } else if type(of: value) == Int.self {
            out += Array(String(value as! Int).utf8)
        } else if type(of: value) == Double.self {
            try writeDouble(value as! Double, into: &out)
        } else if let object = value as? [String: Any] {
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, item) in object {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(item, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        } else if let array = value as? [Any] {
            out.append(UInt8(ascii: "["))
            for (index, item) in array.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        } else if value is NSNull {
            out += Array("null".utf8)
        } else if let number = value as? NSNumber {
            if type(of: number) == booleanType {
                out += number.boolValue ? Array("true".utf8) : Array("false".utf8)
            } else {
                let text = number.stringValue
                guard text != "nan", !text.contains("inf") else { throw InvalidValue(description: "\(text) is not a JSON number") }
                out += Array(text.utf8)
            }
        } else if let number = value as? any BinaryInteger {
            out += Array(String(describing: number).utf8)
        } else if let number = value as? any BinaryFloatingPoint {
            try writeDouble(Double(number), into: &out)
        } else {
            throw InvalidValue(description: "\(type(of: value)) is not a JSON value")
        }
    }

    private static func writeDouble(_ number: Double, into out: inout [UInt8]) throws {
        guard number.isFinite else { throw InvalidValue(description: "\(number) is not a JSON number") }
        if number.rounded() == number && abs(number) < 1e15 {
            out += Array(String(Int64(number)).utf8)
        } else {
            out += Array("\(number)".utf8)
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20: out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
