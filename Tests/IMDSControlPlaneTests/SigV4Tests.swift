import AWSQuery
import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

/// Requests signed by botocore's SigV4 signer (scripts/gen-sigv4-fixture.py).
struct SignedFixture: Decodable {
    var name: String
    var method: String
    var target: String
    var headers: [[String]]
    var body: String
    var accessKeyId: String
    var secretAccessKey: String
    var date: String

    static let all: [SignedFixture] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/sigv4-botocore.json")
        guard let data = try? Data(contentsOf: url), let list = try? JSONDecoder().decode([SignedFixture].self, from: data) else { return [] }
        return list
    }()

    var key: ControlPlaneAccessKey { ControlPlaneAccessKey(accessKeyID: accessKeyId, secretAccessKey: secretAccessKey) }
    var signedAt: Date { SigV4.parseAmzDate(date)! }
    var request: IMDSRequest {
        IMDSRequest(method: method, target: target, headers: headers.map { ($0[0], $0[1]) }, body: Array(body.utf8))
    }
    var authorization: String { headers.first { $0[0] == "Authorization" }![1] }
}

@Suite("SigV4")
struct SigV4Tests {
    @Test func fixturesArePresent() async {
        #expect(SignedFixture.all.count == 3)
    }

    @Test(arguments: SignedFixture.all.map(\.name))
    func botocoreSignaturesVerify(name: String) async throws {
        let f = try #require(SignedFixture.all.first { $0.name == name })
        let result = SigV4.verify(f.request, keys: [ControlPlaneAccessKey(accessKeyID: "OTHER", secretAccessKey: "x"), f.key], now: f.signedAt)
        #expect(try result.get() == f.key)
        // Within the allowed skew either way.
        #expect((try? SigV4.verify(f.request, keys: [f.key], now: f.signedAt.addingTimeInterval(899)).get()) != nil)
        #expect((try? SigV4.verify(f.request, keys: [f.key], now: f.signedAt.addingTimeInterval(-899)).get()) != nil)
    }

