import Foundation
import IMDSCore
import Testing

@Suite("Config")
struct ConfigTests {
    @Test func productExampleLoadsUnchanged() throws {
        let c = try IMDSConfig.parse(Data(productExampleYAML.utf8), isJSON: false)
        #expect(c.instance.instanceID == "i-0abc1234def567890")
        #expect(c.instance.region == "ap-northeast-1")
        #expect(c.instance.tags.map(\.key) == ["Name", "Env"])
        #expect(c.instance.metadataOptions.instanceMetadataTags == .enabled)
        #expect(c.instance.metadataOptions.httpPutResponseHopLimit == 1)
        #expect(c.instance.userData == Array("#!/bin/bash\necho hello\n".utf8))
        #expect(c.instance.iam?.role == "app-role")
    }

    @Test func embeddedDefaultIsComplete() {
        let i = IMDSConfig.embeddedDefault.instance
        #expect(i.instanceID == "i-0abc1234def567890")
        #expect(i.accountID == "123456789012")
        #expect(i.metadataOptions.isEmpty)
        #expect(i.publicKeys.count == 1)
    }

    @Test func emptyFileIsTheDefault() throws {
        #expect(try IMDSConfig.parse(Data(), isJSON: false) == IMDSConfig.embeddedDefault)
        #expect(try IMDSConfig.parse(Data("# nothing\n".utf8), isJSON: false) == IMDSConfig.embeddedDefault)
    }

    @Test func jsonConfig() throws {
        let json = """
            {"instance": {"instance-id": "i-0123456789abcdef0", "account-id": "210987654321", "ami-launch-index": 3,
              "metadata-options": {"http-tokens": "required", "http-put-response-hop-limit": 2},
              "tags": {"Name": "x"}}}
            """
        let c = try IMDSConfig.parse(Data(json.utf8), isJSON: true)
        #expect(c.instance.instanceID == "i-0123456789abcdef0")
        #expect(c.instance.amiLaunchIndex == 3)
        #expect(c.instance.metadataOptions.httpTokens == .required)
        #expect(c.instance.metadataOptions.httpPutResponseHopLimit == 2)
        #expect(c.instance.instanceType == "t3.micro")  // from the default
    }

    /// Each kind of bad config and the words its error must contain.
    @Test(arguments: [
        ("instance:\n  instance-idd: i-0abc1234def567890\n", ["instance.instance-idd", "unknown key", "instance-id"]),
        ("instanse:\n  instance-id: x\n", ["instanse", "unknown key", "instance"]),
        ("instance:\n  metadata-options:\n    http-tokens: maybe\n", ["instance.metadata-options.http-tokens", "'maybe'", "optional, required"]),
        ("instance:\n  metadata-options:\n    http-put-response-hop-limit: 65\n", ["hop-limit", "'65'", "1 to 64"]),
        ("instance:\n  metadata-options:\n    http-put-response-hop-limit: 0\n", ["'0'", "1 to 64"]),
        ("instance:\n  metadata-options:\n    http-endpoint: off\n", ["http-endpoint", "enabled, disabled"]),
        ("instance:\n  metadata-options:\n    hop-limit: 2\n", ["unknown key 'hop-limit'", "http-put-response-hop-limit"]),
        ("instance:\n  instance-id: 12345\n", ["instance.instance-id", "'12345'", "i- followed by"]),
        ("instance:\n  account-id: 1234\n", ["instance.account-id", "12 digits"]),
        ("instance:\n  local-ipv4: 10.0.1.300\n", ["instance.local-ipv4", "IPv4"]),
        ("instance:\n  mac: 0e:12:34\n", ["instance.mac", "hex pairs"]),
        ("instance:\n  availability-zone: tokyo\n", ["availability-zone", "ap-northeast-1a"]),
        ("instance:\n  tags:\n    my tag: x\n", ["instance.tags.my tag", "cannot be exposed"]),
        ("instance:\n  tags: [a, b]\n", ["instance.tags", "expected a mapping"]),
        ("instance:\n  security-groups:\n    a: b\n", ["security-groups", "expected a list"]),
        ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: 1m\n", ["lifetime", "'1m'"]),
        ("instance:\n  iam:\n    role: app\n    credentials:\n      source: fixed\n", ["source", "access-key-id"]),
        ("instance:\n  overrides:\n    /etc/passwd: x\n", ["overrides", "meta-data/"]),
        ("instance: [1, 2]\n", ["instance", "expected a mapping"]),
        ("instance:\n  instance-id: [\n", ["not valid YAML"]),
        ("instance:\n  public-keys:\n    k: not-a-key\n", ["public-keys.k", "OpenSSH"]),
        ("instance:\n  block-device-mapping:\n    disk: /dev/sdb\n", ["block-device-mapping.disk", "ebsN"]),
        ("api-versions: [yesterday]\n", ["api-versions", "'yesterday'"]),
        ("instance:\n  launch-time: now\n", ["launch-time", "2026-01-02T03:04:05Z"]),
    ])
    func badConfig(yaml: String, words: [String]) {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("accepted: \(yaml)")
        } catch {
            let text = error.description
            for w in words { #expect(text.contains(w), "'\(w)' not in: \(text)") }
            #expect(!text.contains("\n"), "one paragraph: \(text)")
        }
    }

