import Foundation

/// Finds metadata requests without a token in Python: `requests`, `httpx`, `urllib.request.urlopen`,
/// `urllib3`, `http.client`, `aiohttp`, and old boto's `boto.utils.get_instance_metadata` family
/// (always IMDSv1). botocore/boto3 calls are not requests of the script's own: the SDKs use IMDSv2.
enum PythonScanner {
    struct Statement {
        var range: Range<Int>
        var text: String
    }

    static let requestMethods: Set<String> = [
        "get", "post", "put", "head", "delete", "patch", "request", "urlopen", "open", "putrequest", "stream",
        "fetch", "request_encode_url", "urlretrieve",
    ]
    static let headerMutators: Set<String> = ["add_header", "putheader", "update", "setdefault", "add", "append", "Add"]
    static let botoFunctions: Set<String> = ["get_instance_metadata", "get_instance_identity", "get_instance_userdata"]
    static let clientRoots: [String: String] = [
        "requests": "requests", "httpx": "httpx", "urllib3": "urllib3", "aiohttp": "aiohttp",
        "http.client": "http.client", "httplib": "http.client", "urllib.request": "urllib", "urllib2": "urllib",
    ]
    static let clientConstructors: [(String, String)] = [
        ("HTTPConnection", "http.client"), ("HTTPSConnection", "http.client"), ("PoolManager", "urllib3"),
        ("connection_from_url", "urllib3"), ("HTTPConnectionPool", "urllib3"), ("ClientSession", "aiohttp"),
        ("httpx", "httpx"), ("requests", "requests"), ("Session", "requests"), ("build_opener", "urllib"),
        ("urllib3", "urllib3"),
    ]

