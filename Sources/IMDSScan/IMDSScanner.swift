import Foundation

/// Finds IMDSv1 usage — requests to the instance metadata service without a session token — in
/// source files, and rewrites shell requests into the token form.
///
/// ```swift
/// let report = IMDSScanner().scan(paths: ["deploy/"])
/// for f in report.findings { print("\(f.file):\(f.line): \(f.reason)") }
/// ```
public struct IMDSScanner: Sendable {
    /// Files larger than this are skipped while walking directories.
    public var maxFileSize: Int
    /// Directory names never entered.
    public var skippedDirectories: Set<String>

    public init(maxFileSize: Int = 1 << 20, skippedDirectories: Set<String> = [".git", "node_modules", ".build", ".hg", ".svn"]) {
        self.maxFileSize = maxFileSize
        self.skippedDirectories = skippedDirectories
    }

    /// Findings for one file's text; empty when the language is not one the scanner reads.
    public func scan(text: String, path: String) -> [ScanFinding] {
        analyse(text: text, path: path, explicit: false).findings
    }

    /// The result of scanning files and directories.
    public struct Report: Sendable {
        /// Findings in path order, then line order.
        public var findings: [ScanFinding]
        /// Files read and scanned.
        public var filesScanned: Int
        /// Paths that could not be read (missing, unreadable), with the reason.
        public var errors: [String]
    }

    /// Scans each path: files directly, directories recursively (skipping `skippedDirectories`,
    /// symbolic links to directories, binary files, `*.imds-bak` backups and files over `maxFileSize`).
    public func scan(paths: [String]) -> Report {
        var report = Report(findings: [], filesScanned: 0, errors: [])
        for (file, explicit) in files(in: paths, errors: &report.errors) {
            guard let text = read(file, explicit: explicit, errors: &report.errors) else { continue }
            let a = analyse(text: text, path: file, explicit: explicit)
            if a.detection != nil { report.filesScanned += 1 }
            report.findings += a.findings
        }
        return report
    }

    // MARK: - Fixing

    /// What `fix(paths:)` did to one file.
    public struct FileFix: Sendable, Equatable {
        public var file: String
        /// Requests rewritten into the token form.
        public var requestsFixed: Int
        /// Where the original was saved (`FILE.imds-bak`).
        public var backup: String
    }

    /// The outcome of `--fix`: findings before fixing, files rewritten, and findings left.
    public struct FixReport: Sendable {
        public var before: Report
        public var fixed: [FileFix]
        /// Findings after the rewrite (the ones that could not be fixed).
        public var remaining: [ScanFinding]
    }

