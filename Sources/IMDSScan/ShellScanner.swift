import Foundation

/// A word of a shell command as lexed from source.
struct ShellWord: Sendable {
    /// As written, quotes kept; backslash-newline continuations removed.
    var raw: String
    /// With quotes removed and backslash escapes resolved (expansions left as written).
    var value: String
    /// Offset of the first scalar, and just past the last.
    var start: Int
    var end: Int
}

/// One simple command (words between operators such as `;`, `&&`, `|`, newline).
struct ShellCommand: Sendable {
    var words: [ShellWord]
    /// Whether `--fix` may insert a header after the command word (not in a heredoc, not in a
    /// back-quoted substitution inside double quotes).
    var fixable: Bool
    var end: Int
}

/// Finds `curl`/`wget` requests to the metadata service in shell source.
///
/// The lexer understands quoting, `\` line continuations, comments, `$(…)` and back-quoted command
/// substitutions (scanned as commands of their own), heredocs (bodies scanned as shell, or as Python
/// when fed to `python`), array assignments, and `sh -c`/`bash -c`/`eval`/`python -c` strings.
struct ShellScanner {
    let source: SourceText
    private(set) var commands: [ShellCommand] = []
    private var pythonBodies: [Range<Int>] = []
    var variables = VariableTable(references: References.shell)
    /// Variables assigned from a token PUT (`TOKEN=$(curl -X PUT …/api/token …)`) and where.
    private(set) var tokenAssignments: [(name: String, line: Int)] = []
    /// End offsets of assignments, by name, so the fixer can place the token fetch after them.
    private(set) var assignmentEnds: [String: [Int]] = [:]
    /// Names used as `$NAME` anywhere.
    private(set) var referencedNames: Set<String> = []

    init(_ source: SourceText) {
        self.source = source
        lex(0..<source.count, fixable: true)
    }

    /// Requests without a token, in source order.
    static func scan(_ source: SourceText, inherited: VariableTable? = nil) -> [DetectedRequest] {
        var scanner = ShellScanner(source)
        return scanner.requests(inherited: inherited)
    }

    // MARK: - Lexing