    /// A rejected secret is never echoed in the error (issue 16.6).
    @Test(arguments: [
        "instance:\n  iam:\n    role: app\n    credentials:\n      source: fixed\n      access-key-id: ASIAEXAMPLE123456789\n      secret-access-key: 'correct horse'\n      token: t\n",
        "instance:\n  iam:\n    role: app\n    credentials:\n      source: fixed\n      access-key-id: ASIAEXAMPLE123456789\n      secret-access-key: 'correct horse battery staple'\n      token: ''\n",
        "control-plane:\n  access-keys:\n    - access-key-id: AKIDTEST\n      secret-access-key: 'correct horse battery staple'\n",
        "control-plane:\n  access-keys:\n    - access-key-id: AKIDTEST\n      secret-access-key: 'cor'\n",
    ])
    func secretsAreNotEchoed(yaml: String) {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("accepted: \(yaml)")
        } catch {
            let text = error.description
            #expect(text.contains("not shown: it is a secret"), "\(text)")
            for fragment in ["correct", "horse", "'cor'"] { #expect(!text.contains(fragment), "\(text)") }
        }
    }

    @Test func configuredSecretsAreListed() throws {
        let c = try IMDSConfig.parse(Data("""
            instance:
              iam:
                role: app
                credentials:
                  source: fixed
                  access-key-id: ASIAEXAMPLE123456789
                  secret-access-key: fixed-secret-0123456789
                  token: fixed-session-token
            control-plane:
              access-keys:
                - {access-key-id: AKIDTEST, secret-access-key: control-secret-1}
            """.utf8), isJSON: false)
        #expect(Set(c.secrets) == ["fixed-secret-0123456789", "fixed-session-token", "control-secret-1"])
    }

    @Test func lineNumbersInErrors() {
        do {
            _ = try IMDSConfig.parse(Data("instance:\n  instance-id: i-0abc1234def567890\n  bogus: 1\n".utf8), isJSON: false)
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("line 3"))
        }
    }

    @Test func fileErrorsNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imds-config-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.yaml").path
        try Data("instance:\n  nope: 1\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ConfigError.self) { try IMDSConfig.load(path: path) }
        do { _ = try IMDSConfig.load(path: path) } catch { #expect(error.description.hasPrefix(path)) }
        do { _ = try IMDSConfig.load(path: dir.appendingPathComponent("missing.yaml").path) } catch {
            #expect(error.description.contains("no such file"))
        }
        let jsonPath = dir.appendingPathComponent("bad.json").path
        try Data("{\"instance\": ".utf8).write(to: URL(fileURLWithPath: jsonPath))
        do { _ = try IMDSConfig.load(path: jsonPath) } catch { #expect(error.description.contains("not valid JSON")) }
    }

    @Test func credentialsSettings() throws {
        let c = try IMDSConfig.parse(Data("""
            instance:
              iam:
                role: r1
                credentials:
                  lifetime: 15m
            """.utf8), isJSON: false)
        #expect(c.instance.iam?.credentials.lifetime == 900)
        #expect(c.instance.iam?.credentials.rotateBeforeExpiry == 450)
    }

    @Test func userDataLimit() {
        let big = String(repeating: "x", count: 16385)
        #expect(throws: ConfigError.self) { try IMDSConfig.parse(Data("instance:\n  user-data: \(big)\n".utf8), isJSON: false) }
    }
}