    /// Requests without a token in `source`, in source order.
    static func scan(_ source: SourceText) -> [DetectedRequest] {
        let statements = split(source)
        let fileText = source.string(0..<source.count)
        let definesBotoNames = botoFunctions.filter { fileText.contains("def \($0)") }
        let mentionsBoto = ShellScanner.containsWord("boto", in: fileText) || fileText.contains("boto.utils")

        struct Call {
            var name: String
            var receiver: String
            var receiverText: String
            var args: String
            var offset: Int
        }

        func calls(in st: Statement) -> [Call] {
            let s = Array(st.text.unicodeScalars)
            var out: [Call] = []
            var i = 0
            while i < s.count {
                if s[i] == "\"" || s[i] == "'" {
                    i = skipString(s, i)
                    continue
                }
                guard s[i].isIdentifierStart, i == 0 || !s[i - 1].isIdentifierPart else { i += 1; continue }
                let start = i
                var j = i
                while j < s.count, s[j].isIdentifierPart || (s[j] == "." && j + 1 < s.count && s[j + 1].isIdentifierStart) { j += 1 }
                let name = References.stringOf(s[start..<j])
                var k = j
                while k < s.count, s[k] == " " { k += 1 }
                if k < s.count, s[k] == "(" {
                    let close = matchParen(s, k)
                    let args = References.stringOf(s[(k + 1)..<max(k + 1, close)])
                    let chained = start > 0 && s[start - 1] == "."
                    var receiver = ""
                    if let dot = name.lastIndex(of: ".") { receiver = String(name[name.startIndex..<dot]) }
                    // For `requests.Session().get(…)` the receiver is the expression before the dot (bounded).
                    let receiverText = chained ? References.stringOf(s[max(0, start - 240)..<start]) : receiver
                    var b = start - 1
                    while b >= 0, s[b] == " " || s[b] == "\t" { b -= 1 }
                    let keyword = References.stringOf(s[max(0, b - 4)...max(0, b)])
                    let def = b >= 2 && (keyword.hasSuffix("def") || keyword.hasSuffix("class"))
                    if !def {
                        out.append(Call(name: name, receiver: receiver, receiverText: receiverText, args: args, offset: st.range.lowerBound + start))
                    }
                    i = j
                    continue
                }
                i = j
            }
            return out
        }

        func lastComponent(_ name: String) -> String {
            name.split(separator: ".").last.map(String.init) ?? name
        }

        var table = VariableTable(references: References.dotted)
        var clientKinds: [String: String] = [:]

        func clientKind(receiver: String, receiverText: String) -> String? {
            if let k = clientRoots[receiver] { return k }
            if let root = receiver.split(separator: ".").first.map(String.init), let k = clientRoots[root] { return k }
            let candidates = [receiver] + References.dotted(receiver)
            for c in candidates {
                if let k = clientKinds[c] { return k }
            }
            if receiverText != receiver {
                for (ctor, kind) in clientConstructors where receiverText.contains(ctor) { return kind }
            }
            if table.isEndpoint(receiver) { return "python-http" }
            return nil
        }

        func isRequestCall(_ c: Call) -> Bool {
            let last = lastComponent(c.name)
            if last == "urlopen" || last == "urlretrieve" { return true }
            if botoFunctions.contains(last), mentionsBoto, !definesBotoNames.contains(last) { return true }
            return requestMethods.contains(last) && !c.receiverText.isEmpty && clientKind(receiver: c.receiver, receiverText: c.receiverText) != nil
        }

        // Pass 1: variables.
        for st in statements {
            let stCalls = calls(in: st)
            let result = stCalls.contains(where: isRequestCall)
            for (names, value) in assignments(in: st.text) {
                for n in names {
                    table.assign(n, value: value, line: 0, isRequestResult: result)
                    for (ctor, kind) in clientConstructors where value.contains(ctor + "(") || value.hasPrefix(ctor + ".") {
                        clientKinds[n] = kind
                        break
                    }
                }
            }
            if let lead = leadingMutated(st.text) {
                for n in References.dotted(lead) { table.mutation(of: n, text: st.text) }
            }
        }
        table.resolve()

        // Pass 2: requests.
        var found: [DetectedRequest] = []
        for st in statements {
            for c in calls(in: st) where isRequestCall(c) {
                let last = lastComponent(c.name)
                let offset = c.offset
                if botoFunctions.contains(last), mentionsBoto, !definesBotoNames.contains(last) {
                    let path = last == "get_instance_userdata" ? "user-data" : last == "get_instance_identity" ? "dynamic/instance-identity/" : "meta-data/"
                    found.append(DetectedRequest(line: source.line(of: offset), column: source.column(of: offset), kind: "boto", url: "http://169.254.169.254/latest/\(path)", fix: nil))
                    continue
                }
                let extra = c.receiver.isEmpty ? [] : [c.receiver]
                let facts = table.facts(of: c.args + " " + c.receiverText, extraNames: extra)
                guard facts.endpoint, !facts.token, !facts.tokenPath else { continue }
                let upperArgs = c.args.uppercased()
                if upperArgs.contains("\"PUT\"") || upperArgs.contains("'PUT'") { continue }
                let kind: String
                if last == "urlopen" || last == "urlretrieve" {
                    kind = "urllib"
                } else {
                    kind = clientKind(receiver: c.receiver, receiverText: c.receiverText) ?? "python-http"
                }
                found.append(DetectedRequest(line: source.line(of: offset), column: source.column(of: offset), kind: kind, url: url(args: c.args, receiver: c.receiver, table: table), fix: nil))
            }
        }
        return found
    }

    /// A best-effort URL for the report: the first string literal naming the endpoint, directly or
    /// through a variable.
    private static func url(args: String, receiver: String, table: VariableTable) -> String {
        var pieces: [String] = [args]
        for name in References.dotted(args) + [receiver] {
            if let v = table.value(of: name) { pieces.append(v) }
        }
        for p in pieces {
            for lit in literals(p) where MetadataText.mentionsEndpoint(lit) {
                if lit.contains("/") || lit.contains("{") { return lit }
                // A bare host (http.client): add the path literal from the call.
                if let path = literals(args).first(where: { $0.hasPrefix("/") }) { return "http://\(lit)\(path)" }
                return "http://\(lit)/"
            }
        }
        return literals(args).first(where: { $0.contains("latest") || $0.contains("meta-data") }) ?? ""
    }

