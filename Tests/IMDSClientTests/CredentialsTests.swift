import Foundation
import IMDSClient
import IMDSCore
import IMDSTesting
import Testing

@Suite("Credentials provider")
struct CredentialsTests {
    static func setup(yaml: String = clientTestYAML, configure: (inout IMDSClientConfiguration) -> Void = { _ in })
        throws -> (TestIMDS, ManualClock, SwitchableTransport, IMDSCredentialsProvider)
    {
        let clock = ManualClock()
        let imds = try TestIMDS(yaml: yaml, manualClock: clock)
        let transport = SwitchableTransport(EngineTransport(imds: imds))
        var config = testConfiguration(retries: 0)
        configure(&config)
        let client = IMDSClient(configuration: config, transport: transport, clock: SharedClock(clock: clock))
        return (imds, clock, transport, IMDSCredentialsProvider(client: client, clock: SharedClock(clock: clock)))
    }

    @Test func discoversTheRoleThroughTheExtendedPath() async throws {
        let (_, clock, transport, provider) = try Self.setup()
        let creds = try await provider.credentials()
        #expect(creds.roleName == "app-role")
        #expect(creds.accessKeyID.hasPrefix("ASIA"))
        #expect(!creds.secretAccessKey.isEmpty && !creds.sessionToken.isEmpty)
        #expect(creds.accountID == "123456789012")
        #expect(creds.expiration > clock.now().addingTimeInterval(3600))
        #expect(!creds.isExtended)
        #expect(!creds.description.contains(creds.secretAccessKey) && !creds.description.contains(creds.sessionToken))
        let paths = transport.requests.filter { $0.method == "GET" }.map(\.path)
        #expect(paths == ["/latest/meta-data/iam/security-credentials-extended/",
                          "/latest/meta-data/iam/security-credentials-extended/app-role"])
        // Cached: no more requests.
        _ = try await provider.credentials()
        #expect(transport.requests.filter { $0.method == "GET" }.count == 2)
    }

    @Test func fallsBackToTheLegacyPathOn404() async throws {
        let (_, _, transport, provider) = try Self.setup()
        transport.override { $0.path.contains("security-credentials-extended") ? .respond(404) : nil }
        let creds = try await provider.credentials()
        #expect(creds.roleName == "app-role")
        #expect(creds.accountID == nil)
        let paths = transport.requests.filter { $0.method == "GET" }.map(\.path)
        #expect(paths == ["/latest/meta-data/iam/security-credentials-extended/",
                          "/latest/meta-data/iam/security-credentials/",
                          "/latest/meta-data/iam/security-credentials/app-role"])
    }

    @Test func fixedProfileNameSkipsDiscovery() async throws {
        let (_, _, transport, provider) = try Self.setup { $0.instanceProfileName = "app-role" }
        _ = try await provider.credentials()
        let paths = transport.requests.filter { $0.method == "GET" }.map(\.path)
        #expect(paths == ["/latest/meta-data/iam/security-credentials-extended/app-role"])
    }

    @Test func noRoleIsAnError() async throws {
        let (_, _, _, provider) = try Self.setup(yaml: "instance:\n  iam: null\n")
        let error = await #expect(throws: IMDSClientError.self) { try await provider.credentials() }
        #expect(error?.status == 404)
    }

    static let errorJSON = """
        {
          "Code" : "AssumeRoleUnauthorizedAccess",
          "Message" : "EC2 cannot assume the role integration-test.",
          "LastUpdated" : "2021-09-17T20:46:56Z"
        }
        """

    @Test func a200WithAnErrorCodeIsAnError() async throws {
        let (_, _, transport, provider) = try Self.setup()
        transport.override { $0.path.hasSuffix("/app-role") ? .respond(200, body: Self.errorJSON) : nil }
        let error = await #expect(throws: IMDSClientError.self) { try await provider.credentials() }
        #expect(error == .credentialsError(code: "AssumeRoleUnauthorizedAccess", message: "EC2 cannot assume the role integration-test."))
    }

    @Test func missingFieldsAreAnError() async throws {
        let (_, _, transport, provider) = try Self.setup()
        transport.override { $0.path.hasSuffix("/app-role") ? .respond(200, body: #"{"Code":"Success","AccessKeyId":"A","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#) : nil }
        let error = await #expect(throws: IMDSClientError.self) { try await provider.credentials() }
        guard case .invalidResponse(let m) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(m.contains("SecretAccessKey"))
    }

    @Test func staticStabilityWhenIMDSIsUnavailable() async throws {
        let (_, clock, transport, provider) = try Self.setup()
        let good = try await provider.credentials()
        // Near expiry, IMDS goes away.
        clock.set(good.expiration.addingTimeInterval(-120))
        transport.fail(with: .connectionRefused)
        let served = try await provider.credentials()
        #expect(served.accessKeyID == good.accessKeyID)
        #expect(served.isExtended)
        let now = clock.now()
        #expect(served.expiration >= now.addingTimeInterval(300) && served.expiration <= now.addingTimeInterval(600))
        #expect(provider.lastError?.transportError == .connectionRefused)
        // Within the extension IMDS is not asked again.
        let count = transport.requests.count
        clock.advance(by: 290)
        _ = try await provider.credentials()
        #expect(transport.requests.count == count)
        // After it, IMDS is asked again; still down: extended again, bounded from the new now.
        clock.set(served.expiration.addingTimeInterval(1))
        let again = try await provider.credentials()
        #expect(transport.requests.count > count)
        #expect(again.expiration <= clock.now().addingTimeInterval(600))
        // IMDS is back: fresh credentials.
        transport.fail(with: nil)
        clock.set(again.expiration.addingTimeInterval(1))
        let fresh = try await provider.credentials()
        #expect(!fresh.isExtended)
        #expect(provider.lastError == nil)
    }

    @Test func staticStabilityForExpiredCredentialsFromIMDS() async throws {
        let (_, clock, transport, provider) = try Self.setup()
        let expired = """
            {
              "Code" : "Success",
              "LastUpdated" : "2020-01-20T20:38:30Z",
              "Type" : "AWS-HMAC",
              "AccessKeyId" : "ASIAEXPIRED",
              "SecretAccessKey" : "s",
              "Token" : "t",
              "Expiration" : "2020-01-21T03:01:06Z"
            }
            """
        transport.override { $0.path.hasSuffix("/app-role") ? .respond(200, body: expired) : nil }
        let creds = try await provider.credentials()
        #expect(creds.accessKeyID == "ASIAEXPIRED")
        #expect(creds.isExtended)
        let now = clock.now()
        #expect(creds.expiration >= now.addingTimeInterval(300) && creds.expiration <= now.addingTimeInterval(600))
    }

    @Test func staticStabilityCoversErrorCodesButNotAFirstFailure() async throws {
        let (_, clock, transport, provider) = try Self.setup()
        transport.fail(with: .readTimeout)
        await #expect(throws: IMDSClientError.self) { try await provider.credentials() }
        transport.fail(with: nil)
        let good = try await provider.credentials()
        clock.set(good.expiration.addingTimeInterval(-60))
        transport.override { $0.path.hasSuffix("/app-role") ? .respond(200, body: Self.errorJSON) : nil }
        let served = try await provider.credentials()
        #expect(served.accessKeyID == good.accessKeyID && served.isExtended)
        #expect(provider.lastError == .credentialsError(code: "AssumeRoleUnauthorizedAccess",
                                                        message: "EC2 cannot assume the role integration-test."))
    }

    @Test func rotatedCredentialsArePickedUp() async throws {
        let (_, clock, _, provider) = try Self.setup()
        let first = try await provider.credentials()
        clock.set(first.expiration.addingTimeInterval(-30))
        let second = try await provider.credentials()
        #expect(second.accessKeyID != first.accessKeyID, "IMDS rotates at least 5 minutes before expiry")
        #expect(second.expiration > first.expiration)
        #expect(!second.isExtended)
    }
}
