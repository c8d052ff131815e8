import Foundation

/// Source text as Unicode scalars, with 1-based line and column lookup by offset.
struct SourceText: Sendable {
    let scalars: [Unicode.Scalar]
    private let lineStarts: [Int]

    init(_ text: String) {
        self.init(scalars: Array(text.unicodeScalars))
    }

    init(scalars: [Unicode.Scalar]) {
        self.scalars = scalars
        var starts = [0]
        for (i, s) in scalars.enumerated() where s == "\n" { starts.append(i + 1) }
        lineStarts = starts
    }

    var count: Int { scalars.count }

    subscript(_ i: Int) -> Unicode.Scalar { scalars[i] }

    func string(_ range: Range<Int>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars[max(0, range.lowerBound)..<min(scalars.count, range.upperBound)])
        return String(s)
    }

    /// 1-based line of `offset`.
    func line(of offset: Int) -> Int {
        var lo = 0
        var hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo + 1
    }

    /// 1-based column of `offset` within its line.
    func column(of offset: Int) -> Int {
        offset - lineStarts[line(of: offset) - 1] + 1
    }

    /// Offset of the first scalar of 1-based `line` (the end of the text past the last line).
    func start(ofLine line: Int) -> Int {
        line - 1 < lineStarts.count ? lineStarts[line - 1] : scalars.count
    }

    var lineCount: Int { lineStarts.count }

    /// The text with every scalar outside `keep` replaced by a space (newlines kept), so that
    /// offsets, lines and columns of the kept parts stay the same.
    func blanked(keeping keep: [Range<Int>]) -> SourceText {
        var out = [Unicode.Scalar](repeating: " ", count: scalars.count)
        for (i, s) in scalars.enumerated() where s == "\n" { out[i] = "\n" }
        for r in keep {
            for i in r where i >= 0 && i < scalars.count { out[i] = scalars[i] }
        }
        return SourceText(scalars: out)
    }
}

extension Unicode.Scalar {
    var isIdentifierStart: Bool { properties.isAlphabetic || self == "_" }
    var isIdentifierPart: Bool { properties.isAlphabetic || properties.numericType != nil || self == "_" }
    var isBlank: Bool { self == " " || self == "\t" || self == "\r" }
}

/// Scans identifier-ish references in text with a regular pattern, without Foundation regex.
enum References {
    /// Shell references: `$NAME`, `${NAME…}`, `${#NAME}`, `${!NAME}`.
    static func shell(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < s.count {
            guard s[i] == "$", i + 1 < s.count else { i += 1; continue }
            var j = i + 1
            if s[j] == "{" {
                j += 1
                if j < s.count, s[j] == "#" || s[j] == "!" { j += 1 }
            }
            let start = j
            while j < s.count, s[j].isIdentifierPart, s[j].isASCII { j += 1 }
            if j > start, s[start].isIdentifierStart {
                var v = String.UnicodeScalarView()
                v.append(contentsOf: s[start..<j])
                out.append(String(v))
            }
            i = max(j, i + 1)
        }
        return out
    }

    /// Dotted identifiers (`base_url`, `self.session`), plus every dotted prefix of each.
    static func dotted(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < s.count {
            guard s[i].isIdentifierStart, i == 0 || !(s[i - 1].isIdentifierPart || s[i - 1] == ".") else { i += 1; continue }
            var j = i
            var parts: [String] = []
            var partStart = i
            while j < s.count {
                if s[j].isIdentifierPart { j += 1; continue }
                if s[j] == ".", j + 1 < s.count, s[j + 1].isIdentifierStart {
                    parts.append(stringOf(s[partStart..<j]))
                    j += 1
                    partStart = j
                    continue
                }
                break
            }
            parts.append(stringOf(s[partStart..<j]))
            for k in 1...parts.count { out.append(parts[0..<k].joined(separator: ".")) }
            i = j
        }
        return out
    }

    /// PowerShell references: `$name`, `${name}`, `$script:name`, `$env:NAME`, splats `@name`.
    static func powershell(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < s.count {
            guard s[i] == "$" || s[i] == "@", i + 1 < s.count else { i += 1; continue }
            var j = i + 1
            let braced = s[j] == "{"
            if braced { j += 1 }
            let start = j
            while j < s.count, s[j].isIdentifierPart || s[j] == ":" || (braced && s[j] == "-") { j += 1 }
            if j > start {
                var name = stringOf(s[start..<j])
                if name.hasSuffix(":") { name.removeLast() }
                for scope in ["script:", "global:", "local:", "private:"] where name.lowercased().hasPrefix(scope) {
                    name = String(name.dropFirst(scope.count))
                }
                if !name.isEmpty { out.append(name) }
            }
            i = max(j, i + 1)
        }
        return out
    }

    static func stringOf(_ s: ArraySlice<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }
}
