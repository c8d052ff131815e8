import Foundation

/// Finds metadata requests in YAML: cloud-init user-data (`#cloud-config`: `runcmd`, `bootcmd`,
/// `write_files` content), Ansible (`uri`/`get_url` tasks, `shell`/`command` tasks), CI files
/// (`run:`, `script:`) and any block scalar that is a script (`#!` first line).
///
/// A line-oriented reader rather than a YAML parser: it follows indentation to know which key a
/// scalar belongs to, and hands embedded scripts to the shell and Python scanners with their
/// original line numbers.
enum YAMLScanner {
    static let shellKeys: Set<String> = [
        "runcmd", "bootcmd", "run", "script", "scripts", "shell", "command", "cmd", "raw", "before_script",
        "after_script", "commands", "entrypoint", "args", "ansible.builtin.shell", "ansible.builtin.command",
        "ansible.builtin.raw", "ansible.legacy.shell", "ansible.legacy.command",
    ]
    static let moduleKinds: [String: String] = [
        "uri": "ansible-uri", "ansible.builtin.uri": "ansible-uri", "ansible.legacy.uri": "ansible-uri",
        "get_url": "ansible-get_url", "ansible.builtin.get_url": "ansible-get_url",
        "win_uri": "ansible-win_uri", "ansible.windows.win_uri": "ansible-win_uri",
        "win_get_url": "ansible-win_get_url", "ansible.windows.win_get_url": "ansible-win_get_url",
    ]

    struct Line {
        var number: Int
        var start: Int
        var text: String
        /// Text with a trailing comment removed.
        var code: String
        var indent: Int
        var isListItem: Bool
        /// Indent of the content after `- ` (equal to `indent` when not a list item).
        var contentIndent: Int
        var key: String?
        var value: String
        var isBlank: Bool { code.trimmed().isEmpty }
    }

    static func scan(_ source: SourceText) -> [DetectedRequest] {
        let lines = parse(source)
        var shellLines = [String](repeating: "", count: source.lineCount)
        var pythonRanges: [Range<Int>] = []
        var nested: [(Range<Int>, SourceLanguage)] = []
        var moduleFound: [DetectedRequest] = []
        var vars: [String: String] = [:]
        for l in lines {
            if let k = l.key, !l.value.isEmpty, !l.value.hasPrefix("|"), !l.value.hasPrefix(">") { vars[k] = unquote(l.value) }
        }

        // Parent keys by indentation.
        var stack: [(indent: Int, key: String)] = []
        var i = 0
        while i < lines.count {
            let l = lines[i]
            if l.isBlank { i += 1; continue }
            while let top = stack.last, top.indent > l.indent || (top.indent == l.indent && !l.isListItem) {
                stack.removeLast()
            }
            let parent = stack.last?.key
            let value = l.value
            let ownerKey = l.key ?? (l.isListItem ? parent : nil)
            let isShellOwner = ownerKey.map { shellKeys.contains($0) } ?? false || (l.key == nil && l.isListItem && parent.map(shellKeys.contains) == true)

            if value.hasPrefix("|") || value.hasPrefix(">") {
                // Block scalar: the following lines indented deeper than the owner.
                let ownerIndent = l.key != nil ? l.contentIndent : l.indent
                var j = i + 1
                var end = i
                while j < lines.count {
                    let n = lines[j]
                    if n.isBlank { j += 1; continue }
                    let ind = n.text.prefix(while: { $0 == " " }).count
                    if ind <= ownerIndent { break }
                    end = j
                    j += 1
                }
                if end > i {
                    let block = (i + 1)...end
                    let firstLine = lines[block].first(where: { !$0.text.trimmed().isEmpty })?.text.trimmed() ?? ""
                    let language = embeddedLanguage(firstLine: firstLine, key: ownerKey, shellOwner: isShellOwner)
                    let range = lines[i + 1].start..<(end + 1 < lines.count ? lines[end + 1].start : source.count)
                    switch language {
                    case .shell?:
                        let folded = value.hasPrefix(">")
                        for k in block {
                            var t = substitute(lines[k].text, vars: vars)
                            if folded, k < end, !t.trimmed().isEmpty { t += " \\" }
                            shellLines[lines[k].number - 1] = t
                        }
                    case .python?: pythonRanges.append(range)
                    case .some(let other): nested.append((range, other))
                    case nil: break
                    }
                }
                if let k = l.key { stack.append((l.contentIndent, k)) }
                i = end + 1
                continue
            }

            if let k = l.key, let kind = moduleKinds[k] {
                if let r = moduleRequest(lines: lines, at: i, kind: kind, vars: vars) { moduleFound.append(r) }
            }

            if isShellOwner, !value.isEmpty, l.key.map({ !moduleKinds.keys.contains($0) }) ?? true {
                let valueColumn = l.text.range(of: value).map { l.text.distance(from: l.text.startIndex, to: $0.lowerBound) } ?? l.contentIndent
                let script: String
                if value.hasPrefix("[") {
                    let items = flowItems(value)
                    script = items.map(shellQuote).joined(separator: " ")
                } else {
                    script = unquote(value)
                }
                shellLines[l.number - 1] = String(repeating: " ", count: valueColumn) + substitute(script, vars: vars)
            }
            if let k = l.key, value.isEmpty { stack.append((l.contentIndent, k)) }
            i += 1
        }

        var found = moduleFound
        found += ShellScanner.scan(SourceText(shellLines.joined(separator: "\n")))
        for r in pythonRanges { found += PythonScanner.scan(source.blanked(keeping: [r])) }
        for (r, language) in nested {
            let inner = source.blanked(keeping: [r])
            switch language {
            case .cloudInit, .yaml: found += YAMLScanner.scan(inner)
            case .powershell: found += PowerShellScanner.scan(inner)
            default: break
            }
        }
        for k in found.indices { found[k].fix = nil }
        return found.sorted { ($0.line, $0.column ?? 0) < ($1.line, $1.column ?? 0) }
    }

