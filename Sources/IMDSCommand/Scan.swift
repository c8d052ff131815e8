import ArgumentParser
import Foundation
import IMDSScan

struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find IMDSv1 usage (metadata requests without a session token) in a source tree.",
        discussion: """
            Reads shell scripts, Python, PowerShell, Dockerfiles, cloud-init user-data and Ansible/YAML, \
            and reports each request to 169.254.169.254, fd00:ec2::254 or instance-data that does not send \
            the X-aws-ec2-metadata-token header, as FILE:LINE: REASON. Directories are walked recursively \
            (.git, node_modules and .build are skipped, as are binary files and files over 1 MiB).

            Exit status: 0 when nothing is found, 1 when there are findings (after --fix: findings that \
            could not be fixed), 2 when a path cannot be read or no path is given.

            --fix rewrites curl/wget requests in sh/bash scripts and Dockerfile RUN lines into the token \
            form (one token per script), saving the original as FILE.imds-bak. See docs/scan.md.
            """)

    @Argument(help: ArgumentHelp("Files and directories to scan.", valueName: "path"))
    var paths: [String] = []

    @Flag(name: .long, help: "Print findings as a JSON array for tools.")
    var json = false

    @Flag(name: .long, help: "Rewrite shell curl/wget requests into the IMDSv2 token form (backup: FILE.imds-bak).")
    var fix = false

    @Flag(name: .long, help: "Print nothing but errors; the exit status tells the result.")
    var quiet = false

    /// A finding as printed by --json: the library's finding, plus whether --fix rewrote it.
    struct JSONFinding: Encodable {
        var finding: ScanFinding
        var fixed: Bool?

        func encode(to encoder: any Encoder) throws {
            try finding.encode(to: encoder)
            if let fixed {
                var c = encoder.container(keyedBy: Key.self)
                try c.encode(fixed, forKey: .fixed)
            }
        }

        enum Key: String, CodingKey { case fixed }
    }

    func run() throws {
        guard !paths.isEmpty else {
            FileHandle.standardError.write(Data("imds scan: no path given. Usage: imds scan [--json] [--fix] [--quiet] PATH...\n".utf8))
            throw ExitCode(2)
        }
        let scanner = IMDSScanner()
        let findings: [ScanFinding]
        let remaining: [ScanFinding]
        let errors: [String]
        var fixedFiles: [IMDSScanner.FileFix] = []
        let filesScanned: Int
        if fix {
            let report = scanner.fix(paths: paths)
            findings = report.before.findings
            remaining = report.remaining
            errors = report.before.errors
            fixedFiles = report.fixed
            filesScanned = report.before.filesScanned
        } else {
            let report = scanner.scan(paths: paths)
            findings = report.findings
            remaining = report.findings
            errors = report.errors
            filesScanned = report.filesScanned
        }

        for e in errors { FileHandle.standardError.write(Data("imds scan: \(e)\n".utf8)) }

        if json && !quiet {
            let fixedSet = Set(fixedFiles.map(\.file))
            let items = findings.map { f in
                JSONFinding(finding: f, fixed: fix ? (f.fixable && fixedSet.contains(f.file)) : nil)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(items)
            FileHandle.standardOutput.write(data)
            FileHandle.standardOutput.write(Data("\n".utf8))
        } else if !quiet {
            var out = ""
            for f in fixedFiles {
                out += "fixed \(f.file): \(f.requestsFixed == 1 ? "1 request now sends" : "\(f.requestsFixed) requests now send") the IMDSv2 token (original saved as \(f.backup))\n"
            }
            for f in remaining { out += "\(f.file):\(f.line): \(f.reason)\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
            let files = Set(remaining.map(\.file)).count
            let summary: String
            if remaining.isEmpty {
                summary = "imds scan: no IMDSv1 usage found (\(filesScanned) file\(filesScanned == 1 ? "" : "s") scanned)"
            } else {
                let fixable = remaining.filter(\.fixable).count
                summary = "imds scan: \(remaining.count) IMDSv1 request\(remaining.count == 1 ? "" : "s") in \(files) file\(files == 1 ? "" : "s") (\(filesScanned) scanned)"
                    + (fix ? "" : fixable > 0 ? "; \(fixable) can be fixed with --fix" : "")
            }
            FileHandle.standardError.write(Data((summary + "\n").utf8))
        }

        if !errors.isEmpty { throw ExitCode(2) }
        if !remaining.isEmpty { throw ExitCode(1) }
    }
}
