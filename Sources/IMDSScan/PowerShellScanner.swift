import Foundation

/// Finds metadata requests without a token in PowerShell: `Invoke-RestMethod`, `Invoke-WebRequest`
/// (and their aliases `irm`, `iwr`, and `curl`/`wget` in Windows PowerShell), `curl.exe`/`wget.exe`,
/// and `System.Net.WebClient` downloads. `-Headers @{"X-aws-ec2-metadata-token" = …}` (inline, in a
/// variable, or in a splatted hashtable) means IMDSv2.
enum PowerShellScanner {
    static let cmdlets: [String: String] = [
        "invoke-restmethod": "Invoke-RestMethod", "irm": "Invoke-RestMethod",
        "invoke-webrequest": "Invoke-WebRequest", "iwr": "Invoke-WebRequest", "curl": "Invoke-WebRequest",
        "wget": "Invoke-WebRequest", "curl.exe": "curl", "wget.exe": "wget",
    ]
    static let dotNetMethods: [String: String] = [
        "downloadstring": "WebClient", "downloaddata": "WebClient", "downloadfile": "WebClient", "openread": "WebClient",
        "getstringasync": "HttpClient", "getasync": "HttpClient", "create": "WebRequest",
    ]

    struct Statement {
        var start: Int
        var text: String
    }

    static func scan(_ source: SourceText) -> [DetectedRequest] {
        let statements = split(source)
        var table = VariableTable(caseInsensitive: true, references: References.powershell)

        // Pass 1: assignments and header mutations.
        for st in statements {
            let t = st.text.trimmingLeadingSpaces()
            guard let first = t.unicodeScalars.first, first == "$" || first == "[" else { continue }
            let s = Array(t.unicodeScalars)
            var i = 0
            if s[0] == "[" { while i < s.count, s[i] != "]" { i += 1 }; i += 1 }
            guard i < s.count, s[i] == "$" else { continue }
            var j = i + 1
            if j < s.count, s[j] == "{" { j += 1 }
            let nameStart = j
            while j < s.count, s[j].isIdentifierPart || s[j] == ":" { j += 1 }
            var name = References.stringOf(s[nameStart..<j])
            for scope in ["script:", "global:", "local:", "private:"] where name.lowercased().hasPrefix(scope) {
                name = String(name.dropFirst(scope.count))
            }
            if j < s.count, s[j] == "}" { j += 1 }
            var k = j
            while k < s.count, s[k] == " " || s[k] == "\t" { k += 1 }
            if k < s.count, s[k] == "=" || (k + 1 < s.count && s[k + 1] == "=" && "+-".unicodeScalars.contains(s[k])) {
                if k + 1 < s.count, s[k] == "=", s[k + 1] == "=" { continue }
                let valueStart = s[k] == "=" ? k + 1 : k + 2
                let value = References.stringOf(s[min(valueStart, s.count)...])
                table.assign(name, value: value, line: 0, isRequestResult: containsRequest(value))
            } else if k < s.count, s[k] == "." || s[k] == "[" {
                table.mutation(of: name, text: t)
            }
        }
        table.resolve()

        // Pass 2: requests.
        var found: [DetectedRequest] = []
        for st in statements {
            let s = Array(st.text.unicodeScalars)
            let lower = Array(st.text.lowercased().unicodeScalars)
            var i = 0
            while i < s.count {
                if s[i] == "\"" || s[i] == "'" { i = skipString(s, i); continue }
                guard isWordStart(s, i) else { i += 1; continue }
                var j = i
                while j < s.count, s[j].isIdentifierPart || s[j] == "-" || s[j] == "." { j += 1 }
                let word = References.stringOf(lower[i..<j])
                var kind: String?
                var args = ""
                var receiver: [String] = []
                if let k = cmdlets[word], i == 0 || !(s[i - 1] == "." || s[i - 1] == "$") {
                    kind = k
                    args = References.stringOf(s[j...])
                } else if s[i] != "$", let dot = word.lastIndex(of: "."), let k = dotNetMethods[String(word[word.index(after: dot)...])], j < s.count, s[j] == "(" {
                    kind = k
                    args = References.stringOf(s[j...])
                    if i > 0, s[i - 1] == "$" { receiver = [String(word[word.startIndex..<dot])] }
                } else if word.hasPrefix("."), let k = dotNetMethods[String(word.dropFirst())], j < s.count, s[j] == "(" {
                    // `(New-Object Net.WebClient).DownloadString(…)`
                    kind = k
                    args = References.stringOf(s[0..<i]) + References.stringOf(s[j...])
                }
                if let kind {
                    let facts = table.facts(of: args, extraNames: receiver)
                    let isPut = args.lowercased().contains("-method put") || args.lowercased().contains("-method \"put\"") || args.lowercased().contains("-method 'put'")
                    if facts.endpoint, !facts.token, !facts.tokenPath, !isPut {
                        let offset = st.start + i
                        found.append(DetectedRequest(line: source.line(of: offset), column: source.column(of: offset), kind: kind, url: url(args, receiver: receiver, table: table), fix: nil))
                    }
                }
                i = max(j, i + 1)
            }
        }
        return found
    }