    private static func embeddedLanguage(firstLine: String, key: String?, shellOwner: Bool) -> SourceLanguage? {
        if firstLine.hasPrefix("#!") { return LanguageDetector.interpreterLanguage(shebang: firstLine)?.language }
        if firstLine.hasPrefix("#cloud-config") { return .cloudInit }
        if firstLine.lowercased().hasPrefix("<powershell>") { return .powershell }
        if shellOwner || key == "content" || key == "UserData" || key == "user_data" || key == "userdata" { return .shell }
        return nil
    }

    /// An Ansible `uri`/`get_url` task without the token header.
    private static func moduleRequest(lines: [Line], at index: Int, kind: String, vars: [String: String]) -> DetectedRequest? {
        let l = lines[index]
        // The task: from the enclosing list item to the next line at or above its indentation.
        var first = index
        while first > 0, !(lines[first].isListItem && lines[first].indent < l.contentIndent) { first -= 1 }
        let taskIndent = lines[first].isListItem ? lines[first].indent : l.indent - 1
        var last = index
        var j = index + 1
        while j < lines.count {
            if !lines[j].isBlank {
                if lines[j].indent <= taskIndent { break }
                last = j
            }
            j += 1
        }
        let task = lines[first...last].map(\.code).joined(separator: "\n")
        // The URL: `url:` key or `url=` in the module's inline form.
        var url = ""
        for t in lines[first...last] {
            if t.key == "url" { url = unquote(t.value) }
        }
        if url.isEmpty, let r = l.value.range(of: "url=") {
            url = String(l.value[r.upperBound...].prefix(while: { !$0.isWhitespace })).trimming("\"'")
        }
        let expanded = substitute(url, vars: vars)
        guard MetadataText.mentionsEndpoint(expanded) else { return nil }
        if MetadataText.mentionsTokenPath(expanded) || MetadataText.mentionsTokenHeader(substitute(task, vars: vars)) { return nil }
        let lowerTask = task.lowercased()
        if lowerTask.contains("method: put") || lowerTask.contains("method=put") || lowerTask.contains("method: \"put\"") { return nil }
        let column = l.text.prefix(while: { $0 == " " || $0 == "-" }).count + 1
        return DetectedRequest(line: l.number, column: column, kind: kind, url: expanded, fix: nil)
    }

    /// Replaces Jinja `{{ name }}` with the value of a YAML key of that name, when it names the endpoint.
    static func substitute(_ text: String, vars: [String: String]) -> String {
        guard text.contains("{{") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{"), let close = rest.range(of: "}}", range: open.upperBound..<rest.endIndex) {
            out += rest[rest.startIndex..<open.lowerBound]
            let expr = rest[open.upperBound..<close.lowerBound].trimmed()
            let name = expr.split(separator: "|").first.map { String($0).trimmed() } ?? expr
            if let v = vars[name], MetadataText.mentionsEndpoint(v) || v.contains("{{") {
                out += v.contains("{{") ? v.replacingOccurrences(of: "{{", with: "").replacingOccurrences(of: "}}", with: "") : v
            } else {
                out += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        out += rest
        return out
    }