    /// Rewrites fixable requests in place, leaving `FILE.imds-bak` next to each changed file.
    public func fix(paths: [String]) -> FixReport {
        let before = scan(paths: paths)
        var fixed: [FileFix] = []
        var errors = before.errors
        let files = Array(Set(before.findings.filter(\.fixable).map(\.file))).sorted()
        for file in files {
            guard let text = read(file, explicit: true, errors: &errors) else { continue }
            guard let detection = LanguageDetector.detect(path: file, text: text), detection.fixable,
                let result = ShellFixer.fix(text: text, language: detection.language)
            else { continue }
            let backup = file + ".imds-bak"
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: backup))
                try replaceContents(of: file, with: result.text)
                fixed.append(FileFix(file: file, requestsFixed: result.requestsFixed, backup: backup))
            } catch {
                errors.append("\(file): cannot write: \(error.localizedDescription)")
            }
        }
        var after = scan(paths: paths)
        after.errors = errors
        var beforeWithErrors = before
        beforeWithErrors.errors = errors
        return FixReport(before: beforeWithErrors, fixed: fixed, remaining: after.findings)
    }

    /// Writes `text` through a temporary file renamed over `path`, keeping the file's permissions.
    private func replaceContents(of path: String, with text: String) throws {
        let fm = FileManager.default
        let attributes = try fm.attributesOfItem(atPath: path)
        let temp = path + ".imds-tmp"
        try Data(text.utf8).write(to: URL(fileURLWithPath: temp))
        if let perms = attributes[.posixPermissions] {
            try fm.setAttributes([.posixPermissions: perms], ofItemAtPath: temp)
        }
        if rename(temp, path) != 0 {
            try? fm.removeItem(atPath: temp)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

    // MARK: - Internals

    struct Analysis {
        var detection: LanguageDetector.Detection?
        var findings: [ScanFinding]
    }

    func analyse(text: String, path: String, explicit: Bool) -> Analysis {
        var detection = LanguageDetector.detect(path: path, text: text)
        if detection == nil, explicit { detection = .init(language: .shell, fixable: false) }
        guard let detection else { return Analysis(detection: nil, findings: []) }
        guard Self.mayContainRequests(text) else { return Analysis(detection: detection, findings: []) }
        let requests = Self.requests(text: text, language: detection.language)
        let findings = requests.map { r in
            let fixable = detection.fixable && r.fix != nil
            return ScanFinding(
                file: path, line: r.line, column: r.column, language: detection.language, kind: r.kind, url: r.url,
                reason: r.reason + (fixable ? "" : "; not auto-fixable"), fixable: fixable)
        }
        return Analysis(detection: detection, findings: findings)
    }

    /// Every finding needs the endpoint written somewhere in the file (requests through variables
    /// included), or one of boto's helpers that default to it; files with neither are skipped cheaply.
    static func mayContainRequests(_ text: String) -> Bool {
        let lower = text.lowercased()
        return ["169.254.169.254", "fd00:ec2::254", "instance-data", "get_instance_metadata", "get_instance_identity", "get_instance_userdata"]
            .contains { lower.contains($0) }
    }

    static func requests(text: String, language: SourceLanguage) -> [DetectedRequest] {
        let source = SourceText(text)
        switch language {
        case .shell: return ShellScanner.scan(source)
        case .python: return PythonScanner.scan(source)
        case .powershell: return PowerShellScanner.scan(source)
        case .dockerfile:
            var d = DockerfileScanner(source)
            return d.requests()
        case .cloudInit, .yaml: return YAMLScanner.scan(source)
        }
    }

    private func read(_ file: String, explicit: Bool, errors: inout [String]) -> String? {
        guard let handle = FileHandle(forReadingAtPath: file) else {
            errors.append("\(file): cannot read")
            return nil
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            errors.append("\(file): cannot read: \(error.localizedDescription)")
            return nil
        }
        if data.count > maxFileSize && !explicit { return nil }
        if data.prefix(8192).contains(0) { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Files to scan, with whether each was named explicitly.
    private func files(in paths: [String], errors: inout [String]) -> [(String, Bool)] {
        let fm = FileManager.default
        var out: [(String, Bool)] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                errors.append("\(p): no such file or directory")
                continue
            }
            if isDir.boolValue {
                walk(p, into: &out, errors: &errors)
            } else {
                out.append((p, true))
            }
        }
        return out
    }

    private func walk(_ dir: String, into out: inout [(String, Bool)], errors: inout [String]) {
        let fm = FileManager.default
        let entries: [String]
        do {
            entries = try fm.contentsOfDirectory(atPath: dir).sorted()
        } catch {
            errors.append("\(dir): cannot list: \(error.localizedDescription)")
            return
        }
        for name in entries {
            let path = dir == "." ? name : (dir.hasSuffix("/") ? dir + name : dir + "/" + name)
            guard let attrs = try? fm.attributesOfItem(atPath: path), let type = attrs[.type] as? FileAttributeType else { continue }
            switch type {
            case .typeDirectory:
                if !skippedDirectories.contains(name) { walk(path, into: &out, errors: &errors) }
            case .typeRegular:
                if name.hasSuffix(".imds-bak") || name.hasSuffix(".imds-tmp") { continue }
                if let size = attrs[.size] as? Int, size > maxFileSize { continue }
                out.append((path, false))
            case .typeSymbolicLink:
                // Files behind links are scanned; directories behind links are not entered (no loops).
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue, !name.hasSuffix(".imds-bak") {
                    out.append((path, false))
                }
            default:
                continue
            }
        }
    }
}