    private mutating func lex(_ range: Range<Int>, fixable: Bool) {
        let s = source
        let end = range.upperBound
        var i = range.lowerBound
        var words: [ShellWord] = []
        var raw = String.UnicodeScalarView()
        var value = String.UnicodeScalarView()
        var wordStart: Int?
        var wordEnd = 0
        struct Pending { var delimiter: String; var stripTabs: Bool; var program: String }
        var pending: [Pending] = []
        var substitutions: [(Range<Int>, Bool)] = []

        func appendRaw(_ r: Range<Int>, at pos: Int) {
            if wordStart == nil { wordStart = pos }
            raw.append(contentsOf: s.scalars[r])
            wordEnd = r.upperBound
        }
        func endWord() {
            if let ws = wordStart {
                words.append(ShellWord(raw: String(raw), value: String(value), start: ws, end: wordEnd))
            }
            wordStart = nil
            raw = String.UnicodeScalarView()
            value = String.UnicodeScalarView()
        }
        func endCommand(at pos: Int) {
            endWord()
            if !words.isEmpty { commands.append(ShellCommand(words: words, fixable: fixable, end: pos)) }
            words = []
        }
        func program(of ws: [ShellWord]) -> String {
            for w in ws {
                if Self.isAssignment(w.raw) || Self.prefixWords.contains(w.value) || w.value.hasPrefix("-") { continue }
                return Self.basename(w.value)
            }
            return ""
        }

        while i < end {
            let c = s[i]
            switch c {
            case " ", "\t", "\r":
                endWord()
                i += 1
            case "\n":
                endCommand(at: i)
                i += 1
                if !pending.isEmpty {
                    i = consumeHeredocs(pending.map { ($0.delimiter, $0.stripTabs, $0.program) }, from: i, end: end)
                    pending = []
                }
            case "\\":
                if i + 1 < end, s[i + 1] == "\n" {
                    i += 2
                } else if i + 1 < end {
                    appendRaw(i..<(i + 2), at: i)
                    value.append(s[i + 1])
                    i += 2
                } else {
                    appendRaw(i..<(i + 1), at: i)
                    i += 1
                }
            case "'":
                let close = findScalar("'", from: i + 1, end: end) ?? (end - 1)
                appendRaw(i..<min(end, close + 1), at: i)
                value.append(contentsOf: s.scalars[(i + 1)..<max(i + 1, close)])
                i = close + 1
            case "\"":
                var j = i + 1
                while j < end, s[j] != "\"" {
                    if s[j] == "\\" {
                        if j + 1 < end, s[j + 1] != "\n" { value.append(s[j + 1]) }
                        j += 2
                        continue
                    }
                    if s[j] == "$", j + 1 < end, s[j + 1] == "(" {
                        let close = matchParen(j + 1, end: end)
                        if j + 2 < end, s[j + 2] != "(" { substitutions.append(((j + 2)..<close, fixable)) }
                        value.append(contentsOf: s.scalars[j..<min(end, close + 1)])
                        j = close + 1
                        continue
                    }
                    if s[j] == "`" {
                        let close = findScalar("`", from: j + 1, end: end) ?? (end - 1)
                        substitutions.append(((j + 1)..<close, false))
                        value.append(contentsOf: s.scalars[j..<min(end, close + 1)])
                        j = close + 1
                        continue
                    }
                    value.append(s[j])
                    j += 1
                }
                appendRaw(i..<min(end, j + 1), at: i)
                i = j + 1
            case "`":
                let close = findScalar("`", from: i + 1, end: end) ?? (end - 1)
                substitutions.append(((i + 1)..<close, fixable))
                appendRaw(i..<min(end, close + 1), at: i)
                value.append(contentsOf: s.scalars[i..<min(end, close + 1)])
                i = close + 1
            case "$":
                if i + 1 < end, s[i + 1] == "(" {
                    let close = matchParen(i + 1, end: end)
                    if i + 2 < end, s[i + 2] != "(" { substitutions.append(((i + 2)..<close, fixable)) }
                    appendRaw(i..<min(end, close + 1), at: i)
                    value.append(contentsOf: s.scalars[i..<min(end, close + 1)])
                    i = close + 1
                } else if i + 1 < end, s[i + 1] == "{" {
                    let close = matchBrace(i + 1, end: end)
                    appendRaw(i..<min(end, close + 1), at: i)
                    value.append(contentsOf: s.scalars[i..<min(end, close + 1)])
                    i = close + 1
                } else {
                    appendRaw(i..<(i + 1), at: i)
                    value.append(c)
                    i += 1
                }
            case "#" where wordStart == nil:
                while i < end, s[i] != "\n" { i += 1 }
            case ";", "&", "|", ")":
                endCommand(at: i)
                i += 1
            case "(":
                if wordStart != nil, Self.isAssignment(String(raw)), String(raw).hasSuffix("=") {
                    let close = matchParen(i, end: end)
                    appendRaw(i..<min(end, close + 1), at: i)
                    value.append(contentsOf: s.scalars[i..<min(end, close + 1)])
                    i = close + 1
                } else {
                    endCommand(at: i)
                    i += 1
                }
            case "<" where i + 1 < end && s[i + 1] == "<":
                endWord()
                if i + 2 < end, s[i + 2] == "<" {
                    i += 3
                    continue
                }
                var j = i + 2
                var strip = false
                if j < end, s[j] == "-" { strip = true; j += 1 }
                while j < end, s[j] == " " || s[j] == "\t" { j += 1 }
                var delimiter = String.UnicodeScalarView()
                while j < end, !(s[j] == " " || s[j] == "\t" || s[j] == "\n" || s[j] == ";" || s[j] == "|" || s[j] == "&" || s[j] == ">" || s[j] == ")") {
                    if s[j] != "'" && s[j] != "\"" && s[j] != "\\" { delimiter.append(s[j]) }
                    j += 1
                }
                if !delimiter.isEmpty {
                    pending.append(Pending(delimiter: String(delimiter), stripTabs: strip, program: program(of: words)))
                }
                i = j
            case "<", ">":
                endWord()
                appendRaw(i..<(i + 1), at: i)
                value.append(c)
                if i + 1 < end, s[i + 1] == "&" {
                    appendRaw((i + 1)..<(i + 2), at: i)
                    value.append("&")
                    i += 1
                }
                endWord()
                i += 1
            default:
                appendRaw(i..<(i + 1), at: i)
                value.append(c)
                i += 1
            }
        }
        endCommand(at: end)
        for (r, f) in substitutions where r.lowerBound < r.upperBound {
            lex(r, fixable: f)
        }
    }

