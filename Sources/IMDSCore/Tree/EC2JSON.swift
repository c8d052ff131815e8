/// JSON as EC2's metadata service writes it.
public enum JSONValue: Sendable, Equatable {
    case string(String)
    case number(Int)
    case null
    case strings([String])
}

public enum EC2JSON {
    /// Pretty form: 2-space indent, `"Key" : value`, arrays inline as `[ "a", "b" ]`, no trailing newline.
    public static func pretty(_ fields: [(String, JSONValue)]) -> String {
        var out = "{\n"
        for (i, (key, value)) in fields.enumerated() {
            out += "  \(quote(key)) : \(render(value))"
            out += i == fields.count - 1 ? "\n" : ",\n"
        }
        return out + "}"
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
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
