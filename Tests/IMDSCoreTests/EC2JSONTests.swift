import Testing

@testable import IMDSCore

/// `EC2JSON` writes bytes; the reference below is the scalar-by-scalar writer it replaced, and
/// both must agree on every input (escapes, control bytes, multi-byte UTF-8, empty strings).
@Suite("EC2 JSON writer")
struct EC2JSONTests {
    static func referenceQuote(_ s: String) -> String {
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

    static func referencePretty(_ fields: [(String, JSONValue)]) -> String {
        var out = "{\n"
        for (i, (key, value)) in fields.enumerated() {
            let v: String
            switch value {
            case .string(let s): v = referenceQuote(s)
            case .number(let n): v = String(n)
            case .null: v = "null"
            case .strings(let a): v = a.isEmpty ? "[ ]" : "[ " + a.map(referenceQuote).joined(separator: ", ") + " ]"
            }
            out += "  \(referenceQuote(key)) : \(v)"
            out += i == fields.count - 1 ? "\n" : ",\n"
        }
        return out + "}"
    }

    static let samples: [String] = [
        "", "plain", "quote \" and \\ backslash", "line\nbreak\r\ttab", "\u{0}\u{1}\u{1f}\u{7f}",
        "ünïcödé ✓ 🚀 日本語", "\"", "\\", "end\\", "a\u{b}b\u{c}c", String(repeating: "IQoJb3JpZ2luX2Vj+/=", count: 60),
    ]

    @Test func quoteMatchesTheReference() {
        for s in Self.samples { #expect(EC2JSON.quote(s) == Self.referenceQuote(s), "\(Array(s.utf8))") }
        var g = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "\"", "\\", "\n", "\r", "\t", "\u{1}", "\u{1f}", " ", "é", "🚀", "\u{7f}", "Z"]
        for _ in 0..<2000 {
            let s = String((0..<Int.random(in: 0..<40, using: &g)).map { _ in alphabet.randomElement(using: &g)! })
            #expect(EC2JSON.quote(s) == Self.referenceQuote(s), "\(Array(s.utf8))")
        }
    }

    @Test func prettyMatchesTheReference() {
        let fields: [[(String, JSONValue)]] = [
            [],
            [("Code", .string("Success"))],
            [("Code", .string("Success")), ("LastUpdated", .string("2026-12-02T10:00:00Z")), ("Token", .string(Self.samples[10])),
             ("n", .number(-42)), ("z", .null), ("list", .strings([])), ("list2", .strings(["a", "b\"c"])), ("ünï\"key", .string("v\n"))],
        ]
        for f in fields { #expect(EC2JSON.pretty(f) == Self.referencePretty(f)) }
    }
}
