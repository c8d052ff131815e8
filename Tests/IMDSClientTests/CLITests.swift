import Foundation
import IMDSClient
import Testing

/// Runs the built `imds` binary against `imds serve` on port 0 (and fake servers).
@Suite("imds get/ls/dump/token (binary)", .serialized)
struct CLIClientTests {
    @Test func getLsDumpToken() async throws {
        let scratch = try ScratchDirectory()
        let config = try scratch.write("imds.yaml", clientTestYAML)
        let serve = try await ServeProcess.start(config: config, scratch: scratch)
        defer { serve.stop() }
        let env = childEnvironment(home: scratch.url.path)
        func imds(_ args: String...) async throws -> RunResult {
            try await runIMDS(args + ["--endpoint", serve.url], env: env, scratch: scratch)
        }

        // The three path forms, value exactly as served (no newline added).
        for form in ["instance-id", "meta-data/instance-id", "/latest/meta-data/instance-id"] {
            let r = try await imds("get", form)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.out == "i-0123456789abcdef0")
        }
        #expect(try await imds("get", "user-data").out == "#!/bin/sh\necho hi\n")
        let missing = try await imds("get", "nope")
        #expect(missing.status == 3)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr.contains("404"))

        let json = try await imds("get", "instance-id", "--json")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [String: Any]
        #expect(object?["value"] as? String == "i-0123456789abcdef0")
        #expect(object?["imdsVersion"] as? String == "v2")
        let jsonError = try await imds("get", "nope", "--json")
        #expect(jsonError.status == 3)
        let errorObject = try JSONSerialization.jsonObject(with: Data(jsonError.stderr.utf8)) as? [String: [String: Any]]
        #expect(errorObject?["error"]?["status"] as? Int == 404)
        #expect(errorObject?["error"]?["kind"] as? String == "not-found")

        let v1 = try await imds("get", "instance-id", "--v1", "--json")
        #expect((try JSONSerialization.jsonObject(with: Data(v1.stdout)) as? [String: Any])?["imdsVersion"] as? String == "v1")

