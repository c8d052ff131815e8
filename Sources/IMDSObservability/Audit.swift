import Foundation

/// The verdict of `imds audit`: is it safe to set `HttpTokens=required`, and if not, who would break.
public struct AuditReport: Codable, Sendable {
    /// No caller made an IMDSv1 request.
    public var safe: Bool
    /// `safe to require IMDSv2`, or `not safe to require IMDSv2: N caller(s) still use IMDSv1`.
    public var verdict: String
    /// Where the data came from (the admin API URL or the access-log path).
    public var source: String
    public var callers: [Entry]
    public var totals: CallerTable.Totals
    /// Notes on the data (no traffic seen, callers evicted, unreadable log lines).
    public var notes: [String]
    /// The verdict per instance the callers were answered as (one entry per instance seen).
    public var instances: [InstanceVerdict]
    /// The instance the report is limited to (`imds audit --instance-id`), if any.
    public var instanceID: String?

    /// One instance's verdict: safe to require IMDSv2 on it, or how many of its callers break.
    public struct InstanceVerdict: Codable, Sendable, Equatable {
        public var instanceID: String
        public var safe: Bool
        /// Callers of this instance that use IMDSv1.
        public var breakingCallers: Int
        public var callers: Int

        enum CodingKeys: String, CodingKey {
            case instanceID = "instance-id", safe, breakingCallers = "breaking-callers", callers
        }
    }

    public struct Entry: Codable, Sendable {
        public var name: String
        /// This caller makes IMDSv1 requests: it fails once tokens are required.
        public var breaks: Bool
        /// What to point `imds scan` at (the script, the executable or the working directory).
        public var scanTarget: String?
        /// How to fix it (empty for callers that only use IMDSv2).
        public var hint: String?
        public var summary: CallerSummary

        enum CodingKeys: String, CodingKey { case name, breaks, scanTarget = "scan-target", hint, summary }
    }

    enum CodingKeys: String, CodingKey { case safe, verdict, source, callers, totals, notes, instances, instanceID = "instance-id" }

    /// Judges the callers (only those answered as `instanceID`, when given).
    public init(callers all: [CallerSummary], totals: CallerTable.Totals, source: String, evicted: Int = 0, notes: [String] = [],
                instanceID: String? = nil) {
        let callers = instanceID.map { id in all.filter { $0.instanceIDs.contains(id) } } ?? all
        let entries = callers.map { c -> Entry in
            let target = c.process.flatMap(Self.scanTarget)
            return Entry(name: c.displayName, breaks: c.breaksUnderRequired, scanTarget: target,
                         hint: c.breaksUnderRequired ? Self.hint(for: c, scanTarget: target) : nil, summary: c)
        }
        let breaking = entries.filter(\.breaks).count
        let on = instanceID.map { " on \($0)" } ?? ""
        self.safe = breaking == 0
        self.verdict = breaking == 0
            ? "safe to require IMDSv2\(on)"
            : "not safe to require IMDSv2\(on): \(breaking) caller\(breaking == 1 ? "" : "s") still use\(breaking == 1 ? "s" : "") IMDSv1"
        var perInstance: [String: InstanceVerdict] = [:]
        for e in entries {
            for id in e.summary.instanceIDs {
                var v = perInstance[id] ?? InstanceVerdict(instanceID: id, safe: true, breakingCallers: 0, callers: 0)
                v.callers += 1
                if e.breaks { v.breakingCallers += 1; v.safe = false }
                perInstance[id] = v
            }
        }
        self.instances = perInstance.values.sorted { $0.instanceID < $1.instanceID }
        self.instanceID = instanceID
        self.source = source
        self.callers = entries
        self.totals = totals
        var notes = notes
        if callers.isEmpty {
            notes.append(instanceID.map { "no data-plane requests recorded as \($0) yet: run the workload before trusting this verdict" }
                ?? "no data-plane requests recorded yet: run the workload before trusting this verdict")
        }
        if evicted > 0 { notes.append("\(evicted) least recently seen caller(s) were evicted from the bounded caller table") }
        self.notes = notes
    }

    /// The exit status for `imds audit`: 0 when safe, 1 when IMDSv1 callers exist.
    public var exitCode: Int32 { safe ? 0 : 1 }

    // MARK: - Access log input

    /// Errors reading an access log.
    public struct LogError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Aggregates an access log (JSON lines as `imds serve --access-log` writes them). Lines that are
    /// not JSON objects (other output mixed into stdout) are ignored; JSON lines that are not access
    /// entries are counted in a note.
    public static func fromAccessLog(_ text: String, source: String, instanceID: String? = nil) throws -> AuditReport {
        let table = CallerTable(capacity: 100_000)
        let decoder = JSONDecoder()
        var bad = 0, good = 0
        for line in text.split(separator: "\n") where line.first == "{" {
            if let e = try? decoder.decode(AccessLogEntry.self, from: Data(line.utf8)) {
                table.record(e)
                good += 1
            } else {
                bad += 1
            }
        }
        if good == 0 && bad > 0 {
            throw LogError(description: "\(source): no access-log entries (\(bad) JSON line(s) of another format); is this a file written by imds serve --access-log?")
        }
        return AuditReport(
            callers: table.snapshot(), totals: table.totals, source: source, evicted: table.evicted,
            notes: bad > 0 ? ["\(bad) line(s) could not be read as access-log entries and were skipped"] : [], instanceID: instanceID)
    }