    /// Reads heredoc bodies starting at `from`; returns the offset after the last delimiter line.
    private mutating func consumeHeredocs(_ docs: [(String, Bool, String)], from: Int, end: Int) -> Int {
        var i = from
        for (delimiter, strip, program) in docs {
            let bodyStart = i
            var bodyEnd = end
            while i < end {
                var lineEnd = i
                while lineEnd < end, source[lineEnd] != "\n" { lineEnd += 1 }
                var line = source.string(i..<lineEnd)
                if strip { line = String(line.drop(while: { $0 == "\t" })) }
                if line.hasSuffix("\r") { line.removeLast() }
                if line == delimiter {
                    bodyEnd = i
                    i = min(end, lineEnd + 1)
                    break
                }
                i = min(end, lineEnd + 1)
                if lineEnd >= end { bodyEnd = end }
            }
            if bodyStart < bodyEnd {
                if program.hasPrefix("python") {
                    pythonBodies.append(bodyStart..<bodyEnd)
                } else {
                    lex(bodyStart..<bodyEnd, fixable: false)
                }
            }
        }
        return i
    }

    private func findScalar(_ c: Unicode.Scalar, from: Int, end: Int) -> Int? {
        var j = from
        while j < end {
            if source[j] == "\\" && c != "'" { j += 2; continue }
            if source[j] == c { return j }
            j += 1
        }
        return nil
    }

    /// Index of the `)` matching the `(` at `open` (quotes and nesting respected), or `end - 1`.
    private func matchParen(_ open: Int, end: Int) -> Int { matchClosing(open, end: end, opener: "(", closer: ")") }

    /// Index of the `}` matching the `{` at `open`, or `end - 1`.
    private func matchBrace(_ open: Int, end: Int) -> Int { matchClosing(open, end: end, opener: "{", closer: "}") }

    private func matchClosing(_ open: Int, end: Int, opener: Unicode.Scalar, closer: Unicode.Scalar) -> Int {
        var depth = 0
        var j = open
        while j < end {
            let c = source[j]
            switch c {
            case "\\": j += 2; continue
            case "'": j = (findScalar("'", from: j + 1, end: end) ?? end) + 1; continue
            case "\"": j = (findScalar("\"", from: j + 1, end: end) ?? end) + 1; continue
            case opener: depth += 1
            case closer:
                depth -= 1
                if depth == 0 { return j }
            default: break
            }
            j += 1
        }
        return max(open, end - 1)
    }

    // MARK: - Analysis

    static let prefixWords: Set<String> = [
        "{", "}", "then", "do", "else", "elif", "if", "while", "until", "!", "time", "exec", "nohup", "command",
        "builtin", "sudo", "env", "timeout", "xargs", "stdbuf", "nice", "ionice", "unbuffer",
    ]
    static let declarationWords: Set<String> = ["export", "local", "readonly", "declare", "typeset"]
    private static let optionsWithValue: [String: Set<String>] = [
        "sudo": ["-u", "-g", "-h", "-p", "-C", "-U", "-r", "-t", "--user", "--group"],
        "env": ["-u", "-C", "--unset", "--chdir"],
        "timeout": ["-s", "-k", "--signal", "--kill-after"],
        "xargs": ["-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a"],
        "nice": ["-n"],
    ]

