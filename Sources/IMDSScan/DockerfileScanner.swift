import Foundation

/// Turns a Dockerfile into shell text with the same offsets: `RUN`/`CMD`/`ENTRYPOINT`/`HEALTHCHECK CMD`
/// bodies are kept, `ENV`/`ARG` become shell assignments, everything else is blanked. Exec-form
/// instructions (`RUN ["sh", "-c", "…"]`) and `SHELL ["powershell", …]` are handled separately.
struct DockerfileScanner {
    /// A shell-form `RUN` instruction: where its command starts (after `RUN` and its flags) and ends.
    struct RunInstruction: Sendable {
        var bodyStart: Int
        var end: Int
    }

    let source: SourceText
    private(set) var shellText: SourceText
    private(set) var runs: [RunInstruction] = []
    private var execForms: [(line: Int, column: Int, argv: [String])] = []
    private var powershellRanges: [Range<Int>] = []

    init(_ source: SourceText) {
        self.source = source
        var out = [Unicode.Scalar](repeating: " ", count: source.count)
        for (i, s) in source.scalars.enumerated() where s == "\n" { out[i] = "\n" }
        shellText = SourceText(scalars: out)
        translate(into: &out)
        shellText = SourceText(scalars: out)
    }

    private static let shellInstructions: Set<String> = ["RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK"]

    private mutating func translate(into out: inout [Unicode.Scalar]) {
        let s = source.scalars
        var powershell = false
        var line = 1
        while line <= source.lineCount {
            let start = source.start(ofLine: line)
            var i = start
            while i < s.count, s[i] == " " || s[i] == "\t" { i += 1 }
            guard i < s.count, s[i] != "\n", s[i] != "#" else { line += 1; continue }
            let kwStart = i
            while i < s.count, !(s[i] == " " || s[i] == "\t" || s[i] == "\n") { i += 1 }
            let keyword = source.string(kwStart..<i).uppercased()
            // The instruction's extent: continuation lines (comment lines inside are dropped by Docker).
            var endLine = line
            var heredocs: [String] = []
            var l = line
            while l <= source.lineCount {
                let ls = source.start(ofLine: l)
                let le = l < source.lineCount ? source.start(ofLine: l + 1) - 1 : s.count
                let text = source.string(ls..<le)
                let trimmed = text.trimmed()
                if l > line, trimmed.hasPrefix("#") { l += 1; continue }
                if Self.shellInstructions.contains(keyword) { heredocs += Self.heredocDelimiters(in: text) }
                endLine = l
                if trimmed.hasSuffix("\\") { l += 1; continue }
                break
            }
            // Heredoc bodies follow the instruction's last line.
            if !heredocs.isEmpty {
                var h = endLine + 1
                for d in heredocs {
                    while h <= source.lineCount {
                        let ls = source.start(ofLine: h)
                        let le = h < source.lineCount ? source.start(ofLine: h + 1) - 1 : s.count
                        let body = source.string(ls..<le).trimmed()
                        h += 1
                        if body == d { break }
                    }
                }
                endLine = h - 1
            }
            let end = endLine < source.lineCount ? source.start(ofLine: endLine + 1) - 1 : s.count
            var bodyStart = i
            while bodyStart < end, s[bodyStart] == " " || s[bodyStart] == "\t" { bodyStart += 1 }

            switch keyword {
            case "ENV", "ARG":
                copy(bodyStart..<end, into: &out)
                // Legacy `ENV NAME value`: make it NAME=value (same length).
                var k = bodyStart
                while k < end, s[k] != " " && s[k] != "=" && s[k] != "\n" { k += 1 }
                if keyword == "ENV", k < end, s[k] == " " { out[k] = "=" }
            case "SHELL":
                powershell = source.string(bodyStart..<end).lowercased().contains("powershell") || source.string(bodyStart..<end).lowercased().contains("pwsh")
            case "RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK":
                var b = bodyStart
                if keyword == "HEALTHCHECK" {
                    guard let r = source.string(bodyStart..<end).range(of: "CMD ", options: .caseInsensitive) else { break }
                    b = bodyStart + source.string(bodyStart..<end)[..<r.upperBound].unicodeScalars.count
                }
                // RUN flags: --mount=…, --network=…, --security=…
                while b + 1 < end, s[b] == "-", s[b + 1] == "-" {
                    while b < end, s[b] != " " && s[b] != "\t" { b += 1 }
                    while b < end, s[b] == " " || s[b] == "\t" { b += 1 }
                }
                if b < end, s[b] == "[" {
                    if let argv = Self.jsonArray(source.string(b..<end)) {
                        execForms.append((source.line(of: kwStart), source.column(of: kwStart), argv))
                    }
                    break
                }
                if powershell {
                    powershellRanges.append(b..<end)
                    break
                }
                copy(b..<end, into: &out)
                // Comment lines inside the instruction: Docker drops them; keep the continuation going.
                for cl in (line + 1)...max(line + 1, endLine) where cl <= endLine {
                    let ls = source.start(ofLine: cl)
                    let le = cl < source.lineCount ? source.start(ofLine: cl + 1) - 1 : s.count
                    if source.string(ls..<le).trimmed().hasPrefix("#"), le > ls, heredocs.isEmpty {
                        for k in ls..<le { out[k] = " " }
                        out[le - 1] = "\\"
                    }
                }
                if keyword == "RUN", heredocs.isEmpty { runs.append(RunInstruction(bodyStart: b, end: end)) }
            default:
                break
            }
            line = endLine + 1
        }
    }

