import Foundation
import IMDSCore
import IMDSTesting
import Testing

@testable import IMDSObservability

@Suite("Access log and redaction")
struct AccessLogTests {
    @Test("an access-log line has the request's facts and never its token")
    func noToken() throws {
        let imds = TestIMDS()
        let token = try #require(imds.token(ttl: 60))
        let request = IMDSRequest(
            method: "GET", target: "/latest/meta-data/instance-id?\(token)",
            headers: [("X-aws-ec2-metadata-token", token), ("Host", "169.254.169.254")],
            peer: PeerAddress(ip: "::1", port: 41000))
        let response = imds.respond(to: request)
        let caller = CallerProcess(
            pid: 4242, executable: "/usr/bin/curl",
            commandLine: ["curl", "-H", "X-aws-ec2-metadata-token: \(token)", "http://[::1]:1338/latest/meta-data/instance-id"],
            user: "root", uid: 0)
        let entry = AccessLogEntry(request: request, response: response, seconds: 0.00123, at: Date(timeIntervalSince1970: 1_700_000_000.5))
            .attributed(.process(caller), known: [token])
        let line = entry.jsonLine()
        #expect(!line.contains(token))
        #expect(!line.contains(String(token.prefix(20))))
        #expect(!line.contains(String(token.suffix(20))))
        let back = try JSONDecoder().decode(AccessLogEntry.self, from: Data(line.utf8))
        #expect(back.time == "2023-11-14T22:13:20.500Z")
        #expect(back.client == "[::1]:41000")
        #expect(back.clientIP == "::1")
        var other = back
        for (client, ip) in [("127.0.0.1:40312", "127.0.0.1"), ("[fd00::a:1]:80", "fd00::a:1"), ("[::ffff:10.0.0.5]:9", "::ffff:10.0.0.5"),
                             ("10.0.0.5", "10.0.0.5")] {
            other.client = client
            #expect(other.clientIP == ip, "\(client)")
        }
        other.client = nil
        #expect(other.clientIP == nil)
        #expect(back.path == "/latest/meta-data/instance-id")
        #expect(back.version == "v2")
        #expect(back.status == 200)
        #expect(back.latencyMilliseconds == 1.23)
        #expect(back.caller?.pid == 4242)
        #expect(back.caller?.commandLine == ["curl", "-H", "X-aws-ec2-metadata-token: [redacted]", "http://[::1]:1338/latest/meta-data/instance-id"])
        #expect(back.attribution == "process")
    }

    @Test("a v1 request refused under required is logged with its rejection; a fault is logged")
    func rejectedAndFault() throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-tokens: required\n")
        let request = IMDSRequest(method: "GET", target: "/latest/meta-data/", peer: PeerAddress(ip: "127.0.0.1", port: 5))
        let e = AccessLogEntry(request: request, response: imds.respond(to: request), seconds: 0, at: Date())
            .attributed(.unattributed("gone"))
        #expect(e.version == "v1")
        #expect(e.status == 401)
        #expect(e.tokenRejection == "missing")
        #expect(e.attributionNote == "gone")
        #expect(CallerTable.classify(e) == .v1Rejected)

