import Foundation
import Testing

@testable import IMDSScan

@Suite("Scan: endpoint and token recognition")
struct MetadataTextTests {
    @Test(arguments: [
        ("http://169.254.169.254/latest/meta-data/", true),
        ("169.254.169.254:80", true),
        ("http://[fd00:ec2::254]/latest/", true),
        ("FD00:EC2::254", true),
        ("http://instance-data/latest/meta-data/", true),
        ("instance-data.ec2.internal", true),
        ("169.254.169.2540", false),
        ("1169.254.169.254", false),
        ("169.254.169.25", false),
        ("169.254.170.2", false),
        ("/var/lib/cloud/instance/instance-data.json", false),
        ("mkdir instance-data", false),
    ])
    func endpoint(_ text: String, _ expected: Bool) {
        #expect(MetadataText.mentionsEndpoint(text) == expected)
    }

    @Test(arguments: [
        ("-H \"X-aws-ec2-metadata-token: $TOKEN\"", true),
        ("--header=x-aws-ec2-metadata-token:$T", true),
        ("@{\"X-aws-ec2-metadata-token\" = $token}", true),
        ("{'X-aws-ec2-metadata-token': tok}", true),
        ("-H \"X-aws-ec2-metadata-token-ttl-seconds: 21600\"", false),
        ("X-aws-ec2-metadata-token_name", false),
    ])
    func tokenHeader(_ text: String, _ expected: Bool) {
        #expect(MetadataText.mentionsTokenHeader(text) == expected)
    }
}

@Suite("Scan: shell snippets")
struct ShellSnippetTests {
    /// (script, lines with findings)
    static let cases: [(String, [Int])] = [
        ("curl http://169.254.169.254/latest/meta-data/", [1]),
        ("curl -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'", []),
        ("curl -XPUT http://169.254.169.254/latest/api/token", []),
        ("wget --method=PUT -O - http://169.254.169.254/latest/api/token", []),
        ("curl -H \"X-aws-ec2-metadata-token: $T\" http://169.254.169.254/latest/meta-data/", []),
        ("# curl http://169.254.169.254/\necho 'curl http://169.254.169.254/'", []),
        ("echo ${#x} # curl http://169.254.169.254/\ncurl -s \\\n  http://169.254.169.254/", [2]),
        ("X=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)\ncurl -d \"$X\" https://example.com/", [1]),
        ("U=http://169.254.169.254\nV=\"$U/latest\"\ncurl \"$V/meta-data/\"", [3]),
        ("cat > /x <<'EOF'\ncurl http://169.254.169.254/\nEOF\ncurl http://example.com/", [2]),
        ("bash -c 'curl -s http://169.254.169.254/latest/user-data'", [1]),
        ("for u in http://169.254.169.254/a http://169.254.169.254/b; do\n  curl \"$u\"\ndone", [2]),
        ("sudo -u nobody curl http://169.254.169.254/", [1]),
        ("H=\"X-aws-ec2-metadata-token: $T\"\ncurl -H \"$H\" http://169.254.169.254/", []),
        ("iptables -A OUTPUT -d 169.254.169.254 -j DROP", []),
        ("ID=`curl -s http://169.254.169.254/latest/meta-data/instance-id`", [1]),
        ("python3 -c 'import requests; requests.get(\"http://169.254.169.254/latest/meta-data/\")'", [1]),
    ]

    @Test(arguments: cases.indices)
    func snippet(_ index: Int) {
        let (script, lines) = Self.cases[index]
        let found = ShellScanner.scan(SourceText(script)).map(\.line)
        #expect(found == lines, "\(script)")
    }
}

