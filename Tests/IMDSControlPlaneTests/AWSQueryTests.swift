import AWSQuery
import Foundation
@testable import IMDSControlPlane
import IMDSCore
import Testing

/// The one AWS Query module: what the clients write (form bodies, signatures) is what the server
/// reads and verifies, and what the server writes (XML) is what the clients read.
@Suite("AWS Query: one implementation for clients and server")
struct AWSQueryTests {
    static let key = ControlPlaneAccessKey(accessKeyID: "AKIDIMDSTEST", secretAccessKey: "imds-test-secret-0123456789")

    /// Signs as `imds options`/`imds events` and the STS client sign (``SigV4/clientHeaders``), and sends
    /// through the server's verifier.
    static func signedRequest(_ params: [(name: String, value: String)], target: String = "/", date: Date,
                              key: ControlPlaneAccessKey = key) -> IMDSRequest {
        let body = Array(QueryParameters(params).formEncoded.utf8)
        let signed = SigV4.clientHeaders(
            method: "POST", target: target, host: "127.0.0.1:1339",
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: body,
            credentials: SigV4.Credentials(accessKeyID: key.accessKeyID, secretAccessKey: key.secretAccessKey),
            region: "eu-west-2", date: date)
        #expect(!signed.contains { $0.name == "Host" })
        // The transport adds Host, as the server receives it.
        return IMDSRequest(method: "POST", target: target, headers: [("Host", "127.0.0.1:1339")] + signed, body: body)
    }

    @Test func aRequestSignedByTheClientsVerifiesOnTheServer() throws {
        let now = Date(timeIntervalSince1970: 1_767_323_045)
        let params: [(name: String, value: String)] = [
            ("Action", "CreateTags"), ("Version", EC2Query.apiVersion), ("ResourceId.1", "i-0abc1234def567890"),
            ("Tag.1.Key", "Name / with spaces & symbols"), ("Tag.1.Value", "ünïcode +=%"),
        ]
        let request = Self.signedRequest(params, target: "/base/path?x=1", date: now)
        #expect(try SigV4.verify(request, keys: [Self.key], now: now.addingTimeInterval(60)).get() == Self.key)

        // The server decodes the body the client encoded into the same parameters.
        #expect(QueryParameters.parse(form: String(decoding: request.body, as: UTF8.self)[...])?.pairs.map { [$0.name, $0.value] }
                == params.map { [$0.name, $0.value] })

