import Foundation
import IMDSClient
import IMDSCore
import IMDSTesting
import Testing

/// The client held to the same fault matrix as botocore (issue 7): throttling and 5xx retried,
/// a PUT answering 403/404/405 or timing out falls back to v1, invalidated tokens are re-acquired.
@Suite("Client under faults")
struct FaultMatrixTests {
    static func setup(_ faults: [Fault], configure: (inout IMDSClientConfiguration) -> Void = { _ in }) -> (TestIMDS, IMDSClient) {
        var config = IMDSConfig.embeddedDefault
        config.faults = faults
        let imds = TestIMDS(config: config)
        let (client, _) = EngineClientTests.client(imds, configure: configure)
        return (imds, client)
    }

    @Test func throttlingAnd5xxAreRetried() async throws {
        let (imds, client) = Self.setup([
            Fault(kind: .throttle, pathPattern: "/latest/meta-data/iam/*", remaining: 2),
            Fault(kind: .error(status: 500), pathPattern: "/latest/meta-data/iam/*", remaining: 1),
        ])
        let creds = try await IMDSCredentialsProvider(client: client).credentials()
        #expect(creds.accessKeyID.hasPrefix("ASIA"))
        #expect(imds.store.snapshot.faults.isEmpty)  // all three failures were consumed by retries
    }

    @Test func retriesGiveUpAfterTheConfiguredAttempts() async throws {
        let (_, client) = Self.setup([Fault(kind: .error(status: 503), pathPattern: "/latest/meta-data/instance-id")]) { $0.retries = 2 }
        let error = await #expect(throws: IMDSClientError.self) { try await client.instanceID() }
        #expect(error?.status == 503)
    }

    @Test(arguments: [Fault.Kind.tokenStatus(403), .tokenStatus(404), .tokenStatus(405), .tokenTimeout])
    func tokenFailureFallsBackToV1(kind: Fault.Kind) async throws {
        let (_, client) = Self.setup([Fault(kind: kind)])
        #expect(try await client.instanceID() == "i-0abc1234def567890")
        let (_, strict) = Self.setup([Fault(kind: kind)]) { $0.v1FallbackDisabled = true }
        await #expect(throws: IMDSClientError.self) { try await strict.instanceID() }
    }

    @Test func invalidatedTokensAreReacquired() async throws {
        let (imds, client) = Self.setup([])
        let first = try await client.token()
        #expect(try await client.instanceID() == "i-0abc1234def567890")
        try await imds.store.apply([.invalidateTokens(instanceID: imds.store.snapshot.primaryInstanceID)])
        #expect(try await client.instanceID() == "i-0abc1234def567890")
        let second = try await client.token()
        #expect(first.value != second.value)
    }

    @Test func missingTTLHeaderOnTokenResponse() async throws {
        // Like go-v2, java and rust, the client refuses a token response without the TTL echo.
        let (_, client) = Self.setup([Fault(kind: .tokenTTLHeaderMissing)])
        let error = await #expect(throws: IMDSClientError.self) { try await client.instanceID() }
        #expect(error?.description.contains("ttl-seconds") == true)
    }
}