        let ls = try await imds("ls")
        #expect(ls.status == 0)
        let entries = ls.out.split(separator: "\n").map(String.init)
        #expect(entries.contains("instance-id") && entries.contains("placement/"))
        #expect(try await imds("ls", "placement").out.contains("availability-zone\n"))
        let lsJSON = try await imds("ls", "tags/instance", "--json")
        #expect(try JSONSerialization.jsonObject(with: Data(lsJSON.stdout)) as? [String] == ["Env", "Name"] ||
                (try JSONSerialization.jsonObject(with: Data(lsJSON.stdout)) as? [String] == ["Name", "Env"]))

        let dump = try await imds("dump")
        #expect(dump.status == 0, "\(dump.stderr)")
        let tree = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout)) as? [String: Any])
        let meta = try #require(tree["meta-data"] as? [String: Any])
        #expect(meta["instance-id"] as? String == "i-0123456789abcdef0")
        #expect((meta["placement"] as? [String: Any])?["availability-zone"] as? String == "eu-west-2b")
        #expect(((meta["spot"] as? [String: Any])?["instance-action"] as? [String: Any])?["action"] as? String == "terminate")
        #expect(((meta["tags"] as? [String: Any])?["instance"] as? [String: Any])?["Name"] as? String == "web-1")
        let iam = try #require(meta["iam"] as? [String: Any])
        #expect(iam["info"] is [String: Any])
        #expect(iam["security-credentials"] == nil, "secrets are left out by default")
        let identity = (tree["dynamic"] as? [String: Any])?["instance-identity"] as? [String: Any]
        #expect((identity?["document"] as? [String: Any])?["region"] as? String == "eu-west-2")
        #expect(tree["user-data"] as? String == "#!/bin/sh\necho hi\n")
        let withSecrets = try await imds("dump", "meta-data/iam", "--include-credentials")
        #expect(withSecrets.out.contains("SecretAccessKey"))

        let token = try await imds("token", "--ttl", "60")
        #expect(token.status == 0)
        let value = token.out.trimmingCharacters(in: .newlines)
        #expect(value.count == 56)
        let tokenJSON = try await imds("token", "--json")
        #expect((try JSONSerialization.jsonObject(with: Data(tokenJSON.stdout)) as? [String: Any])?["ttlSeconds"] as? Int == 21600)
        let badTTL = try await imds("token", "--ttl", "0")
        #expect(badTTL.status != 0)
        #expect(badTTL.stderr.contains("--ttl"))
    }

    @Test func endpointFromEnvironmentAndConfigFile() async throws {
        let scratch = try ScratchDirectory()
        let serve = try await ServeProcess.start(config: nil, scratch: scratch)
        defer { serve.stop() }
        let viaEnv = try await runIMDS(["get", "instance-id"], env: childEnvironment(
            home: scratch.url.path, ["AWS_EC2_METADATA_SERVICE_ENDPOINT": serve.url]), scratch: scratch)
        #expect(viaEnv.status == 0)
        #expect(viaEnv.out.hasPrefix("i-"))
        let file = try scratch.write("config", "[profile t]\nec2_metadata_service_endpoint = \(serve.url)\n")
        let viaFile = try await runIMDS(["get", "instance-id"], env: childEnvironment(
            home: scratch.url.path, ["AWS_CONFIG_FILE": file, "AWS_PROFILE": "t"]), scratch: scratch)
        #expect(viaFile.status == 0)
        // A proxy variable is ignored: IMDS is never reached through a proxy.
        let port = try await closedPort()
        let proxied = try await runIMDS(["get", "instance-id", "--endpoint", serve.url], env: childEnvironment(
            home: scratch.url.path, ["HTTP_PROXY": "http://127.0.0.1:\(port)", "http_proxy": "http://127.0.0.1:\(port)"]), scratch: scratch)
        #expect(proxied.status == 0)
        let badMode = try await runIMDS(["get", "instance-id"], env: childEnvironment(
            home: scratch.url.path, ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv7"]), scratch: scratch)
        #expect(badMode.status == 2)
        #expect(badMode.stderr.contains("IPv7"))
        let disabled = try await runIMDS(["get", "instance-id", "--endpoint", serve.url], env: childEnvironment(
            home: scratch.url.path, ["AWS_EC2_METADATA_DISABLED": "true"]), scratch: scratch)
        #expect(disabled.status == 2)
    }

    @Test func exitCodesTellFailuresApart() async throws {
        let scratch = try ScratchDirectory()
        let env = childEnvironment(home: scratch.url.path)
        let required = try scratch.write("required.yaml", "instance:\n  metadata-options:\n    http-tokens: required\n")
        let serveRequired = try await ServeProcess.start(config: required, scratch: scratch)
        defer { serveRequired.stop() }
        let disabledConfig = try scratch.write("disabled.yaml", "instance:\n  metadata-options:\n    http-endpoint: disabled\n")
        let serveDisabled = try await ServeProcess.start(config: disabledConfig, scratch: scratch)
        defer { serveDisabled.stop() }
        let hang = try await FakeHTTPServer.start { _ in .hang }
        let port = try await closedPort()

        let unauthorized = try await runIMDS(["get", "instance-id", "--v1", "--endpoint", serveRequired.url], env: env, scratch: scratch)
        #expect(unauthorized.status == 4, "\(unauthorized.stderr)")
        #expect(unauthorized.stderr.contains("401"))
        #expect(try await runIMDS(["get", "instance-id", "--endpoint", serveRequired.url], env: env, scratch: scratch).status == 0)
        let forbidden = try await runIMDS(["get", "instance-id", "--endpoint", serveDisabled.url], env: env, scratch: scratch)
        #expect(forbidden.status == 5, "\(forbidden.stderr)")
        let strict = try await runIMDS(["get", "instance-id", "--no-v1-fallback", "--endpoint", serveDisabled.url], env: env, scratch: scratch)
        #expect(strict.status == 5)
        let timeout = try await runIMDS(["get", "instance-id", "--timeout", "0.2", "--retries", "0", "--endpoint", hang.url], env: env, scratch: scratch)
        #expect(timeout.status == 6, "\(timeout.stderr)")
        let refused = try await runIMDS(["get", "instance-id", "--retries", "0", "--endpoint", "http://127.0.0.1:\(port)"], env: env, scratch: scratch)
        #expect(refused.status == 7, "\(refused.stderr)")
        #expect(refused.stderr.contains("refused"))
        let badEndpoint = try await runIMDS(["get", "instance-id", "--endpoint", "not a uri"], env: env, scratch: scratch)
        #expect(badEndpoint.status == 2)
        await hang.stop()
    }
}

@Suite("imds doctor verdicts (binary)", .serialized)
struct DoctorCLITests {
    struct Verdict {
        var status: Int32
        var ids: [String]
        var text: String
        var json: [String: Any]
    }

    static func doctor(_ endpoint: String, scratch: ScratchDirectory, env extra: [String: String] = [:]) async throws -> Verdict {
        let env = childEnvironment(home: scratch.url.path, extra)
        let json = try await runIMDS(["doctor", "--endpoint", endpoint, "--timeout", "0.3", "--json"], env: env, scratch: scratch)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [String: Any], "\(json.out) \(json.stderr)")
        let ids = (object["findings"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        let text = try await runIMDS(["doctor", "--endpoint", endpoint, "--timeout", "0.3"], env: env, scratch: scratch)
        #expect(text.status == json.status, "text and JSON modes agree on the exit status")
        return Verdict(status: json.status, ids: ids, text: text.out, json: object)
    }

    @Test func healthyServer() async throws {
        let scratch = try ScratchDirectory()
        let serve = try await ServeProcess.start(config: nil, scratch: scratch)
        defer { serve.stop() }
        let v = try await Self.doctor(serve.url, scratch: scratch)
        #expect(v.status == 0, "\(v.text)")
        #expect(v.ids.contains("healthy") && v.ids.contains("v1-allowed"))
        #expect(v.json["healthy"] as? Bool == true)
        #expect(v.text.contains("Verdict: healthy"))
    }

    @Test func tokensRequired() async throws {
        let scratch = try ScratchDirectory()
        let config = try scratch.write("c.yaml", "instance:\n  instance-id: i-0aaaabbbbccccdddd\n  metadata-options: {http-tokens: required}\n")
        let serve = try await ServeProcess.start(config: config, scratch: scratch)
        defer { serve.stop() }
        let v = try await Self.doctor(serve.url, scratch: scratch)
        #expect(v.status == 2, "\(v.text)")
        #expect(v.ids.first == "v1-rejected")
        #expect(v.text.contains("HttpTokens is required"))
        #expect(v.text.contains("X-aws-ec2-metadata-token: $TOKEN"))
        #expect(v.text.contains("aws ec2 modify-instance-metadata-options --instance-id i-0aaaabbbbccccdddd --http-tokens optional"))
    }

    @Test func endpointDisabled() async throws {
        let scratch = try ScratchDirectory()
        let config = try scratch.write("c.yaml", "instance:\n  metadata-options: {http-endpoint: disabled}\n")
        let serve = try await ServeProcess.start(config: config, scratch: scratch)
        defer { serve.stop() }
        let v = try await Self.doctor(serve.url, scratch: scratch)
        #expect(v.status == 1)
        #expect(v.ids == ["endpoint-disabled"])
        #expect(v.text.contains("--http-endpoint enabled"))
    }

    @Test func putTimesOutButGetWorks() async throws {
        let scratch = try ScratchDirectory()
        let fake = try await FakeHTTPServer.start { r in r.method == "PUT" ? .hang : .respond(status: 200, body: "i-0fedcba9876543210") }
        let v = try await Self.doctor(fake.url, scratch: scratch)
        #expect(v.status == 1)
        #expect(v.ids.first == "hop-limit")
        #expect(v.text.contains("aws ec2 modify-instance-metadata-options --instance-id i-0fedcba9876543210 --http-put-response-hop-limit 2"))
        await fake.stop()
    }

    @Test func connectionRefused() async throws {
        let scratch = try ScratchDirectory()
        let port = try await closedPort()
        let v = try await Self.doctor("http://127.0.0.1:\(port)", scratch: scratch)
        #expect(v.status == 1)
        #expect(v.ids == ["connection-refused"])
        #expect(v.text.contains("connection refused"))
    }

    @Test func notResponding() async throws {
        let scratch = try ScratchDirectory()
        let fake = try await FakeHTTPServer.start { _ in .hang }
        let v = try await Self.doctor(fake.url, scratch: scratch)
        #expect(v.status == 1)
        #expect(v.ids == ["not-responding"])
        await fake.stop()
    }

    @Test func proxyInTheEnvironment() async throws {
        let scratch = try ScratchDirectory()
        let serve = try await ServeProcess.start(config: nil, scratch: scratch)
        defer { serve.stop() }
        let v = try await Self.doctor(serve.url, scratch: scratch, env: ["HTTP_PROXY": "http://proxy.example:3128"])
        #expect(v.status == 1)
        #expect(v.ids.first == "proxy")
        #expect(v.text.contains("HTTP_PROXY=http://proxy.example:3128"))
        #expect(v.text.contains("NO_PROXY=127.0.0.1"))
        let covered = try await Self.doctor(serve.url, scratch: scratch,
                                            env: ["http_proxy": "http://proxy.example:3128", "NO_PROXY": "localhost,127.0.0.0/8"])
        #expect(covered.status == 0, "\(covered.text)")
        #expect(!covered.ids.contains("proxy"))
    }

    @Test func clockSkew() async throws {
        let scratch = try ScratchDirectory()
        let wrong = Date().addingTimeInterval(-2 * 3600)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let date = formatter.string(from: wrong)
        let fake = try await FakeHTTPServer.start { r in
            if r.method == "PUT" {
                return .respond(status: 200, headers: [("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600"), ("Date", date)], body: "TOKEN")
            }
            return .respond(status: 200, headers: [("Date", date)], body: "i-0123456789abcdef0")
        }
        let v = try await Self.doctor(fake.url, scratch: scratch)
        #expect(v.status == 1, "\(v.text)")
        #expect(v.ids.first == "clock-skew")
        let skew = try #require(v.json["clockSkewSeconds"] as? Int)
        #expect(abs(skew + 7200) < 120)
        #expect(v.text.contains("ahead of the metadata service's clock"))
        await fake.stop()
    }

    @Test func imdsDisabledByEnvironment() async throws {
        let scratch = try ScratchDirectory()
        let serve = try await ServeProcess.start(config: nil, scratch: scratch)
        defer { serve.stop() }
        let v = try await Self.doctor(serve.url, scratch: scratch, env: ["AWS_EC2_METADATA_DISABLED": "true"])
        #expect(v.status == 1)
        #expect(v.ids.first == "imds-disabled-by-config")
    }
}
