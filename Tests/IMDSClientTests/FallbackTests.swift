import Foundation
@testable import IMDSClient
import Testing

/// A PUT outcome and what the client must do with it.
struct FallbackCase: Sendable, CustomTestStringConvertible {
    var put: Step
    var name: String
    /// With the fallback allowed: true = the GET goes out without a token and succeeds.
    var fallsBack: Bool
    /// The error when it does not fall back (or when the fallback is disabled).
    var errorStatus: Int?
    var errorTransport: IMDSTransportError?
    var testDescription: String { name }
}

let fallbackCases: [FallbackCase] = [
    FallbackCase(put: .respond(400), name: "400 is an error, never a fallback", fallsBack: false, errorStatus: 400),
    FallbackCase(put: .respond(403), name: "403 → v1", fallsBack: true, errorStatus: 403),
    FallbackCase(put: .respond(404), name: "404 → v1", fallsBack: true, errorStatus: 404),
    FallbackCase(put: .respond(405), name: "405 → v1", fallsBack: true, errorStatus: 405),
    FallbackCase(put: .fail(.readTimeout), name: "timeout → v1", fallsBack: true, errorTransport: .readTimeout),
    FallbackCase(put: .respond(503), name: "503 (after retries) → v1 for this request", fallsBack: true, errorStatus: 503),
]

@Suite("Token fallback and retries (stub transport)")
struct FallbackTests {
    /// GETs without a token succeed; GETs with one succeed too.
    static func server(put: Step) -> StubTransport {
        StubTransport { request, _ in
            request.method == "PUT" ? put : .respond(200, body: request.header("x-aws-ec2-metadata-token") == nil ? "v1" : "v2")
        }
    }

