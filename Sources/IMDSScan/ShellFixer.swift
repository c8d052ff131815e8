import Foundation

/// Rewrites shell `curl`/`wget` requests to the metadata service into the IMDSv2 token form.
///
/// One token per script, fetched once: after the `#!` line, leading comments and `set` lines, and
/// after the assignment of any variable the request's base URL uses (so `$MD/instance-id` gets its
/// token from `${MD%%/latest*}/latest/api/token`). Each request gets the header after its command
/// word. A script that already fetches a token before its first v1 request reuses that variable. In
/// a Dockerfile each `RUN` is its own shell, so each `RUN` with a request gets its own token.
/// Running the fixer on its own output changes nothing.
public enum ShellFixer {
    /// The rewritten text and how many requests were changed.
    public struct Result: Sendable, Equatable {
        public var text: String
        public var requestsFixed: Int
    }

    /// The rewritten `text`, or nil when nothing in it can be fixed.
    public static func fix(text: String, language: SourceLanguage) -> Result? {
        let source = SourceText(text)
        switch language {
        case .shell: return fixShell(source)
        case .dockerfile: return fixDockerfile(source)
        default: return nil
        }
    }

    static let ttlHeader = "X-aws-ec2-metadata-token-ttl-seconds: 21600"

    static func header(tool: String, variable: String) -> String {
        tool == "wget" ? " --header=\"X-aws-ec2-metadata-token: $\(variable)\"" : " -H \"X-aws-ec2-metadata-token: $\(variable)\""
    }

    /// The command that fetches a token into `variable`.
    static func tokenFetch(tool: String, base: String, variable: String) -> String {
        if tool == "wget" {
            return "\(variable)=$(wget -q -O - --method=PUT --header=\"\(ttlHeader)\" \"\(base)/latest/api/token\")"
        }
        return "\(variable)=$(curl -s -X PUT \"\(base)/latest/api/token\" -H \"\(ttlHeader)\")"
    }

    /// The base URL (scheme, host, port) a request's URL word uses, as shell text.
    ///
    /// `"http://169.254.169.254/latest/meta-data/x"` → `http://169.254.169.254`;
    /// `"http://${HOST}:${PORT}/latest/…"` → `http://${HOST}:${PORT}`;
    /// `$MD/instance-id` → `${MD%%/latest*}` (the part of `$MD` before `/latest`).
    static func base(ofURLWord raw: String) -> String {
        let u = raw.filter { $0 != "\"" && $0 != "'" }
        if let r = u.range(of: "/latest") { return String(u[u.startIndex..<r.lowerBound]) }
        if u.hasPrefix("$") {
            let name = References.shell(u).first ?? ""
            if !name.isEmpty { return "${\(name)%%/latest*}" }
        }
        if let scheme = u.range(of: "://") {
            let rest = u[scheme.upperBound...]
            let host = rest.prefix(while: { $0 != "/" })
            return String(u[u.startIndex..<scheme.upperBound]) + host
        }
        return String(u.prefix(while: { $0 != "/" }))
    }

    private struct Edit {
        var offset: Int
        var text: String
    }

    private static func apply(_ edits: [Edit], to source: SourceText) -> String {
        var scalars = source.scalars
        for e in edits.sorted(by: { $0.offset > $1.offset }) {
            scalars.insert(contentsOf: e.text.unicodeScalars, at: e.offset)
        }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        return String(v)
    }

    /// A variable name for the token that the script does not already use for something else.
    private static func tokenVariable(_ scanner: ShellScanner) -> String {
        let tokenNames = Set(scanner.tokenAssignments.map(\.name))
        for candidate in ["TOKEN", "IMDS_TOKEN", "IMDSV2_TOKEN", "IMDS_SESSION_TOKEN"] {
            if tokenNames.contains(candidate) { return candidate }
            let assigned = scanner.variables.assignments.contains { $0.name == candidate }
            if !assigned && !scanner.referencedNames.contains(candidate) { return candidate }
        }
        return "IMDS_TOKEN_\(scanner.source.count)"
    }