        // Any change to what was signed is refused: the body, the target, a signed header, the key.
        var tampered = request
        tampered.body = Array(QueryParameters(params.dropLast() + [("Tag.1.Value", "other")]).formEncoded.utf8)
        #expect(SigV4.verify(tampered, keys: [Self.key], now: now) == .failure(.signatureMismatch))
        tampered = request
        tampered.target = "/base/path?x=2"
        #expect(SigV4.verify(tampered, keys: [Self.key], now: now) == .failure(.signatureMismatch))
        tampered = request
        tampered.headers = tampered.headers.map { $0.name == "Host" ? ("Host", "evil:1339") : $0 }
        #expect(SigV4.verify(tampered, keys: [Self.key], now: now) == .failure(.signatureMismatch))
        let otherSecret = ControlPlaneAccessKey(accessKeyID: Self.key.accessKeyID, secretAccessKey: "another-secret")
        #expect(SigV4.verify(request, keys: [otherSecret], now: now) == .failure(.signatureMismatch))
        #expect(SigV4.verify(request, keys: [], now: now) == .failure(.authFailure))
        #expect(SigV4.verify(request, keys: [Self.key], now: now.addingTimeInterval(16 * 60)) == .failure(.requestExpired))
    }

    @Test func rejectionsMapToEC2Errors() {
        let cases: [(SigV4.Rejection, String, Int)] = [
            (.missingAuthentication, "MissingAuthenticationToken", 403),
            (.incompleteSignature("x"), "IncompleteSignature", 400),
            (.authFailure, "AuthFailure", 401),
            (.requestExpired, "RequestExpired", 400),
            (.scopeMismatch("x"), "SignatureDoesNotMatch", 403),
            (.payloadNotSigned("UNSIGNED-PAYLOAD"), "XAmzContentSHA256Mismatch", 400),
            (.payloadHashMismatch, "XAmzContentSHA256Mismatch", 400),
            (.signatureMismatch, "SignatureDoesNotMatch", 403),
        ]
        for (rejection, code, status) in cases {
            let e = EC2Error(rejection)
            #expect(e.code == code && e.status == status, "\(rejection)")
        }
    }

    @Test func amzDates() {
        let d = Date(timeIntervalSince1970: 1_767_323_045)  // 2026-01-02T03:04:05Z
        #expect(SigV4.amzDate(d) == "20260102T030405Z")
        #expect(SigV4.parseAmzDate("20260102T030405Z") == d)
        for bad in ["20261302T030405Z", "20260230T030405Z", "20260102T250405Z", "20260102 030405Z", "2026010T030405Z", "２0260102T030405Z"] {
            #expect(SigV4.parseAmzDate(bad) == nil, "\(bad)")
        }
    }

    @Test func theClientsReadWhatTheServerWrites() async {
        let cp = Harness()
        let described = await cp.action("DescribeInstances").bodyText
        let found = EC2ResponseReader.metadataOptions(described)
        #expect(found.map(\.instanceID) == ["i-0abc1234def567890"])
        #expect(found.first?.options.map(\.name) == ["state", "httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "httpProtocolIpv6", "instanceMetadataTags"])
        #expect(found.first?.options.first { $0.name == "httpTokens" }?.value == "optional")

        let modified = await cp.action("ModifyInstanceMetadataOptions", [("InstanceId", "i-0abc1234def567890"), ("HttpTokens", "required")]).bodyText
        let result = EC2ResponseReader.metadataOptions(modified)
        #expect(result.first?.instanceID == "i-0abc1234def567890")
        #expect(result.first?.options.first { $0.name == "state" }?.value == "pending")
        #expect(result.first?.options.first { $0.name == "httpTokens" }?.value == "required")

        let error = EC2Error("InvalidParameterValue", "A value of '<&\"x\">' is not valid").xml(requestID: "r-1")
        #expect(EC2ResponseReader.error(error)?.code == "InvalidParameterValue")
        #expect(EC2ResponseReader.error(error)?.message == "A value of '<&\"x\">' is not valid")
        #expect(EC2ResponseReader.error(described) == nil)
    }

    @Test func theXMLReader() throws {
        // STS's shape: a namespace, attributes, whitespace, entities and a character reference.
        let sts = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
              <AssumeRoleResult>
                <Credentials>
                  <AccessKeyId>ASIA&amp;1</AccessKeyId>
                  <SecretAccessKey a="x>y" b='z'>s&lt;e&gt;c&#x2F;r&#101;t</SecretAccessKey>
                  <SessionToken><![CDATA[to<ken]]></SessionToken>
                  <Empty/>
                </Credentials>
              </AssumeRoleResult>
            </AssumeRoleResponse>
            """
        let root = try #require(XMLTree.parse(sts))
        #expect(root.name == "AssumeRoleResponse")
        #expect(root.at("AssumeRoleResult/Credentials/AccessKeyId")?.text == "ASIA&1")
        #expect(root.first("SecretAccessKey")?.text == "s<e>c/ret")
        #expect(root.first("SessionToken")?.text == "to<ken")
        #expect(root.first("Empty") == XMLTree(name: "Empty"))
        #expect(root.all("Credentials").count == 1)
        #expect(root.first("Nope") == nil)

        let stsError = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"
        #expect(EC2ResponseReader.error(stsError)?.code == "AccessDenied")

        for bad in ["", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a/><b/>", "<a>&bogus;</a>", "<a>&#xFFFFFFFF;</a>", "<a", "<a><!--</a>",
                    String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)] {
            #expect(XMLTree.parse(bad) == nil, "\(bad.prefix(40))")
        }
    }

    /// The client side (the CLI's control-plane client, the STS client) must not import the
    /// server's modules: they share `AWSQuery` and `IMDSWire` with it instead.
    @Test func theClientsDoNotImportTheServer() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let client = ["Sources/AWSQuery", "Sources/IMDSWire", "Sources/IMDSClient", "Sources/IMDSCredentials"]
        let cliClients = ["ControlPlaneClient", "ControlPlaneCall", "Options", "OptionsPrinter", "AdminOptions", "Events", "Faults", "Render"]
            .map { "Sources/IMDSCommand/\($0).swift" }
        var files: [String] = cliClients
        for dir in client {
            let names = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(dir).path)
            files += names.filter { $0.hasSuffix(".swift") }.map { "\(dir)/\($0)" }
            for sub in names where !sub.hasSuffix(".swift") {
                files += try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("\(dir)/\(sub)").path)
                    .filter { $0.hasSuffix(".swift") }.map { "\(dir)/\(sub)/\($0)" }
            }
        }
        #expect(files.count > 20)
        for file in files {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            for server in ["IMDSControlPlane", "IMDSServer", "IMDSAdmin", "IMDSObservability"] {
                #expect(!text.contains("import \(server)\n"), "\(file) imports \(server)")
            }
        }
    }
}