    @Test(arguments: fallbackCases)
    func fallbackAllowed(_ c: FallbackCase) async throws {
        let stub = Self.server(put: c.put)
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        if c.fallsBack {
            let r = try await client.fetch("instance-id")
            #expect(r.text == "v1")
            #expect(!r.usedToken)
            #expect(stub.gets.allSatisfy { $0.header("x-aws-ec2-metadata-token") == nil })
        } else {
            let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("instance-id") }
            #expect(error == .tokenRequestInvalid)
            #expect(stub.gets.isEmpty, "no GET after a 400")
        }
    }

    @Test(arguments: fallbackCases)
    func fallbackDisabled(_ c: FallbackCase) async throws {
        let stub = Self.server(put: c.put)
        var config = testConfiguration()
        config.v1FallbackDisabled = true
        let client = IMDSClient(configuration: config, transport: stub)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("instance-id") }
        #expect(error?.status == c.errorStatus)
        #expect(error?.transportError == c.errorTransport)
        #expect(stub.gets.isEmpty, "no token-less GET when v1 is disabled")
    }

    @Test func tokenIsSentAndCached() async throws {
        let stub = Self.server(put: .token())
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        for _ in 0..<3 { #expect(try await client.string("instance-id") == "v2") }
        #expect(stub.puts == 1)
        #expect(stub.gets.allSatisfy { $0.header("x-aws-ec2-metadata-token") == "TOKEN-A" })
        let put = stub.requests.first { $0.method == "PUT" }!
        #expect(put.path == "/latest/api/token")
        #expect(put.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600")
    }

    @Test func stickyFallbackIsLiftedByA401() async throws {
        // PUT 403 at first (v1 from then on), later IMDS requires tokens: the v1 GET gets 401, the
        // client asks for a token again and retries with it.
        let stub = StubTransport { request, n in
            if request.method == "PUT" { return n == 0 ? .respond(403) : .token("TOKEN-B") }
            if request.header("x-aws-ec2-metadata-token") == nil { return n == 0 ? .respond(200, body: "v1") : .respond(401) }
            return .respond(200, body: "v2")
        }
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        #expect(try await client.string("instance-id") == "v1")
        #expect(try await client.string("instance-id") == "v2")
        #expect(stub.puts == 2)
    }

    @Test func timeoutFallbackIsStickyAndNotRetried() async throws {
        let stub = Self.server(put: .fail(.readTimeout))
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        for _ in 0..<3 { _ = try await client.fetch("instance-id") }
        #expect(stub.puts == 1, "one timed-out PUT, then v1 without asking again")
    }

    @Test func retriesServerErrorsAndThrottling() async throws {
        let stub = StubTransport { request, n in
            if request.method == "PUT" { return .token() }
            return n < 2 ? .respond(n == 0 ? 503 : 429) : .respond(200, body: "ok")
        }
        let client = IMDSClient(configuration: testConfiguration(retries: 3), transport: stub)
        #expect(try await client.string("x") == "ok")
        #expect(stub.gets.count == 3)
    }

    @Test func retriesAreBounded() async throws {
        let stub = StubTransport { request, _ in request.method == "PUT" ? .token() : .respond(500) }
        let client = IMDSClient(configuration: testConfiguration(retries: 2), transport: stub)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("x") }
        #expect(error == .httpError(status: 500, path: "/latest/meta-data/x"))
        #expect(stub.gets.count == 3, "1 attempt + 2 retries")
    }

    @Test(arguments: [400, 403, 404, 405])
    func clientErrorsAreNotRetried(status: Int) async throws {
        let stub = StubTransport { request, _ in request.method == "PUT" ? .token() : .respond(status) }
        let client = IMDSClient(configuration: testConfiguration(retries: 3), transport: stub)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("x") }
        #expect(error?.status == status)
        #expect(stub.gets.count == 1)
    }

    @Test func connectionErrorsAreRetried() async throws {
        let stub = StubTransport { request, n in
            if request.method == "PUT" { return .token() }
            return n == 0 ? .fail(.connectionClosed) : .respond(200, body: "ok")
        }
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        #expect(try await client.string("x") == "ok")
        let refused = StubTransport { _, _ in .fail(.connectionRefused) }
        let c2 = IMDSClient(configuration: testConfiguration(retries: 1), transport: refused)
        let error = await #expect(throws: IMDSClientError.self) { try await c2.fetch("x") }
        #expect(error?.transportError == .connectionRefused)
        #expect(refused.requests.count == 4, "PUT ×2, then the v1 GET ×2")
    }

    @Test func a401WithATokenRefreshesItOnce() async throws {
        let stub = StubTransport { request, n in
            if request.method == "PUT" { return .token(n == 0 ? "OLD" : "NEW") }
            return request.header("x-aws-ec2-metadata-token") == "NEW" ? .respond(200, body: "ok") : .respond(401)
        }
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        #expect(try await client.string("x") == "ok")
        #expect(stub.puts == 2)
        // Always 401: one refresh, then the error.
        let always = StubTransport { request, _ in request.method == "PUT" ? .token() : .respond(401) }
        let c2 = IMDSClient(configuration: testConfiguration(), transport: always)
        let error = await #expect(throws: IMDSClientError.self) { try await c2.fetch("x") }
        #expect(error?.status == 401)
        #expect(always.puts == 2)
    }

    @Test func tokenResponseWithoutTTLHeaderIsAnError() async throws {
        let stub = StubTransport { request, _ in request.method == "PUT" ? .respond(200, body: "T") : .respond(200, body: "x") }
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        await #expect(throws: IMDSClientError.self) { try await client.fetch("x") }
    }

    @Test func forcedV1NeverAsksForAToken() async throws {
        let stub = Self.server(put: .token())
        var config = testConfiguration()
        config.forceV1 = true
        let client = IMDSClient(configuration: config, transport: stub)
        #expect(try await client.string("x") == "v1")
        #expect(stub.puts == 0)
    }

    @Test func disabledMakesNoRequest() async throws {
        let stub = Self.server(put: .token())
        var config = testConfiguration()
        config.disabled = true
        let client = IMDSClient(configuration: config, transport: stub)
        let error = await #expect(throws: IMDSClientError.self) { try await client.fetch("x") }
        #expect(error == .disabled)
        await #expect(throws: IMDSClientError.self) { try await client.token() }
        #expect(stub.requests.isEmpty)
    }

    @Test func tokenCommandNeverFallsBack() async throws {
        let stub = Self.server(put: .respond(403))
        let client = IMDSClient(configuration: testConfiguration(), transport: stub)
        let error = await #expect(throws: IMDSClientError.self) { try await client.token() }
        #expect(error?.status == 403)
    }

    @Test func backoffGrowsAndIsCapped() {
        let base = Duration.milliseconds(100), cap = Duration.seconds(1)
        #expect(IMDSClient.backoffCap(attempt: 1, base: base, max: cap) == .milliseconds(100))
        #expect(IMDSClient.backoffCap(attempt: 2, base: base, max: cap) == .milliseconds(200))
        #expect(IMDSClient.backoffCap(attempt: 3, base: base, max: cap) == .milliseconds(400))
        #expect(IMDSClient.backoffCap(attempt: 5, base: base, max: cap) == .seconds(1))
    }
}