    private func copy(_ r: Range<Int>, into out: inout [Unicode.Scalar]) {
        for k in r where k < out.count { out[k] = source.scalars[k] }
    }

    private static func heredocDelimiters(in text: String) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while let r = rest.range(of: "<<") {
            var after = rest[r.upperBound...]
            if after.hasPrefix("<") { rest = after.dropFirst(); continue }
            if after.hasPrefix("-") { after = after.dropFirst() }
            let word = after.prefix(while: { !$0.isWhitespace && $0 != ";" && $0 != "&" && $0 != "|" && $0 != ">" })
            let d = String(word).trimming("\"'")
            if !d.isEmpty, d.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { out.append(d) }
            rest = after[word.endIndex...]
        }
        return out
    }

    /// A JSON array of strings (the exec form), or nil.
    static func jsonArray(_ text: String) -> [String]? {
        guard let data = text.trimmed().data(using: .utf8),
            let array = try? JSONSerialization.jsonObject(with: data) as? [Any]
        else { return nil }
        let strings = array.compactMap { $0 as? String }
        return strings.count == array.count ? strings : nil
    }

    /// Requests without a token; `fix` sites are set for shell-form `RUN` instructions.
    mutating func requests() -> [DetectedRequest] {
        var shell = ShellScanner(shellText)
        var found = shell.requests()
        let runs = self.runs
        for k in found.indices {
            if let site = found[k].fix, !runs.contains(where: { $0.bodyStart <= site.insertAt && site.insertAt <= $0.end }) {
                found[k].fix = nil
            }
        }
        for e in execForms {
            var script = e.argv.map { a in a.contains(" ") ? "'" + a + "'" : a }.joined(separator: " ")
            if e.argv.count >= 3, ["sh", "bash", "/bin/sh", "/bin/bash"].contains(e.argv[0]), e.argv[1] == "-c" { script = e.argv[2] }
            for var r in ShellScanner.scan(SourceText(script), inherited: shell.variables) {
                r.line = e.line
                r.column = e.column
                r.fix = nil
                found.append(r)
            }
        }
        for r in powershellRanges {
            found += PowerShellScanner.scan(source.blanked(keeping: [r]))
        }
        return found.sorted { ($0.line, $0.column ?? 0) < ($1.line, $1.column ?? 0) }
    }
}