    // MARK: - Hints

    static let interpreters: Set<String> = [
        "sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "python", "python2", "python3", "perl", "ruby", "node", "pwsh",
        "powershell", "php", "lua", "env",
    ]
    static let systemDirectories = ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/", "/usr/local/bin/", "/usr/libexec/"]

    /// What `imds scan` should look at: the script an interpreter runs, a non-system executable, or
    /// the working directory (a system tool such as `curl` run from a script or a shell).
    public static func scanTarget(_ p: CallerProcess) -> String? {
        let args = p.commandLine
        if let first = args.first {
            var name = (first as NSString).lastPathComponent
            if name.hasPrefix("python") { name = "python" }
            if interpreters.contains(name) || interpreters.contains((p.executable as NSString?)?.lastPathComponent ?? "") {
                var i = 1
                while i < args.count {
                    let a = args[i]
                    if Self.inlineCodeFlags(name).contains(a) { break }  // inline code: no file
                    if !a.hasPrefix("-") && !a.contains("=") && a != Redaction.marker {
                        return absolute(a, cwd: p.workingDirectory)
                    }
                    i += 1
                }
            }
        }
        if let exe = p.executable, !systemDirectories.contains(where: { exe.hasPrefix($0) }),
            !interpreters.contains((exe as NSString).lastPathComponent)
        {
            return exe
        }
        return p.workingDirectory
    }

    /// Flags after which an interpreter runs code given on the command line, not a file.
    static func inlineCodeFlags(_ interpreter: String) -> Set<String> {
        switch interpreter {
        case "python": ["-c", "-m"]
        case "perl", "ruby", "node": ["-e", "-E", "--eval", "-p"]
        case "pwsh", "powershell": ["-c", "-Command", "-command", "-EncodedCommand"]
        case "env": []
        default: ["-c"]
        }
    }

    static func absolute(_ path: String, cwd: String?) -> String {
        guard !path.hasPrefix("/"), let cwd else { return path }
        return cwd.hasSuffix("/") ? cwd + path : cwd + "/" + path
    }

    static func hint(for c: CallerSummary, scanTarget: String?) -> String {
        let target = scanTarget.map { shellQuote($0) } ?? "PATH"
        var hint = "find its IMDSv1 calls with `imds scan \(target)`; shell curl/wget calls can be rewritten to the token form with `imds scan --fix \(target)`"
        if let p = c.process, let exe = p.executable {
            let name = (exe as NSString).lastPathComponent
            if name.hasPrefix("python") || name == "node" || name == "java" || name == "ruby" {
                hint += "; if it is an AWS SDK or tool, upgrade it (current SDKs use IMDSv2)"
            }
        }
        if c.process == nil {
            hint = c.attribution == "remote"
                ? "the caller is on another host or network namespace: run `imds scan` on the software there (or audit on that host)"
                : "the process could not be identified (it exited before the lookup); find it by its path list and run `imds scan PATH`"
        }
        return hint
    }

    static func shellQuote(_ s: String) -> String {
        if s.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+:@".contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    // MARK: - Rendering

    /// The human-readable report.
    public func text() -> String {
        var out = "imds audit: \(callers.count) caller\(callers.count == 1 ? "" : "s") seen (source: \(source))\n"
        out += "requests: \(totals.v1) IMDSv1 answered, \(totals.v1Rejected) IMDSv1 refused, \(totals.v2) IMDSv2\n"
        for e in callers {
            let s = e.summary
            out += "\n\(e.breaks ? "✗" : "✓") \(e.name)\n"
            if let p = s.process {
                var who: [String] = []
                if let exe = p.executable { who.append("exe \(exe)") }
                if let u = p.user ?? p.uid.map({ "uid \($0)" }) { who.append("user \(u)") }
                if let cid = p.containerID { who.append("container \(String(cid.prefix(12)))") }
                if s.pids.count > 1 { who.append("pids \(s.pids.map(String.init).joined(separator: ", "))") }
                if !who.isEmpty { out += "    \(who.joined(separator: ", "))\n" }
            }
            out += "    v1: \(s.v1) answered, \(s.v1Rejected) refused; v2: \(s.v2); from \(s.addresses.joined(separator: ", "))"
                + (s.instanceIDs.isEmpty ? "" : " as \(s.instanceIDs.joined(separator: ", "))") + "\n"
            out += "    first seen \(s.firstSeen), last seen \(s.lastSeen)\n"
            let paths = s.paths.sorted { ($0.v1, $0.v2) > ($1.v1, $1.v2) }.prefix(8)
            for p in paths { out += "    \(p.path)  (v1 \(p.v1), v2 \(p.v2))\n" }
            if s.paths.count > 8 || s.pathsTruncated { out += "    … more paths\n" }
            if let hint = e.hint { out += "    fix: \(hint)\n" }
        }
        for n in notes { out += "\nnote: \(n)" }
        if !notes.isEmpty { out += "\n" }
        if instances.count > 1 {
            out += "\nper instance:\n"
            for v in instances {
                out += "  \(v.instanceID): " + (v.safe ? "safe to require IMDSv2" : "not safe (\(v.breakingCallers) of \(v.callers) caller\(v.callers == 1 ? "" : "s") use IMDSv1)") + "\n"
            }
        }
        out += "\nverdict: \(verdict)\n"
        return out
    }

    /// The report as JSON (for CI gates).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}
