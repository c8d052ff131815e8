import Foundation
import IMDSClient
import IMDSCore
import IMDSTesting
import Testing

let clientTestYAML = """
    instance:
      instance-id: i-0123456789abcdef0
      availability-zone: eu-west-2b
      user-data: "#!/bin/sh\\necho hi\\n"
      iam:
        role: app-role
      tags:
        Name: web-1
        Env: dev
      metadata-options:
        instance-metadata-tags: enabled
      overrides:
        meta-data/spot/instance-action: '{"action": "terminate", "time": "2026-11-23T17:00:00Z"}'
    """

@Suite("Client against the in-process engine")
struct EngineClientTests {
    static func client(_ imds: TestIMDS, clock: (any IMDSClientClock)? = nil,
                       configure: (inout IMDSClientConfiguration) -> Void = { _ in }) -> (IMDSClient, SwitchableTransport) {
        let transport = SwitchableTransport(EngineTransport(imds: imds))
        var config = testConfiguration()
        configure(&config)
        return (IMDSClient(configuration: config, transport: transport, clock: clock ?? WallClock()), transport)
    }

    @Test func typedItems() async throws {
        let imds = try TestIMDS(yaml: clientTestYAML)
        let (client, _) = Self.client(imds)
        #expect(try await client.instanceID() == "i-0123456789abcdef0")
        #expect(try await client.availabilityZone() == "eu-west-2b")
        #expect(try await client.region() == "eu-west-2")
        let doc = try await client.identityDocument()
        #expect(doc.instanceId == "i-0123456789abcdef0" && doc.region == "eu-west-2" && doc.accountId == "123456789012")
        #expect(doc.pendingTime != nil)
        #expect(try await client.tags() == ["Name": "web-1", "Env": "dev"])
        #expect(try await client.userData() == Array("#!/bin/sh\necho hi\n".utf8))
        let spot = try #require(try await client.spotInstanceAction())
        #expect(spot.action == "terminate")
        #expect(spot.time == Date(timeIntervalSince1970: 1_795_453_200))
        #expect(try await client.list().contains("instance-id"))
        #expect(try await client.list("placement").contains("region"))
    }

    @Test func absentItemsAreNil() async throws {
        let imds = try TestIMDS(yaml: "instance:\n  user-data: null\n  metadata-options:\n    instance-metadata-tags: disabled\n")
        let (client, _) = Self.client(imds)
        #expect(try await client.userData() == nil)
        #expect(try await client.tags() == nil)
        #expect(try await client.spotInstanceAction() == nil)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("no-such-item") }
        #expect(error == .httpError(status: 404, path: "/latest/meta-data/no-such-item"))
    }

    @Test func tokensRequiredWorksWithV2AndForcedV1Gets401() async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-tokens: required\n")
        let (client, _) = Self.client(imds)
        let r = try await client.fetch("instance-id")
        #expect(r.usedToken)
        let (v1, _) = Self.client(imds) { $0.forceV1 = true }
        let error = await #expect(throws: IMDSClientError.self) { try await v1.fetch("instance-id") }
        #expect(error?.status == 401)
    }

    @Test func disabledEndpointIs403() async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-endpoint: disabled\n")
        let (client, transport) = Self.client(imds)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("instance-id") }
        #expect(error == .httpError(status: 403, path: "/latest/meta-data/instance-id"))
        // PUT 403 → v1 GET → 403 (no retries for 4xx).
        #expect(transport.requests.map(\.method) == ["PUT", "GET"])
    }

    @Test func tokenIsRefreshedBeforeItExpires() async throws {
        let clock = ManualClock()
        let imds = try TestIMDS(yaml: clientTestYAML, manualClock: clock)
        let (client, transport) = Self.client(imds, clock: SharedClock(clock: clock))
        _ = try await client.instanceID()
        let first = try await client.token()
        clock.advance(by: 21600 - 600)
        _ = try await client.instanceID()
        #expect(transport.requests.filter { $0.method == "PUT" }.count == 1, "still valid: cached")
        clock.advance(by: 500)  // 100 s left, inside the 120 s refresh buffer
        _ = try await client.instanceID()
        let puts = transport.requests.filter { $0.method == "PUT" }.count
        #expect(puts == 2, "refreshed before expiry")
        let second = try await client.token()
        #expect(second.value != first.value)
        // The refresh happened while the old token was still accepted: no GET was answered 401.
        #expect(imds.request("GET", "/latest/meta-data/instance-id", headers: [(IMDSHeader.token, first.value)]).status == 200)
    }

    @Test func tokenIsRefreshedOn401() async throws {
        let clock = ManualClock()
        let imds = try TestIMDS(yaml: clientTestYAML, manualClock: clock)
        // The client's own clock does not move: it believes its token is valid; the server's does.
        let (client, transport) = Self.client(imds, clock: WallClock())
        _ = try await client.instanceID()
        clock.advance(by: 21601)
        #expect(try await client.instanceID() == "i-0123456789abcdef0")
        #expect(transport.requests.map(\.method) == ["PUT", "GET", "GET", "PUT", "GET"])
        // Tokens revoked on the server (generation bump): refreshed again.
        try await imds.store.apply([.invalidateTokens(instanceID: "i-0123456789abcdef0")])
        #expect(try await client.instanceID() == "i-0123456789abcdef0")
        #expect(transport.requests.filter { $0.method == "PUT" }.count == 3)
    }

    @Test func shortTTLIsHonoured() async throws {
        let clock = ManualClock()
        let imds = try TestIMDS(yaml: clientTestYAML, manualClock: clock)
        let (client, transport) = Self.client(imds, clock: SharedClock(clock: clock)) { $0.tokenTTL = 60 }
        let t = try await client.token()
        #expect(t.ttl == 60)
        #expect(t.expiresAt == clock.now().addingTimeInterval(60))
        clock.advance(by: 46)  // buffer for a 60 s token is 15 s
        _ = try await client.instanceID()
        #expect(transport.requests.filter { $0.method == "PUT" }.count == 2)
        #expect(transport.requests.first?.header("x-aws-ec2-metadata-token-ttl-seconds") == "60")
    }
}