    static func unquote(_ value: String) -> String {
        let v = value.trimmed()
        if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") {
            var out = ""
            var escape = false
            for c in v.dropFirst().dropLast() {
                if escape {
                    switch c {
                    case "n": out += "\n"
                    case "t": out += "\t"
                    default: out.append(c)
                    }
                    escape = false
                } else if c == "\\" {
                    escape = true
                } else {
                    out.append(c)
                }
            }
            return out
        }
        if v.count >= 2, v.hasPrefix("'"), v.hasSuffix("'") {
            return String(v.dropFirst().dropLast()).replacingOccurrences(of: "''", with: "'")
        }
        return v
    }

    private static func flowItems(_ value: String) -> [String] {
        var v = value.trimmed()
        if v.hasPrefix("[") { v.removeFirst() }
        if v.hasSuffix("]") { v.removeLast() }
        var items: [String] = []
        var current = ""
        var quote: Character?
        for c in v {
            if let q = quote {
                current.append(c)
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
                current.append(c)
            } else if c == "," {
                items.append(unquote(current))
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.trimmed().isEmpty { items.append(unquote(current)) }
        return items
    }

    private static func shellQuote(_ s: String) -> String {
        if s.isEmpty { return "''" }
        if s.unicodeScalars.allSatisfy({ $0.isIdentifierPart || "-_./:=@%+,".unicodeScalars.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func parse(_ source: SourceText) -> [Line] {
        var out: [Line] = []
        var start = 0
        var number = 1
        let s = source.scalars
        while start <= s.count {
            var end = start
            while end < s.count, s[end] != "\n" { end += 1 }
            var text = source.string(start..<end)
            if text.hasSuffix("\r") { text.removeLast() }
            let code = stripComment(text)
            let indent = text.prefix(while: { $0 == " " }).count
            var content = Substring(code.dropFirst(indent))
            var isListItem = false
            var contentIndent = indent
            if content == "-" || content.hasPrefix("- ") {
                isListItem = true
                let after = content.dropFirst().prefix(while: { $0 == " " }).count
                contentIndent = indent + 1 + after
                content = content.dropFirst(1 + after)
            }
            var key: String?
            var value = String(content).trimmed()
            if let (k, v) = splitKey(String(content)) {
                key = k
                value = v
            }
            // A tag before a block scalar or value (`!Sub |`, `!Base64 …`) does not change what follows.
            if value.hasPrefix("!"), let space = value.firstIndex(of: " ") {
                value = String(value[value.index(after: space)...]).trimmed()
            }
            out.append(Line(number: number, start: start, text: text, code: code, indent: indent, isListItem: isListItem, contentIndent: contentIndent, key: key, value: value))
            if end >= s.count { break }
            start = end + 1
            number += 1
        }
        return out
    }

    private static func splitKey(_ content: String) -> (String, String)? {
        guard let first = content.first, first != "\"" && first != "'" && first != "[" && first != "{" else {
            if let first = content.first, first == "\"" || first == "'" {
                // A quoted key: "key": value
                let rest = content.dropFirst()
                if let close = rest.firstIndex(of: first) {
                    let after = rest[rest.index(after: close)...]
                    if after.hasPrefix(":") && (after.count == 1 || after.dropFirst().first == " ") {
                        return (String(rest[rest.startIndex..<close]), String(after.dropFirst()).trimmed())
                    }
                }
            }
            return nil
        }
        var idx = content.startIndex
        while idx < content.endIndex {
            let c = content[idx]
            if c == ":" {
                let next = content.index(after: idx)
                if next == content.endIndex || content[next] == " " || content[next] == "\t" {
                    let key = String(content[content.startIndex..<idx])
                    if key.contains(" ") && !key.hasPrefix("ansible") { return nil }
                    return (key.trimmed(), String(content[next...]).trimmed())
                }
            }
            if c == " " && content[content.startIndex..<idx].contains("=") { return nil }
            idx = content.index(after: idx)
        }
        return nil
    }

    /// The line without a ` #` comment (quotes respected).
    static func stripComment(_ text: String) -> String {
        var quote: Character?
        var prev: Character = " "
        var out = ""
        for c in text {
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                if prev == " " || prev == ":" || prev == "-" || prev == "[" || prev == "," || prev == "=" { quote = c }
            } else if c == "#", prev == " " || prev == "\t" || out.isEmpty {
                break
            }
            out.append(c)
            prev = c
        }
        return out
    }
}
