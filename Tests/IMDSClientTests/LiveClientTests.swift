import Foundation
import IMDSClient
import IMDSCore
import IMDSServer
import IMDSTesting
import Testing

@Suite("Client over real sockets (NIO transport)")
struct LiveClientTests {
    /// A client for a live socket. Servers that answer get a generous timeout (the machine may be busy);
    /// tests of servers that never answer pass a short one.
    static func client(_ url: String, retries: Int = 0, timeout: Duration = .seconds(5),
                       configure: (inout IMDSClientConfiguration) -> Void = { _ in }) throws -> IMDSClient {
        var c = testConfiguration(try IMDSEndpoint(parsing: url), retries: retries, timeout: timeout)
        configure(&c)
        return IMDSClient(configuration: c)
    }

    @Test func againstALiveServer() async throws {
        let imds = try TestIMDS(yaml: clientTestYAML)
        let server = try await imds.startLive()
        let client = try Self.client(server.dataURL)
        #expect(try await client.instanceID() == "i-0123456789abcdef0")
        #expect(try await client.region() == "eu-west-2")
        #expect(try await client.fetch("instance-id").usedToken)
        #expect(try await client.userData() == Array("#!/bin/sh\necho hi\n".utf8))
        let creds = try await IMDSCredentialsProvider(client: client).credentials()
        #expect(creds.roleName == "app-role")
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("nope") }
        #expect(error?.status == 404)
        await server.stop()
    }

    @Test(.enabled("needs ::1 (IPv6 loopback); skipped because it cannot be bound on this host") { await ipv6LoopbackAvailable() })
    func ipv6Endpoint() async throws {
        // IPv6 listeners serve only while the instance has http-protocol-ipv6 enabled, as on EC2.
        let imds = try TestIMDS(yaml: clientTestYAML.replacingOccurrences(
            of: "    instance-metadata-tags: enabled", with: "    instance-metadata-tags: enabled\n    http-protocol-ipv6: enabled"))
        let server = try await imds.startLive(host: "::1")
        try #require(!server.service.dataAddresses.isEmpty, "the [::1] listener did not start")
        #expect(server.dataURL.hasPrefix("http://[::1]:"))
        let env = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.dataURL]
        var config = try IMDSClientConfiguration.resolve(environment: env)
        config.timeouts = IMDSTimeouts(connect: .seconds(5), read: .seconds(5))
        let client = IMDSClient(configuration: config)
        #expect(try await client.instanceID() == "i-0123456789abcdef0")
        #expect(try await client.fetch("instance-id").usedToken)
        await server.stop()
    }

    @Test(arguments: [400, 403, 404, 405])
    func putStatusOverSockets(status: Int) async throws {
        let fake = try await FakeHTTPServer.start { r in
            r.method == "PUT" ? .respond(status: status) : .respond(status: 200, body: r.header("x-aws-ec2-metadata-token") == nil ? "v1" : "v2")
        }
        let client = try Self.client(fake.url)
        if status == 400 {
            await #expect(throws: IMDSClientError.tokenRequestInvalid) { try await client.fetch("x") }
        } else {
            #expect(try await client.string("x") == "v1")
        }
        let strict = try Self.client(fake.url) { $0.v1FallbackDisabled = true }
        let error = await #expect(throws: IMDSClientError.self) { try await strict.fetch("x") }
        #expect(error?.status == status)
        await fake.stop()
    }

    @Test func putThatNeverAnswersFallsBackToV1() async throws {
        // The hop-limit symptom: the PUT's answer never arrives, GETs work. The timeout bounds the
        // PUT and the fallback GET alike, so it is long enough for a GET to be answered while the
        // rest of the suite runs in parallel on two cores (300 ms was not, now and then).
        let fake = try await FakeHTTPServer.start { r in r.method == "PUT" ? .hang : .respond(status: 200, body: "i-0fromv1") }
        let client = try Self.client(fake.url, timeout: .seconds(2))
        let r = try await client.fetch("instance-id")
        #expect(r.text == "i-0fromv1" && !r.usedToken)
        let strict = try Self.client(fake.url, timeout: .seconds(2)) { $0.v1FallbackDisabled = true }
        let error = await #expect(throws: IMDSClientError.self) { try await strict.fetch("instance-id") }
        #expect(error?.transportError == .readTimeout)
        await fake.stop()
    }

    @Test func listenerThatNeverAnswersIsATimeout() async throws {
        let fake = try await FakeHTTPServer.start { _ in .hang }
        let client = try Self.client(fake.url, timeout: .milliseconds(300))
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("instance-id") }
        #expect(error?.transportError == .readTimeout)
        await fake.stop()
    }

    @Test func closedPortIsConnectionRefused() async throws {
        let port = try await closedPort()
        let client = try Self.client("http://127.0.0.1:\(port)", retries: 1)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("instance-id") }
        #expect(error?.transportError == .connectionRefused)
    }

    @Test func retriesA503OverSockets() async throws {
        let fake = try await FakeHTTPServer.start { r in
            if r.method == "PUT" { return .respond(status: 200, headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")], body: "T") }
            return .respond(status: 200, body: "ok")
        }
        let flaky = try await FakeHTTPServer.start { r in r.method == "PUT" ? .respond(status: 503) : .respond(status: 200, body: "v1") }
        #expect(try await Self.client(fake.url).string("x") == "ok")
        #expect(fake.requests.first?.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600")
        #expect(fake.requests.last?.header("x-aws-ec2-metadata-token") == "T")
        #expect(fake.requests.last?.uri == "/latest/meta-data/x")
        #expect(try await Self.client(flaky.url, retries: 2).string("x") == "v1")
        #expect(flaky.requests.filter { $0.method == "PUT" }.count == 3)
        await fake.stop()
        await flaky.stop()
    }
}