    private static func fixShell(_ source: SourceText) -> Result? {
        var scanner = ShellScanner(source)
        let requests = scanner.requests()
        let sites = requests.compactMap(\.fix)
        guard let first = sites.min(by: { $0.insertAt < $1.insertAt }) else { return nil }
        let firstLine = source.line(of: first.insertAt)

        var edits: [Edit] = []
        let variable: String
        if let existing = scanner.tokenAssignments.first(where: { $0.line < firstLine }) {
            variable = existing.name
        } else {
            variable = tokenVariable(scanner)
            let tool = sites.allSatisfy({ $0.tool == "wget" }) ? "wget" : "curl"
            let base = base(ofURLWord: first.rawURL)
            let line = insertionLine(source, scanner: scanner, baseVariables: References.shell(base), before: first.insertAt)
            let offset = source.start(ofLine: line)
            let indent = indentation(source, line: line)
            var text = "\(indent)# IMDSv2 session token, added by `imds scan --fix`\n\(indent)\(tokenFetch(tool: tool, base: base, variable: variable))\n"
            if offset == source.count, source.count > 0, source[source.count - 1] != "\n" { text = "\n" + text }
            edits.append(Edit(offset: offset, text: text))
        }
        for s in sites { edits.append(Edit(offset: s.insertAt, text: header(tool: s.tool, variable: variable))) }
        return Result(text: apply(edits, to: source), requestsFixed: sites.count)
    }

    /// The 1-based line before which the token fetch goes.
    private static func insertionLine(_ source: SourceText, scanner: ShellScanner, baseVariables: [String], before: Int) -> Int {
        var line = 1
        if source.string(source.start(ofLine: 1)..<min(source.count, source.start(ofLine: 1) + 2)) == "#!" { line = 2 }
        while line <= source.lineCount {
            let start = source.start(ofLine: line)
            let end = line < source.lineCount ? source.start(ofLine: line + 1) - 1 : source.count
            let text = source.string(start..<end).trimmed()
            if text.isEmpty || text.hasPrefix("#") || text == "set" || text.hasPrefix("set ") {
                // Stop at the first blank line after a `set` block so the fetch stays near the top.
                line += 1
                continue
            }
            break
        }
        // Never past the first request unless a variable it needs is assigned later.
        line = min(line, source.line(of: before))
        for name in baseVariables {
            guard let ends = scanner.assignmentEnds[name], !ends.isEmpty else { continue }
            let usable = ends.filter { $0 < before }
            let end = (usable.isEmpty ? ends : usable).max()!
            line = max(line, source.line(of: end) + 1)
        }
        return min(line, source.lineCount + (source.count > 0 && source[source.count - 1] == "\n" ? 0 : 1))
    }

    private static func indentation(_ source: SourceText, line: Int) -> String {
        guard line <= source.lineCount else { return "" }
        var i = source.start(ofLine: line)
        var out = ""
        while i < source.count, source[i] == " " || source[i] == "\t" {
            out.unicodeScalars.append(source[i])
            i += 1
        }
        return out
    }

    private static func fixDockerfile(_ source: SourceText) -> Result? {
        var docker = DockerfileScanner(source)
        let requests = docker.requests()
        let sites = requests.compactMap(\.fix)
        guard !sites.isEmpty else { return nil }
        let scanner = ShellScanner(docker.shellText)
        var edits: [Edit] = []
        for run in docker.runs {
            let inRun = sites.filter { run.bodyStart <= $0.insertAt && $0.insertAt <= run.end }.sorted { $0.insertAt < $1.insertAt }
            guard let first = inRun.first else { continue }
            let runLines = source.line(of: run.bodyStart)...source.line(of: run.end)
            let variable: String
            if let existing = scanner.tokenAssignments.first(where: { runLines.contains($0.line) && $0.line < source.line(of: first.insertAt) }) {
                variable = existing.name
            } else {
                variable = tokenVariable(scanner)
                let tool = inRun.allSatisfy({ $0.tool == "wget" }) ? "wget" : "curl"
                edits.append(Edit(offset: run.bodyStart, text: tokenFetch(tool: tool, base: base(ofURLWord: first.rawURL), variable: variable) + " && "))
            }
            for s in inRun { edits.append(Edit(offset: s.insertAt, text: header(tool: s.tool, variable: variable))) }
        }
        guard !edits.isEmpty else { return nil }
        return Result(text: apply(edits, to: source), requestsFixed: edits.filter { $0.text.hasPrefix(" ") }.count)
    }
}