    @Test(arguments: SignedFixture.all.map(\.name))
    func signerMatchesBotocore(name: String) async throws {
        let f = try #require(SignedFixture.all.first { $0.name == name })
        let unsigned = f.headers.filter { !["authorization", "x-amz-date", "content-length"].contains($0[0].lowercased()) }.map { ($0[0], $0[1]) }
        let auth = SigV4.sign(method: f.method, target: f.target, headers: unsigned, body: Array(f.body.utf8),
                              accessKeyID: f.accessKeyId, secretAccessKey: f.secretAccessKey,
                              region: try #require(SigV4.Authorization(header: f.authorization)).region, date: f.signedAt)
        #expect(auth.first { $0.name == "Authorization" }?.value == f.authorization)
    }

    /// The `get-vanilla` case of AWS's SigV4 test suite.
    @Test func awsTestSuiteVanilla() async {
        let key = SigV4.signingKey(secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date: "20150830", region: "us-east-1", service: "service")
        let canonical = SigV4.canonicalRequest(
            method: "GET", target: "/", headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            signedHeaders: ["host", "x-amz-date"], payloadHash: SigV4.payloadHash([]))!
        let sts = SigV4.stringToSign(amzDate: "20150830T123600Z", scope: "20150830/us-east-1/service/aws4_request", canonicalRequest: canonical)
        #expect(SigV4.signature(signingKey: key, stringToSign: sts) == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    static func mutated(_ f: SignedFixture, _ change: (inout IMDSRequest) -> Void) -> IMDSRequest {
        var r = f.request
        change(&r)
        return r
    }

    @Test func refusals() async throws {
        let f = try #require(SignedFixture.all.first { $0.name == "modify" })
        func code(_ r: IMDSRequest, keys: [ControlPlaneAccessKey]? = nil, now: Date? = nil) -> (String, Int)? {
            if case .failure(let e) = SigV4.verify(r, keys: keys ?? [f.key], now: now ?? f.signedAt) { return (e.code, e.status) }
            return nil
        }
        // Wrong secret.
        #expect(code(f.request, keys: [ControlPlaneAccessKey(accessKeyID: f.accessKeyId, secretAccessKey: "wrong")])! == ("SignatureDoesNotMatch", 403))
        // Unknown key.
        #expect(code(f.request, keys: [ControlPlaneAccessKey(accessKeyID: "AKIDOTHER", secretAccessKey: f.secretAccessKey)])! == ("AuthFailure", 401))
        // Stale or future date.
        #expect(code(f.request, now: f.signedAt.addingTimeInterval(901))! == ("RequestExpired", 400))
        #expect(code(f.request, now: f.signedAt.addingTimeInterval(-901))! == ("RequestExpired", 400))
        // Tampered body, header, method, target.
        #expect(code(Self.mutated(f) { $0.body = Array(f.body.replacingOccurrences(of: "required", with: "optional").utf8) })! == ("SignatureDoesNotMatch", 403))
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Host" ? ("Host", "127.0.0.1:1340") : $0 } })! == ("SignatureDoesNotMatch", 403))
        #expect(code(Self.mutated(f) { $0.method = "GET" })! == ("SignatureDoesNotMatch", 403))
        #expect(code(Self.mutated(f) { $0.target = "/?x=1" })! == ("SignatureDoesNotMatch", 403))
        // No Authorization, a malformed one, no date.
        #expect(code(Self.mutated(f) { $0.headers.removeAll { $0.name == "Authorization" } })! == ("MissingAuthenticationToken", 403))
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Authorization" ? ("Authorization", "AWS4-HMAC-SHA256 Credential=x") : $0 } })! == ("IncompleteSignature", 400))
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Authorization" ? ("Authorization", "Basic dXNlcjpwYXNz") : $0 } })! == ("IncompleteSignature", 400))
        #expect(code(Self.mutated(f) { $0.headers.removeAll { $0.name == "X-Amz-Date" } })! == ("IncompleteSignature", 400))
        // SignedHeaders repeated or unsorted (a repeated name would repeat a header value in the
        // canonical request once per repetition).
        let repeated = f.authorization.replacingOccurrences(of: "SignedHeaders=", with: "SignedHeaders=" + String(repeating: "host;", count: 5000))
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Authorization" ? ("Authorization", repeated) : $0 } })! == ("IncompleteSignature", 400))
        let unsorted = f.authorization.replacingOccurrences(of: "SignedHeaders=", with: "SignedHeaders=x-amz-date;")
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Authorization" ? ("Authorization", unsorted) : $0 } })! == ("IncompleteSignature", 400))
        // Thousands of unsigned headers next to a valid signature: still verified, in one pass.
        var crowded = f.request
        crowded.headers += (1...20_000).map { ("X-Filler-\($0)", "v") }
        #expect(code(crowded) == nil)
        // Scoped to another service.
        let s3 = f.authorization.replacingOccurrences(of: "/ec2/", with: "/s3/")
        #expect(code(Self.mutated(f) { $0.headers = $0.headers.map { $0.name == "Authorization" ? ("Authorization", s3) : $0 } })! == ("SignatureDoesNotMatch", 403))
    }

    /// Signs `body` the way a client that puts `payloadHash` into its canonical request (and, with
    /// `header`, into `X-Amz-Content-Sha256`) would.
    static func signed(_ f: SignedFixture, body: String, payloadHash: String, header: Bool) -> IMDSRequest {
        var headers: [(name: String, value: String)] = [("Host", "localhost:8080"), ("X-Amz-Date", f.date)]
        if header { headers.append(("X-Amz-Content-Sha256", payloadHash)) }
        let signedNames = headers.map { $0.name.lowercased() }.sorted()
        let canonical = SigV4.canonicalRequest(method: "POST", target: "/", headers: headers, signedHeaders: signedNames, payloadHash: payloadHash)!
        let day = String(f.date.prefix(8)), scope = "\(day)/us-east-1/ec2/aws4_request"
        let sig = SigV4.signature(signingKey: SigV4.signingKey(secret: f.secretAccessKey, date: day, region: "us-east-1", service: "ec2"),
                                  stringToSign: SigV4.stringToSign(amzDate: f.date, scope: scope, canonicalRequest: canonical))
        headers.append(("Authorization", "\(SigV4.algorithm) Credential=\(f.accessKeyId)/\(scope), SignedHeaders=\(signedNames.joined(separator: ";")), Signature=\(sig)"))
        return IMDSRequest(method: "POST", target: "/", headers: headers, body: Array(body.utf8))
    }

    /// A captured signature never authorises another body: the payload hash is computed from the
    /// bytes received, and an `X-Amz-Content-Sha256` header (signed or not) that disagrees is refused.
    @Test func signatureCoversTheBody() throws {
        let f = try #require(SignedFixture.all.first { $0.name == "describe-filters" })
        let other = Array("Action=ModifyInstanceMetadataDefaults&Version=2016-11-15&HttpTokens=optional".utf8)
        let capturedHash = SigV4.payloadHash(Array(f.body.utf8))
        /// "accepted", or the refusal's code and status.
        func outcome(_ r: IMDSRequest) -> String {
            if case .failure(let e) = SigV4.verify(r, keys: [f.key], now: f.signedAt) { return "\(e.code) \(e.status)" }
            return "accepted"
        }
        // botocore's request as captured verifies; the same with another body does not.
        #expect(outcome(f.request) == "accepted")
        #expect(outcome(Self.mutated(f) { $0.body = other }) == "SignatureDoesNotMatch 403")
        // The captured body's hash added as an unsigned X-Amz-Content-Sha256 header does not rescue it.
        #expect(outcome(Self.mutated(f) { $0.body = other; $0.headers.append(("X-Amz-Content-Sha256", capturedHash)) })
                == "XAmzContentSHA256Mismatch 400")
        // Nor does a signed one: valid for the captured body, refused for any other.
        let withHeader = Self.signed(f, body: f.body, payloadHash: capturedHash, header: true)
        #expect(outcome(withHeader) == "accepted")
        var replay = withHeader
        replay.body = other
        #expect(outcome(replay) == "XAmzContentSHA256Mismatch 400")
        // A header that repeats the body's hash is fine even unsigned.
        #expect(outcome(Self.mutated(f) { $0.headers.append(("X-Amz-Content-Sha256", capturedHash)) }) == "accepted")
        // UNSIGNED-PAYLOAD and streaming modes are refused on the EC2 Query API, signed or not, in
        // header or canonical request only.
        for mode in ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"] {
            #expect(outcome(Self.signed(f, body: f.body, payloadHash: mode, header: true)) == "XAmzContentSHA256Mismatch 400")
            #expect(outcome(Self.signed(f, body: String(decoding: other, as: UTF8.self), payloadHash: mode, header: true)) == "XAmzContentSHA256Mismatch 400")
            #expect(outcome(Self.signed(f, body: f.body, payloadHash: mode, header: false)) == "SignatureDoesNotMatch 403")
        }
        // Any other hash in the header: refused.
        #expect(outcome(Self.signed(f, body: f.body, payloadHash: SigV4.payloadHash(other), header: true)) == "XAmzContentSHA256Mismatch 400")
        #expect(outcome(Self.signed(f, body: f.body, payloadHash: "not-a-hash", header: true)) == "XAmzContentSHA256Mismatch 400")
    }

    @Test func controlPlaneEnforcesSignatures() async throws {
        let f = try #require(SignedFixture.all.first { $0.name == "modify" })
        let h = Harness(accessKeys: [f.key])
        h.clock.set(f.signedAt.addingTimeInterval(30))
        let ok = await h.controlPlane.handle(f.request)
        expectOK(ok, "ModifyInstanceMetadataOptions")
        #expect(h.store.snapshot.instance(Harness.instanceID)?.options.httpTokens == .required)
        // Unsigned requests, as on loopback without keys, are refused once keys are configured.
        expectError(await h.action("DescribeInstances"), "MissingAuthenticationToken", status: 403)
        h.clock.advance(by: 3600)
        expectError(await h.controlPlane.handle(f.request), "RequestExpired")
    }

    @Test(arguments: [
        ("20260102T030405Z", 1_767_323_045.0),
        ("19700101T000000Z", 0.0),
    ])
    func amzDates(text: String, epoch: Double) {
        #expect(SigV4.parseAmzDate(text) == Date(timeIntervalSince1970: epoch))
        #expect(SigV4.amzDate(Date(timeIntervalSince1970: epoch)) == text)
    }

    @Test(arguments: ["2026-01-02T03:04:05Z", "20260102T030405", "20260102X030405Z", "2026010aT030405Z", ""])
    func badAmzDates(text: String) async {
        #expect(SigV4.parseAmzDate(text) == nil)
    }

    @Test(arguments: [("a b", "a%20b"), ("a/b~c-d_e.f", "a%2Fb~c-d_e.f"), ("✓", "%E2%9C%93"), ("*", "%2A")])
    func uriEncoding(raw: String, encoded: String) async {
        #expect(SigV4.uriEncode(raw) == encoded)
    }
}
