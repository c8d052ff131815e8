import Foundation
import IMDSAdmin
import IMDSControlPlane
import IMDSCore
import IMDSObservability
@testable import IMDSServer
import IMDSTesting
import IMDSWire
import Testing

/// The one status → reason table (``HTTPStatus``), pinned, and every responder of the project
/// checked against it: the data plane, the listeners' answers to malformed requests, the EC2 Query
/// API, the admin API and the observability API.
@Suite("Status → reason table")
struct StatusTableTests {
    @Test func theTable() {
        #expect(HTTPStatus.reasons == [
            200: "OK", 201: "Created", 301: "Moved Permanently",
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 412: "Precondition Failed", 413: "Content Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
        ])
        // EC2's metadata service: `HTTP/1.1 405 Not Allowed` (captured), nothing else differs.
        #expect(HTTPStatus.dataPlaneReasons == [405: "Not Allowed"])
        #expect(HTTPStatus.reason(405, plane: .data) == "Not Allowed")
        #expect(HTTPStatus.reason(405, plane: .control) == "Method Not Allowed")
        for (status, reason) in HTTPStatus.reasons where status != 405 {
            #expect(HTTPStatus.reason(status, plane: .data) == reason)
        }
        #expect(HTTPStatus.reason(418) == "Client Error")
        #expect(HTTPStatus.reason(599) == "Server Error")
    }

    static func statusLine(_ r: IMDSResponse) -> String {
        String(decoding: r.serialized().prefix { $0 != 13 }, as: UTF8.self)
    }

    static func expectFromTable(_ r: IMDSResponse, _ plane: HTTPStatus.Plane, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(statusLine(r) == "HTTP/1.1 \(r.status) \(HTTPStatus.reason(r.status, plane: plane))", "\(what)", sourceLocation: sourceLocation)
    }

    @Test func dataPlaneResponses() throws {
        let imds = TestIMDS()
        let token = try #require(imds.token())
        let cases: [(String, String, [(String, String)], Int)] = [
            ("GET", "/latest/meta-data/instance-id", [], 200),
            ("GET", "/latest/meta-data/iam", [], 301),
            ("PUT", "/latest/api/token", [], 400),
            ("GET", "/latest/meta-data/instance-id", [(IMDSHeader.token, "garbage")], 401),
            ("PUT", "/2021-03-23/api/token", [(IMDSHeader.tokenTTLRequest, "60")], 403),
            ("GET", "/latest/meta-data/nope", [(IMDSHeader.token, token)], 404),
            ("GET", "/latest/api/token", [], 405),
            ("POST", "/latest/meta-data/instance-id", [], 405),
        ]
        for (method, path, headers, status) in cases {
            let r = imds.request(method, path, headers: headers)
            #expect(r.status == status, "\(method) \(path)")
            Self.expectFromTable(r, .data, "\(method) \(path)")
        }
        #expect(Self.statusLine(imds.request("GET", "/latest/api/token")) == "HTTP/1.1 405 Not Allowed")
        for status in [400, 413, 431] {
            let r = imds.engine.malformedRequestResponse(status: status)
            Self.expectFromTable(r, .data, "data plane, malformed \(status)")
            #expect(r.bodyText.contains("<title>\(status) - \(HTTPStatus.reason(status))</title>"))
        }
        #expect(Self.statusLine(imds.engine.malformedRequestResponse(status: 413)) == "HTTP/1.1 413 Content Too Large")
    }

    @Test func controlPlaneResponses() async throws {
        let imds = TestIMDS()
        let ec2 = EC2ControlPlane(store: imds.store)
        for status in [400, 413, 431] {
            Self.expectFromTable(IMDSResponse.httpErrorJSON(status: status), .control, "control plane (JSON), malformed \(status)")
            let xml = ec2.httpErrorResponse(status: status)
            Self.expectFromTable(xml, .control, "control plane (EC2 XML), malformed \(status)")
            #expect(xml.bodyText.hasPrefix("<?xml") && xml.bodyText.contains("<Response><Errors><Error><Code>"), "\(xml.bodyText)")
        }
        #expect(Self.statusLine(ec2.httpErrorResponse(status: 413)) == "HTTP/1.1 413 Content Too Large")

        func query(_ form: String) async -> IMDSResponse {
            await ec2.handle(IMDSRequest(method: "POST", target: "/", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                                   body: Array(form.utf8)))
        }
        let ec2Cases: [(String, Int)] = [
            ("Action=DescribeInstances&Version=2016-11-15", 200),
            ("Action=Nope&Version=2016-11-15", 400),
            ("Action=DescribeInstances&Version=2016-11-15&DryRun=true", 412),
        ]
        for (form, status) in ec2Cases {
            let r = await query(form)
            #expect(r.status == status, "\(form)")
            Self.expectFromTable(r, .control, form)
        }

        let admin = AdminAPI(store: imds.store)
        let adminCases: [(String, String, String?, Int)] = [
            ("GET", "/admin/v1/health", nil, 200),
            ("POST", "/admin/v1/events", #"{"type": "rebalance-recommendation"}"#, 201),
            ("POST", "/admin/v1/events", #"{"type": "nope"}"#, 400),
            ("GET", "/admin/v1/nope", nil, 404),
            ("PATCH", "/admin/v1/events", nil, 405),
        ]
        for (method, path, body, status) in adminCases {
            let r = await admin.respond(to: IMDSRequest(method: method, target: path, body: Array((body ?? "").utf8)))
            #expect(r.status == status, "\(method) \(path)")
            Self.expectFromTable(r, .control, "\(method) \(path)")
        }

        let observability = ObservabilityAPI(observability: Observability())
        for (method, path, status) in [("GET", "/metrics", 200), ("POST", "/metrics", 405)] {
            let r = await observability.respond(to: IMDSRequest(method: method, target: path))
            #expect(r.status == status, "\(method) \(path)")
            Self.expectFromTable(r, .control, "\(method) \(path)")
        }
    }
}