@Suite("Scan: language detection")
struct LanguageDetectionTests {
    @Test(arguments: [
        ("deploy.sh", "echo", SourceLanguage.shell, true),
        ("tool", "#!/usr/bin/env bash\n", .shell, true),
        ("tool", "#!/bin/zsh\n", .shell, false),
        ("probe", "#!/usr/bin/python3\n", .python, false),
        ("Dockerfile", "FROM x", .dockerfile, true),
        ("build.dockerfile", "FROM x", .dockerfile, true),
        ("user-data", "#cloud-config\n", .cloudInit, false),
        ("site.yml", "- hosts: all", .yaml, false),
        ("Get-X.ps1", "", .powershell, false),
        ("user-data.txt", "<powershell>\n", .powershell, false),
        ("user_data.sh.tpl", "echo", .shell, false),
    ])
    func detect(_ path: String, _ text: String, _ language: SourceLanguage, _ fixable: Bool) throws {
        let d = try #require(LanguageDetector.detect(path: path, text: text))
        #expect(d.language == language)
        #expect(d.fixable == fixable)
    }

    @Test func unknownFilesAreNotRead() {
        #expect(LanguageDetector.detect(path: "README.md", text: "curl http://169.254.169.254/") == nil)
    }
}

@Suite("Scan: --fix")
struct ShellFixerTests {
    @Test(arguments: [
        ("\"http://169.254.169.254/latest/meta-data/x\"", "http://169.254.169.254"),
        ("http://${HOST}:${PORT}/latest/meta-data/", "http://${HOST}:${PORT}"),
        ("$MD/instance-id", "${MD%%/latest*}"),
        ("\"${BASE}/meta-data/$1\"", "${BASE%%/latest*}"),
        ("http://[fd00:ec2::254]/", "http://[fd00:ec2::254]"),
    ])
    func base(_ raw: String, _ expected: String) {
        #expect(ShellFixer.base(ofURLWord: raw) == expected)
    }