        var hang = IMDSResponse(status: 0, reason: "", headers: [], body: [])
        hang.action = .hang
        hang.outcome.fault = "hang f-1"
        let h = AccessLogEntry(request: request, response: hang, seconds: 0, at: Date())
        #expect(h.status == 0 && h.action == "hang" && h.fault == "hang f-1")
    }

    @Test("the writer appends one JSON line per entry to a file")
    func writer() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("imds-access-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try AccessLogWriter(destination: path)
        for i in 0..<3 {
            writer.write(AccessLogEntry(time: "t\(i)", instanceID: "i-1", client: "127.0.0.1:1", method: "GET", path: "/p\(i)",
                                        version: "v1", status: 200, latencyMilliseconds: 0.1, category: "meta-data"))
        }
        writer.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") })
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(throws: AccessLogWriter.OpenError.self) { try AccessLogWriter(destination: "/nonexistent-dir/x.log") }
    }

    struct RedactionCase: Sendable, CustomTestStringConvertible {
        var input: String
        var expected: String
        var testDescription: String { input }
    }

    @Test("secrets are redacted, ordinary command lines are kept", arguments: [
        RedactionCase(input: "X-aws-ec2-metadata-token: AQAEAKQRRHnsX8GCPgYTGMShrFJkMhru3n-8Ul5Gzvzj-bpWKYZuiw==",
                      expected: "X-aws-ec2-metadata-token: [redacted]"),
        RedactionCase(input: "x-aws-ec2-metadata-token:abc", expected: "x-aws-ec2-metadata-token:[redacted]"),
        RedactionCase(input: "X-aws-ec2-metadata-token-ttl-seconds: 21600", expected: "X-aws-ec2-metadata-token-ttl-seconds: 21600"),
        RedactionCase(input: "TOKEN=AQAAAPm_49V6IGWwyABYuQXrWfdP6yrb3-iy6UsOKg5zeol4pFOp_g==", expected: "TOKEN=[redacted]"),
        RedactionCase(input: "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", expected: "aws_secret_access_key=[redacted]"),
        RedactionCase(input: "key AKIAIOSFODNN7EXAMPLE end", expected: "key [redacted] end"),
        RedactionCase(input: "http://127.0.0.1:1338/latest/meta-data/iam/security-credentials/MyRole2",
                      expected: "http://127.0.0.1:1338/latest/meta-data/iam/security-credentials/MyRole2"),
        RedactionCase(input: "/usr/lib/python3/dist-packages/botocore/utils.py", expected: "/usr/lib/python3/dist-packages/botocore/utils.py"),
        RedactionCase(input: "curl -s http://169.254.169.254/latest/meta-data/instance-id",
                      expected: "curl -s http://169.254.169.254/latest/meta-data/instance-id"),
        // Tokens by shape wherever they are, even glued to other characters (issue 16.6).
        RedactionCase(input: "/latest/meta-data/iam/security-credentials/AQAEAKQRRHnsX8GCPgYTGMShrFJkMhru3n-8Ul5Gzvzj-bpWKYZuiw==x",
                      expected: "/latest/meta-data/iam/security-credentials/[redacted]"),
        RedactionCase(input: "/latest/meta-data/xAQAEAKQRRHnsX8GCPgYTGMShrFJkMhru3n-8Ul5Gzvzj-bpWKYZuiw==",
                      expected: "/latest/meta-data/x[redacted]"),
        RedactionCase(input: "/latest/meta-data/AQAEAKQRRHnsX8GCPgYTGMShrFJkMhru3n-8Ul5Gzvzj-bpWKY/x",
                      expected: "/latest/meta-data/[redacted]/x"),
        RedactionCase(input: "/latest/AQAAAPm_49V6IGWwyABYuQXrWfdP6yrb3-iy6UsOKg5zeol4pFOp_g==/meta-data",
                      expected: "/latest/[redacted]/meta-data"),
        RedactionCase(input: "token=IQoJb3JpZ2luX2VjEXAMPLE/abc+def==", expected: "token=[redacted]"),
        RedactionCase(input: "/x/IQoJb3JpZ2luX2VjEXAMPLEabcdefghijkl", expected: "/x/[redacted]"),
        RedactionCase(input: "/latest/api/token?token=abc&x=1", expected: "/latest/api/token?token=[redacted]&x=1"),
        RedactionCase(input: #"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "Code": "Success"}"#,
                      expected: #"{"SecretAccessKey": "[redacted]", "Code": "Success"}"#),
        RedactionCase(input: "secret-access-key: 'correct horse battery staple' is not valid",
                      expected: "secret-access-key: '[redacted]' is not valid"),
        RedactionCase(input: "--password=hunter2hunter2", expected: "--password=[redacted]"),
        // Not secrets, however random they look: kept (no randomness heuristic).
        RedactionCase(input: "/var/lib/docker/overlay2/3f1a9dB7c2E5aa0Fb9c1d2e3F4a5b6C7d8e9f0A1b2/merged",
                      expected: "/var/lib/docker/overlay2/3f1a9dB7c2E5aa0Fb9c1d2e3F4a5b6C7d8e9f0A1b2/merged"),
        RedactionCase(input: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                      expected: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        RedactionCase(input: "/latest/meta-data/block-device-mapping/ami", expected: "/latest/meta-data/block-device-mapping/ami"),
        RedactionCase(input: "X-aws-ec2-metadata-token-ttl-seconds=21600", expected: "X-aws-ec2-metadata-token-ttl-seconds=21600"),
    ])
    func redaction(_ c: RedactionCase) {
        #expect(Redaction.redact(c.input) == c.expected)
    }

    @Test("the shortcut for text with nothing secret-like gives what every rule gives")
    func redactionShortcut() {
        let token = "AQAEAKQRRHnsX8GCPgYTGMShrFJkMhru3n-8Ul5Gzvzj-bpWKYZuiw=="
        let plain = [
            "/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/app-role", "/", "",
            "/latest/meta-data/placement/availability-zone", "/latest/dynamic/instance-identity/document",
            "/latest/opaque-\(token.prefix(20))", "/x/Fwo", "/x/ASI", "/x/AKIB0123456789ABCDEF", "/caf\u{E9}/x", "a\r\nb",
            "/latest/\(token)", "/l/x\(token.dropFirst(5))", "/latest/api/token?x=1", "a:b", "TOKEN",
        ]
        for text in plain {
            for known in [[], [token], ["opaque-AQAEAKQRRHnsX8GC"]] {
                let exact = known.filter { $0.utf8.count >= 8 }
                #expect(Redaction.redact(text, known: known) == Redaction.redactAll(text, exact: exact), "\(text) known \(known)")
            }
        }
        #expect(!Redaction.mayHoldSecret("/latest/meta-data/instance-id", exact: [token]))
        #expect(Redaction.mayHoldSecret("/latest/opaque-AQAEAKQRRHnsX8GC/x", exact: ["opaque-AQAEAKQRRHnsX8GC"]))
        #expect(Redaction.redact("/x/opaque-abcdefgh/y", known: ["opaque-abcdefgh"]) == "/x/[redacted]/y")
    }

    @Test("access-log times are ISO 8601 in UTC with milliseconds")
    func accessLogTimes() {
        #expect(Timestamp.iso8601Milliseconds(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.iso8601Milliseconds(Date(timeIntervalSince1970: 1_800_000_000.1234)) == "2027-01-15T08:00:00.123Z")
        #expect(Timestamp.iso8601Milliseconds(Date(timeIntervalSince1970: 951_825_599.9996)) == "2000-02-29T11:59:59.999Z")
        #expect(Timestamp.iso8601Milliseconds(Date(timeIntervalSince1970: 253_402_300_800)) == "10000-01-01T00:00:00.000Z")
    }

    @Test("configured secrets are redacted wherever they appear")
    func configuredSecrets() {
        let secret = "correct horse battery staple 7f3e"
        Redaction.setConfiguredSecrets([secret])
        defer { Redaction.setConfiguredSecrets([]) }
        #expect(Redaction.redact("/latest/\(secret)/x") == "/latest/[redacted]/x")
        #expect(Redaction.redact(arguments: ["tool", "pass=\(secret)"]) == ["tool", "pass=[redacted]"])
        #expect(!Redaction.redact("a \(secret) b").contains("horse"))
    }

    @Test("argument pairs naming a token carry a redacted value")
    func argumentPairs() {
        #expect(Redaction.redact(arguments: ["tool", "--token", "abc", "--x", "y"]) == ["tool", "--token", "[redacted]", "--x", "y"])
        #expect(Redaction.redact(arguments: ["curl", "-H", "X-aws-ec2-metadata-token:", "abc"]) == ["curl", "-H", "X-aws-ec2-metadata-token:", "[redacted]"])
        #expect(Redaction.redact(arguments: ["x", "secret-value-here"], known: ["secret-value-here"]) == ["x", "[redacted]"])
    }
}