    static func isAssignment(_ raw: String) -> Bool {
        guard let eq = raw.firstIndex(of: "=") else { return false }
        var name = raw[raw.startIndex..<eq]
        if name.hasSuffix("+") { name = name.dropLast() }
        if let b = name.firstIndex(of: "["), name.hasSuffix("]") { name = name[name.startIndex..<b] }
        guard let first = name.unicodeScalars.first, first.isIdentifierStart, first.isASCII else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && $0.isIdentifierPart }
    }

    static func basename(_ word: String) -> String {
        var w = word
        if let slash = w.lastIndex(of: "/") { w = String(w[w.index(after: slash)...]) }
        return w
    }

    /// Splits a command into leading assignments and the program with its arguments.
    static func split(_ words: [ShellWord]) -> (assignments: [ShellWord], argv: [ShellWord]) {
        var assignments: [ShellWord] = []
        var i = 0
        while i < words.count {
            let w = words[i]
            if isAssignment(w.raw) {
                assignments.append(w)
                i += 1
                continue
            }
            if prefixWords.contains(w.value) {
                let opts = optionsWithValue[w.value] ?? []
                i += 1
                while i < words.count, words[i].value.hasPrefix("-"), words[i].value.count > 1 {
                    i += opts.contains(words[i].value) ? 2 : 1
                }
                if w.value == "timeout", i < words.count, words[i].value.first?.isNumber == true { i += 1 }
                continue
            }
            break
        }
        return (assignments, Array(words[min(i, words.count)...]))
    }

    private static func isRequestResult(_ value: String) -> Bool {
        guard value.contains("$(") || value.contains("`") else { return false }
        for tool in ["curl", "wget", "python", "Invoke-"] where containsWord(tool, in: value) { return true }
        return false
    }

    static func containsWord(_ word: String, in text: String) -> Bool {
        var search = text.startIndex
        while let r = text.range(of: word, range: search..<text.endIndex) {
            search = r.upperBound
            let beforeOK = r.lowerBound == text.startIndex || !(text[text.index(before: r.lowerBound)].isLetter || text[text.index(before: r.lowerBound)] == "-" || text[text.index(before: r.lowerBound)] == "_")
            let afterOK = r.upperBound == text.endIndex || !(text[r.upperBound].isLetter || text[r.upperBound] == "_" || (text[r.upperBound] == "-" && !word.hasSuffix("-")))
            if beforeOK && afterOK { return true }
        }
        return false
    }

    private mutating func record(assignment w: ShellWord, commandEnd: Int) {
        guard let eq = w.raw.firstIndex(of: "=") else { return }
        var name = String(w.raw[w.raw.startIndex..<eq])
        if name.hasSuffix("+") { name.removeLast() }
        if let b = name.firstIndex(of: "[") { name = String(name[name.startIndex..<b]) }
        let value = String(w.raw[w.raw.index(after: eq)...])
        let result = Self.isRequestResult(value)
        variables.assign(name, value: value, line: source.line(of: w.start), isRequestResult: result)
        assignmentEnds[name, default: []].append(commandEnd)
        if result, MetadataText.mentionsTokenPath(value) {
            tokenAssignments.append((name, source.line(of: w.start)))
        }
    }

    private mutating func collectVariables(inherited: VariableTable?) {
        if let inherited {
            for a in inherited.assignments { variables.assign(a.name, value: a.value, line: 0, isRequestResult: a.isRequestResult) }
        }
        for cmd in commands {
            for w in cmd.words { referencedNames.formUnion(References.shell(w.raw)) }
            let (assigns, argv) = Self.split(cmd.words)
            for a in assigns { record(assignment: a, commandEnd: cmd.end) }
            guard let program = argv.first?.value else { continue }
            if Self.declarationWords.contains(program) {
                for w in argv.dropFirst() where Self.isAssignment(w.raw) { record(assignment: w, commandEnd: cmd.end) }
            } else if program == "for", argv.count >= 3, argv[2].value == "in" {
                let values = argv.dropFirst(3).map(\.raw).joined(separator: " ")
                variables.assign(argv[1].value, value: values, line: source.line(of: argv[1].start), isRequestResult: Self.isRequestResult(values))
                assignmentEnds[argv[1].value, default: []].append(cmd.end)
            }
        }
        variables.resolve()
    }

    /// Expands `$NAME`/`${NAME}` with values this file assigns (three levels), quotes removed.
    func expand(_ raw: String, depth: Int = 0) -> String {
        var out = ""
        let s = Array(raw.unicodeScalars)
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "\"" || c == "'" { i += 1; continue }
            if c == "$", i + 1 < s.count {
                var j = i + 1
                let braced = s[j] == "{"
                if braced { j += 1 }
                let start = j
                while j < s.count, s[j].isASCII, s[j].isIdentifierPart { j += 1 }
                let name = References.stringOf(s[start..<j])
                if braced {
                    while j < s.count, s[j] != "}" { j += 1 }
                    j += 1
                }
                if !name.isEmpty, depth < 3, variables.isEndpoint(name), let v = variables.value(of: name) {
                    out += expand(v, depth: depth + 1)
                } else {
                    out += References.stringOf(s[i..<min(j, s.count)])
                }
                i = max(j, i + 1)
                continue
            }
            out.unicodeScalars.append(c)
            i += 1
        }
        return out
    }

    /// The requests without a token, in source order.
    mutating func requests(inherited: VariableTable? = nil) -> [DetectedRequest] {
        collectVariables(inherited: inherited)
        var found: [DetectedRequest] = []
        for cmd in commands {
            let (_, argv) = Self.split(cmd.words)
            guard let first = argv.first else { continue }
            let program = Self.basename(first.value)
            let line = source.line(of: first.start)
            let column = source.column(of: first.start)
            switch program {
            case "curl", "wget", "curl.exe", "wget.exe":
                if let r = analyse(tool: program.hasPrefix("curl") ? "curl" : "wget", argv: argv, fixable: cmd.fixable) {
                    found.append(r)
                }
            case "sh", "bash", "dash", "ksh", "zsh", "eval", "python", "python2", "python3":
                guard let script = Self.inlineScript(program: program, argv: argv) else { continue }
                let inner = SourceText(script)
                let innerRequests: [DetectedRequest]
                if program.hasPrefix("python") {
                    innerRequests = PythonScanner.scan(inner)
                } else {
                    innerRequests = ShellScanner.scan(inner, inherited: variables)
                }
                for var r in innerRequests {
                    r.line = line
                    r.column = column
                    r.fix = nil
                    found.append(r)
                }
            default:
                continue
            }
        }
        for body in pythonBodies {
            found.append(contentsOf: PythonScanner.scan(source.blanked(keeping: [body])))
        }
        return found.sorted { ($0.line, $0.column ?? 0) < ($1.line, $1.column ?? 0) }
    }

    /// The script given to `sh -c`, `eval` or `python -c`.
    private static func inlineScript(program: String, argv: [ShellWord]) -> String? {
        if program == "eval" { return argv.dropFirst().map(\.value).joined(separator: " ") }
        guard let c = argv.firstIndex(where: { $0.value == "-c" || ($0.value.hasPrefix("-") && !$0.value.hasPrefix("--") && $0.value.hasSuffix("c")) }),
            c + 1 < argv.count
        else { return nil }
        return argv[c + 1].value
    }

    private static let curlOptionsWithValue: Set<String> = [
        "-H", "--header", "-X", "--request", "-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "-o",
        "--output", "-u", "--user", "-A", "--user-agent", "-e", "--referer", "-w", "--write-out", "-m", "--max-time",
        "--connect-timeout", "--retry", "--retry-delay", "--retry-max-time", "-T", "--upload-file", "-b", "--cookie",
        "-c", "--cookie-jar", "-K", "--config", "-x", "--proxy", "--noproxy", "-F", "--form", "--interface",
        "--resolve", "--cacert", "--cert", "--key", "-E", "-r", "--range", "-y", "-Y", "-z",
        // wget
        "-O", "--header", "--method", "-t", "--tries", "-T", "--timeout", "-P", "-a", "-U", "--body-data", "-e",
    ]

    private func analyse(tool: String, argv: [ShellWord], fixable: Bool) -> DetectedRequest? {
        let args = Array(argv.dropFirst())
        let text = args.map(\.raw).joined(separator: " ")
        let facts = variables.facts(of: text)
        guard facts.endpoint else { return nil }
        if facts.token { return nil }
        if facts.tokenPath || isPut(args) { return nil }

        var urlWord: ShellWord?
        var skipNext = false
        for w in args {
            if skipNext { skipNext = false; continue }
            if w.value.hasPrefix("-") {
                if Self.curlOptionsWithValue.contains(w.value) { skipNext = true }
                continue
            }
            if variables.facts(of: w.raw).endpoint {
                urlWord = w
                break
            }
        }
        let first = argv[0]
        let url = urlWord.map { expand($0.raw) } ?? ""
        let site = urlWord.flatMap { w in
            fixable ? ShellFixSite(insertAt: first.end, tool: tool, rawURL: w.raw) : nil
        }
        return DetectedRequest(line: source.line(of: first.start), column: source.column(of: first.start), kind: tool, url: url, fix: site)
    }

    private func isPut(_ args: [ShellWord]) -> Bool {
        for (i, w) in args.enumerated() {
            let v = w.value.uppercased()
            if v == "-XPUT" || v == "--METHOD=PUT" || v == "--REQUEST=PUT" { return true }
            if ["-X", "--REQUEST", "--METHOD"].contains(v), i + 1 < args.count, args[i + 1].value.uppercased() == "PUT" { return true }
        }
        return false
    }
}