    @Test func rewritesAfterShebangAndSetLinesAndVariable() throws {
        let script = """
            #!/bin/bash
            set -euo pipefail
            MD=http://169.254.169.254/latest/meta-data
            echo "$(curl -s $MD/instance-id)"
            wget -qO- "$MD/ami-id"

            """
        let fixed = try #require(ShellFixer.fix(text: script, language: .shell))
        #expect(fixed.requestsFixed == 2)
        #expect(fixed.text == """
            #!/bin/bash
            set -euo pipefail
            MD=http://169.254.169.254/latest/meta-data
            # IMDSv2 session token, added by `imds scan --fix`
            TOKEN=$(curl -s -X PUT "${MD%%/latest*}/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
            echo "$(curl -H "X-aws-ec2-metadata-token: $TOKEN" -s $MD/instance-id)"
            wget --header="X-aws-ec2-metadata-token: $TOKEN" -qO- "$MD/ami-id"

            """)
        #expect(ShellFixer.fix(text: fixed.text, language: .shell) == nil)
    }

    @Test func reusesTheScriptsOwnToken() throws {
        let script = """
            #!/bin/sh
            T=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
            curl -s http://169.254.169.254/latest/meta-data/instance-id
            """
        let fixed = try #require(ShellFixer.fix(text: script, language: .shell))
        #expect(fixed.text.contains("curl -H \"X-aws-ec2-metadata-token: $T\" -s http://169.254.169.254/latest/meta-data/instance-id"))
        #expect(fixed.text.components(separatedBy: "api/token").count == 2, "no second token fetch")
    }

    @Test func wgetOnlyScriptsFetchTheTokenWithWget() throws {
        let fixed = try #require(ShellFixer.fix(text: "wget -qO- http://169.254.169.254/latest/meta-data/ami-id\n", language: .shell))
        #expect(fixed.text.hasPrefix("# IMDSv2 session token, added by `imds scan --fix`\nTOKEN=$(wget -q -O - --method=PUT --header=\"X-aws-ec2-metadata-token-ttl-seconds: 21600\" \"http://169.254.169.254/latest/api/token\")\n"))
    }

    @Test func dockerfileRunGetsItsOwnToken() throws {
        let dockerfile = """
            FROM alpine
            RUN apk add curl && curl -s http://169.254.169.254/latest/meta-data/instance-id > /id
            RUN ["curl", "http://169.254.169.254/latest/meta-data/ami-id"]

            """
        let fixed = try #require(ShellFixer.fix(text: dockerfile, language: .dockerfile))
        #expect(fixed.requestsFixed == 1)
        #expect(fixed.text == """
            FROM alpine
            RUN TOKEN=$(curl -s -X PUT "http://169.254.169.254/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600") && apk add curl && curl -H "X-aws-ec2-metadata-token: $TOKEN" -s http://169.254.169.254/latest/meta-data/instance-id > /id
            RUN ["curl", "http://169.254.169.254/latest/meta-data/ami-id"]

            """)
    }
}

@Suite("Scan: files and directories")
struct ScanWalkTests {
    @Test func walkSkipsVendoredBinaryLargeAndBackupFiles() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("imds-scan-walk-\(UUID().uuidString)").path
        defer { try? fm.removeItem(atPath: dir) }
        let v1 = "curl http://169.254.169.254/latest/meta-data/\n"
        for sub in [".git", "node_modules/pkg", ".build", "src"] {
            try fm.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try v1.write(toFile: dir + "/.git/hook.sh", atomically: true, encoding: .utf8)
        try v1.write(toFile: dir + "/node_modules/pkg/x.sh", atomically: true, encoding: .utf8)
        try v1.write(toFile: dir + "/.build/y.sh", atomically: true, encoding: .utf8)
        try v1.write(toFile: dir + "/src/a.sh.imds-bak", atomically: true, encoding: .utf8)
        try v1.write(toFile: dir + "/src/README.md", atomically: true, encoding: .utf8)
        try (Data(v1.utf8) + Data([0, 1, 2])).write(to: URL(fileURLWithPath: dir + "/src/binary.sh"))
        try (v1 + String(repeating: "#", count: 1 << 20)).write(toFile: dir + "/src/big.sh", atomically: true, encoding: .utf8)
        try v1.write(toFile: dir + "/src/real.sh", atomically: true, encoding: .utf8)

        let report = IMDSScanner().scan(paths: [dir])
        #expect(report.errors.isEmpty)
        #expect(report.findings.map(\.file) == [dir + "/src/real.sh"])
        #expect(report.filesScanned == 1)
    }

    @Test func missingPathIsAnError() {
        let report = IMDSScanner().scan(paths: ["/nonexistent/imds-scan"])
        #expect(report.errors == ["/nonexistent/imds-scan: no such file or directory"])
    }

    @Test func fixWritesBackupAndKeepsPermissions() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("imds-scan-fix-\(UUID().uuidString)").path
        defer { try? fm.removeItem(atPath: dir) }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/get-id.sh"
        let original = "#!/bin/sh\ncurl -s http://169.254.169.254/latest/meta-data/instance-id\n"
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o750], ofItemAtPath: path)

        let report = IMDSScanner().fix(paths: [dir])
        #expect(report.fixed == [.init(file: path, requestsFixed: 1, backup: path + ".imds-bak")])
        #expect(report.remaining.isEmpty)
        #expect(try String(contentsOfFile: path + ".imds-bak", encoding: .utf8) == original)
        #expect((try fm.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o750)
        #expect(IMDSScanner().fix(paths: [dir]).fixed.isEmpty)
    }

    @Test func jsonHasTheDocumentedKeys() throws {
        let f = IMDSScanner().scan(text: "curl http://169.254.169.254/latest/meta-data/\n", path: "a.sh")
        let data = try JSONEncoder().encode(f)
        let objects = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(Set(objects[0].keys) == ["file", "line", "column", "language", "kind", "url", "reason", "fixable"])
        #expect(objects[0]["language"] as? String == "shell")
        #expect(objects[0]["fixable"] as? Bool == true)
    }
}