    private static func isWordStart(_ s: [Unicode.Scalar], _ i: Int) -> Bool {
        guard s[i].isIdentifierStart || s[i] == "." else { return false }
        if i == 0 { return true }
        let p = s[i - 1]
        return !(p.isIdentifierPart || p == "-")
    }

    private static func containsRequest(_ value: String) -> Bool {
        let lower = value.lowercased()
        for c in cmdlets.keys where ShellScanner.containsWord(c, in: lower) { return true }
        for m in dotNetMethods.keys where m != "create" && lower.contains("." + m + "(") { return true }
        return false
    }

    private static func url(_ args: String, receiver: [String], table: VariableTable) -> String {
        let words = args.split(whereSeparator: { $0 == " " || $0 == "(" || $0 == ")" }).map(String.init)
        let candidates = PythonScanner.literals(args) + words
        let direct = candidates.first { c in
            MetadataText.mentionsEndpoint(c) || References.powershell(c).contains(where: table.isEndpoint)
        }
        guard var url = direct ?? (References.powershell(args) + receiver).compactMap({ table.value(of: $0) }).first else { return "" }
        url = (PythonScanner.literals(url).first ?? url).trimming("\"'")
        // Substitute the variables that hold the endpoint: "$imds/latest/user-data" → http://169.254.169.254/latest/user-data
        for name in References.powershell(url) where table.isEndpoint(name) {
            guard let v = table.value(of: name) else { continue }
            let value = (PythonScanner.literals(v).first ?? v.trimmed()).trimming("\"'")
            url = url.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(of: "$\(name)", with: value)
        }
        return url
    }

    static func skipString(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let q = s[i]
        var j = i + 1
        while j < s.count {
            if s[j] == "`" { j += 2; continue }
            if s[j] == q {
                if j + 1 < s.count, s[j + 1] == q { j += 2; continue }
                return j + 1
            }
            j += 1
        }
        return s.count
    }

    /// Statements: newline or `;` ends one unless inside `( )`, `@( )`, `@{ }` or a string, or the line
    /// ends with a backtick or `|`. Script blocks `{ }` also end statements, so the body of a function
    /// or an `if` is scanned statement by statement. Comments (`#…`, `<#…#>`) are blanked.
    static func split(_ source: SourceText) -> [Statement] {
        var code = source.scalars
        let s = source.scalars
        var out: [Statement] = []
        var stack: [Unicode.Scalar] = []
        var start = 0
        var i = 0
        func close(_ end: Int) {
            if end > start {
                let text = References.stringOf(code[start..<end])
                if !text.allSatisfy({ $0.isWhitespace }) { out.append(Statement(start: start, text: text)) }
            }
            start = end + 1
        }
        func parenDepth() -> Int { stack.filter { $0 != "{" }.count }
        while i < s.count {
            let c = s[i]
            if c == "<", i + 1 < s.count, s[i + 1] == "#" {
                var j = i
                while j + 1 < s.count, !(s[j] == "#" && s[j + 1] == ">") {
                    if s[j] != "\n" { code[j] = " " }
                    j += 1
                }
                code[j] = " "
                if j + 1 < s.count { code[j + 1] = " " }
                i = j + 2
                continue
            }
            if c == "#" {
                while i < s.count, s[i] != "\n" { code[i] = " "; i += 1 }
                continue
            }
            if c == "@", i + 1 < s.count, s[i + 1] == "\"" || s[i + 1] == "'", i + 2 < s.count, s[i + 2] == "\n" || s[i + 2] == "\r" {
                let q = s[i + 1]
                var j = i + 2
                while j + 1 < s.count, !(s[j] == "\n" && s[j + 1] == q && j + 2 < s.count && s[j + 2] == "@") { j += 1 }
                i = min(s.count, j + 3)
                continue
            }
            if c == "\"" || c == "'" { i = skipString(s, i); continue }
            if c == "`", i + 1 < s.count, s[i + 1] == "\n" || s[i + 1] == "\r" {
                code[i] = " "
                i += 2
                continue
            }
            switch c {
            case "(", "[":
                stack.append(c)
            case "{":
                if i > 0, s[i - 1] == "@" { stack.append("h") } else {
                    close(i)
                    stack.append("{")
                }
            case ")", "]":
                if let last = stack.last, last != "{" { stack.removeLast() }
            case "}":
                if let last = stack.last {
                    stack.removeLast()
                    if last == "{" { close(i) }
                } else {
                    close(i)
                }
            case "\n", ";":
                if parenDepth() == 0 {
                    // A trailing pipe continues the pipeline on the next line.
                    var k = i - 1
                    while k >= start, s[k] == " " || s[k] == "\t" || s[k] == "\r" { k -= 1 }
                    if !(c == "\n" && k >= start && s[k] == "|") { close(i) }
                }
            default: break
            }
            i += 1
        }
        close(s.count)
        return out
    }
}
