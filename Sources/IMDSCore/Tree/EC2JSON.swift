/// JSON as EC2's metadata service writes it.
public enum JSONValue: Sendable, Equatable {
    case string(String)
    case number(Int)
    case null
    case strings([String])

    var sizeHint: Int {
        switch self {
        case .string(let s): s.utf8.count + 2
        case .number: 20
        case .null: 4
        case .strings(let a): a.reduce(4) { $0 + $1.utf8.count + 4 }
        }
    }
}

public enum EC2JSON {
    /// Pretty form: 2-space indent, `"Key" : value`, arrays inline as `[ "a", "b" ]`, no trailing newline.
    public static func pretty(_ fields: [(String, JSONValue)]) -> String {
        // Built as bytes: a credentials document (a 1 KB token) appended scalar by scalar to a
        // String was a seventh of an SDK credential fetch's server time.
        var out: [UInt8] = [0x7B, 0x0A]  // {\n
        out.reserveCapacity(fields.reduce(16) { $0 + $1.0.utf8.count + 8 + $1.1.sizeHint })
        for (i, (key, value)) in fields.enumerated() {
            out += [0x20, 0x20]
            appendQuoted(key, to: &out)
            out += [0x20, 0x3A, 0x20]  // " : "
            append(value, to: &out)
            if i != fields.count - 1 { out.append(0x2C) }
            out.append(0x0A)
        }
        out.append(0x7D)
        return String(decoding: out, as: UTF8.self)
    }

    /// Compact form used by spot and rebalance notices: `{"action": "terminate", "time": "..."}`.
    public static func compact(_ fields: [(String, JSONValue)]) -> String {
        "{" + fields.map { "\(quote($0.0)): \(render($0.1))" }.joined(separator: ", ") + "}"
    }

    static func render(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): quote(s)
        case .number(let n): String(n)
        case .null: "null"
        case .strings(let a): a.isEmpty ? "[ ]" : "[ " + a.map(quote).joined(separator: ", ") + " ]"
        }
    }

    public static func quote(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .string(let s): appendQuoted(s, to: &out)
        case .number, .null, .strings: out += render(value).utf8
        }
    }

    /// `s` as a JSON string: `"` and `\` escaped, `\n` `\r` `\t` as such, other control bytes as
    /// `\u00xx`; everything else (all of UTF-8 above 0x7F included) copied as it is.
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        var s = s
        s.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
                switch b {
                case 0x22: out += [0x5C, 0x22]
                case 0x5C: out += [0x5C, 0x5C]
                case 0x0A: out += [0x5C, 0x6E]
                case 0x0D: out += [0x5C, 0x72]
                case 0x09: out += [0x5C, 0x74]
                default: out += [0x5C, 0x75, 0x30, 0x30, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]]
                }
                start = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(0x22)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
