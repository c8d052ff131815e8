/// Wildcard matching for every pattern a user gives imds: EC2 filter values (`*` any run of
/// characters, `?` any one character, `\` escapes the next character) and fault paths (`*` only).
///
/// One matcher, compiled once per pattern (`O(pattern)`), then `O(pattern × text)` per text and never
/// more than `O(text²)`: it keeps only the last `*` seen and retries from there, never recursing, so
/// patterns such as `*?*?*?…!` cannot backtrack exponentially.
public struct Glob: Sendable, Equatable {
    /// Which wildcards a pattern may use.
    public enum Syntax: Sendable {
        /// `*`, `?` and `\` escapes (EC2 `Filter.N.Value.M`).
        case ec2Filter
        /// `*` only; every other character is literal (fault `path` patterns).
        case starOnly
    }

    enum Token: Equatable {
        case star
        case any
        case literal(Unicode.Scalar)
    }

    let tokens: [Token]

    public init(_ pattern: String, syntax: Syntax) {
        var out: [Token] = []
        var it = pattern.unicodeScalars.makeIterator()
        while let c = it.next() {
            switch (c, syntax) {
            case ("*", _):
                if out.last != .star { out.append(.star) }  // `**` is `*`
            case ("?", .ec2Filter):
                out.append(.any)
            case ("\\", .ec2Filter):
                out.append(.literal(it.next() ?? "\\"))  // a trailing `\` is literal
            default:
                out.append(.literal(c))
            }
        }
        tokens = out
    }

    /// Whether `pattern` (in `syntax`) matches the whole of `text`.
    public static func matches(_ pattern: String, _ text: String, syntax: Syntax = .ec2Filter) -> Bool {
        Glob(pattern, syntax: syntax).matches(text)
    }

    /// How many characters a text needs at least to match (every token but `*` takes one).
    private var minimumLength: Int { tokens.count - tokens.count(where: { $0 == .star }) }

    /// Whether the pattern matches the whole of `text`.
    public func matches(_ text: String) -> Bool {
        let t = Array(text.unicodeScalars)
        // A pattern that needs more characters than the text has cannot match; after this check the
        // pattern has at most 2 × |text| + 1 tokens, so the work is O(|text|²) however long it was.
        guard minimumLength <= t.count else { return false }
        var pi = 0, ti = 0
        var star: Int? = nil, mark = 0
        while ti < t.count {
            if pi < tokens.count, tokens[pi] == .star {
                star = pi
                pi += 1
                mark = ti
            } else if pi < tokens.count, Self.step(tokens[pi], t[ti]) {
                pi += 1
                ti += 1
            } else if let st = star {
                pi = st + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < tokens.count, tokens[pi] == .star { pi += 1 }
        return pi == tokens.count
    }

    private static func step(_ token: Token, _ c: Unicode.Scalar) -> Bool {
        switch token {
        case .star: false
        case .any: true
        case .literal(let l): l == c
        }
    }
}