    static func literals(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        while i < s.count {
            if s[i] == "\"" || s[i] == "'" {
                let end = skipString(s, i)
                let q = s[i]
                var a = i + 1
                var b = end - 1
                if i + 2 < s.count, s[i + 1] == q, s[i + 2] == q { a = i + 3; b = end - 3 }
                if a <= b, b <= s.count { out.append(References.stringOf(s[a..<b])) }
                i = end
                continue
            }
            i += 1
        }
        return out
    }

    /// `(names, value)` for `a = …`, `a: T = …`, `a, b = …`, `a += …`, `with X as a`, `for a in X`,
    /// and parameters with defaults in `def f(a=…)`.
    static func assignments(in text: String) -> [([String], String)] {
        let t = text.trimmingLeadingSpaces()
        var out: [([String], String)] = []
        if t.hasPrefix("def ") || t.hasPrefix("async def ") {
            if let open = t.firstIndex(of: "(") {
                let s = Array(t[t.index(after: open)...].unicodeScalars)
                for part in splitTopLevel(s, separator: ",") {
                    if let eq = part.firstIndex(of: "=") {
                        var name = part[part.startIndex..<eq].trimmed()
                        if let colon = name.firstIndex(of: ":") { name = String(name[name.startIndex..<colon]).trimmed() }
                        out.append(([name], String(part[part.index(after: eq)...])))
                    }
                }
            }
            return out
        }
        if t.hasPrefix("with ") || t.hasPrefix("async with ") {
            let body = t.hasPrefix("with ") ? String(t.dropFirst(5)) : String(t.dropFirst(11))
            for part in splitTopLevel(Array(body.unicodeScalars), separator: ",") {
                if let r = part.range(of: " as ") {
                    let name = part[r.upperBound...].trimmed().trimming(":")
                    out.append(([name], String(part[part.startIndex..<r.lowerBound])))
                }
            }
            return out
        }
        if t.hasPrefix("for "), let r = t.range(of: " in ") {
            let names = t[t.index(t.startIndex, offsetBy: 4)..<r.lowerBound].split(separator: ",").map { String($0).trimmed() }
            out.append((names, String(t[r.upperBound...])))
            return out
        }
        // Top-level `=` that is not part of a comparison.
        let s = Array(t.unicodeScalars)
        var depth = 0
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "\"" || c == "'" { i = skipString(s, i); continue }
            if c == "(" || c == "[" || c == "{" { depth += 1 }
            if c == ")" || c == "]" || c == "}" { depth -= 1 }
            if c == "=", depth == 0 {
                let prev: Unicode.Scalar = i > 0 ? s[i - 1] : " "
                let next: Unicode.Scalar = i + 1 < s.count ? s[i + 1] : " "
                if next == "=" { i += 2; continue }
                if prev == "=" || prev == "!" || prev == "<" || prev == ">" { i += 1; continue }
                var lhs = References.stringOf(s[0..<i])
                if "+-*/%|&:".unicodeScalars.contains(prev) { lhs = String(lhs.dropLast()) }
                if let colon = lhs.firstIndex(of: ":") { lhs = String(lhs[lhs.startIndex..<colon]) }
                let value = References.stringOf(s[(i + 1)...])
                let names = lhs.split(separator: ",").map { String($0).trimmed().trimming("()") }
                    .filter { n in !n.isEmpty && !n.contains("[") && n.unicodeScalars.allSatisfy { $0.isIdentifierPart || $0 == "." } }
                if !names.isEmpty { out.append((names, value)) }
                return out
            }
            i += 1
        }
        return out
    }

    /// The dotted name a statement starts by mutating: `req.add_header(…)`, `s.headers["…"] = …`.
    static func leadingMutated(_ text: String) -> String? {
        let s = Array(text.trimmingLeadingSpaces().unicodeScalars)
        var j = 0
        while j < s.count, s[j].isIdentifierPart || s[j] == "." { j += 1 }
        guard j > 0, j < s.count, s[j] == "(" || s[j] == "[" || s[j] == " " || s[j] == "=" else { return nil }
        var name = References.stringOf(s[0..<j])
        if s[j] == "(" {
            guard let dot = name.lastIndex(of: "."), headerMutators.contains(String(name[name.index(after: dot)...])) else { return nil }
            name = String(name[name.startIndex..<dot])
        }
        return name.isEmpty ? nil : name
    }

    static func splitTopLevel(_ s: [Unicode.Scalar], separator: Unicode.Scalar) -> [String] {
        var parts: [String] = []
        var depth = 0
        var start = 0
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "\"" || c == "'" { i = skipString(s, i); continue }
            if c == "(" || c == "[" || c == "{" { depth += 1 }
            if c == ")" || c == "]" || c == "}" {
                depth -= 1
                if depth < 0 { parts.append(References.stringOf(s[start..<i])); return parts }
            }
            if c == separator, depth == 0 {
                parts.append(References.stringOf(s[start..<i]))
                start = i + 1
            }
            i += 1
        }
        parts.append(References.stringOf(s[start..<s.count]))
        return parts
    }

    /// Index just past the string literal starting at `i` (single, double or triple quoted).
    static func skipString(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let q = s[i]
        if i + 2 < s.count, s[i + 1] == q, s[i + 2] == q {
            var j = i + 3
            while j + 2 < s.count {
                if s[j] == "\\" { j += 2; continue }
                if s[j] == q, s[j + 1] == q, s[j + 2] == q { return j + 3 }
                j += 1
            }
            return s.count
        }
        var j = i + 1
        while j < s.count {
            if s[j] == "\\" { j += 2; continue }
            if s[j] == q { return j + 1 }
            if s[j] == "\n" { return j }
            j += 1
        }
        return s.count
    }

    static func matchParen(_ s: [Unicode.Scalar], _ open: Int) -> Int {
        var depth = 0
        var i = open
        while i < s.count {
            let c = s[i]
            if c == "\"" || c == "'" { i = skipString(s, i); continue }
            if c == "(" || c == "[" || c == "{" { depth += 1 }
            if c == ")" || c == "]" || c == "}" {
                depth -= 1
                if depth == 0 { return i }
            }
            i += 1
        }
        return s.count
    }

    /// Logical lines: bracket continuation, `\` continuation, triple-quoted strings, comments blanked.
    /// The statement text keeps every scalar of its range (comments as spaces), so offsets map back.
    static func split(_ source: SourceText) -> [Statement] {
        let s = source.scalars
        var code = s
        var out: [Statement] = []
        var depth = 0
        var start = 0
        var i = 0
        func close(_ end: Int) {
            if end > start {
                let text = References.stringOf(code[start..<end])
                if !text.allSatisfy({ $0.isWhitespace }) { out.append(Statement(range: start..<end, text: text)) }
            }
            start = end + 1
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case "#":
                while i < s.count, s[i] != "\n" { code[i] = " "; i += 1 }
                continue
            case "\"", "'":
                i = skipString(s, i)
                continue
            case "(", "[", "{": depth += 1
            case ")", "]", "}": depth = max(0, depth - 1)
            case "\\" where i + 1 < s.count && s[i + 1] == "\n":
                code[i] = " "
                i += 2
                continue
            case "\n", ";":
                if depth == 0 { close(i) }
            default: break
            }
            i += 1
        }
        close(s.count)
        return out
    }
}

extension String {
    func trimmed() -> String {
        String(unicodeScalars.drop(while: { $0.isBlank || $0 == "\n" }).reversed().drop(while: { $0.isBlank || $0 == "\n" }).reversed().map(Character.init))
    }

    func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }

    func trimmingLeadingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }))
    }

    func trimmingSuffixSpaces() -> String {
        var s = Substring(self)
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func trimmed() -> String { String(self).trimmed() }
}
