import Foundation
import IMDSCore
import IMDSTesting
import Testing

@testable import IMDSObservability

/// The value of one sample in a Prometheus exposition, e.g. `imds_requests_total{…}`; labels are
/// matched as a set, so their order does not matter. 0 when absent.
func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let (series, value) = (line.split(separator: " ").dropLast().joined(separator: " "), line.split(separator: " ").last.map(String.init) ?? "")
        let metric: Substring
        var got: [String: String] = [:]
        if let brace = series.firstIndex(of: "{") {
            metric = series[..<brace]
            let inner = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
            for pair in inner.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { got[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
        } else {
            metric = series[...]
        }
        guard metric == name, labels.allSatisfy({ got[$0.key] == $0.value }), got.count == labels.count || labels.isEmpty && got.isEmpty else { continue }
        total += Double(value) ?? 0
    }
    return total
}

@Suite("Metrics")
struct MetricsTests {
    static let yaml = "instance:\n  instance-id: i-0aaaabbbbccccdddd\n  iam:\n    role: app-role\n"

    func record(_ imds: TestIMDS, _ metrics: IMDSMetrics, _ method: String, _ path: String, token: String? = nil) -> IMDSResponse {
        var headers: [(String, String)] = []
        if let token { headers.append((IMDSHeader.token, token)) }
        if method == "PUT" { headers.append((IMDSHeader.tokenTTLRequest, "60")) }
        let request = IMDSRequest(method: method, target: path, headers: headers.map { ($0.0, $0.1) }, peer: PeerAddress(ip: "127.0.0.1", port: 5000))
        let response = imds.respond(to: request)
        metrics.record(request: request, response: response, seconds: 0.0005)
        return response
    }

    @Test("MetadataNoToken counts answered v1 requests; MetadataNoTokenRejected counts v1 refused under required")
    func noTokenVersusRejected() async throws {
        let imds = try TestIMDS(yaml: Self.yaml)
        let metrics = IMDSMetrics()
        let id = "i-0aaaabbbbccccdddd"
        #expect(record(imds, metrics, "GET", "/latest/meta-data/instance-id").status == 200)
        #expect(record(imds, metrics, "GET", "/latest/meta-data/").status == 200)
        let token = try #require(imds.token(ttl: 60))
        #expect(record(imds, metrics, "GET", "/latest/meta-data/ami-id", token: token).status == 200)
        var o = imds.instance.options
        o.httpTokens = .required
        try await imds.store.apply([.setOptions(instanceID: id, o)])
        #expect(record(imds, metrics, "GET", "/latest/meta-data/instance-id").status == 401)
        #expect(record(imds, metrics, "GET", "/latest/user-data").status == 401)
        #expect(record(imds, metrics, "GET", "/latest/meta-data/instance-id", token: token).status == 200)
        #expect(record(imds, metrics, "GET", "/latest/meta-data/instance-id", token: "AQAEAnot-a-valid-token-at-all-000000000000000000000000==").status == 401)

        let text = metrics.exposition()
        #expect(sample(text, "imds_metadata_no_token_total", ["instance_id": id]) == 2)
        #expect(sample(text, "imds_metadata_no_token_rejected_total", ["instance_id": id]) == 2)
        #expect(sample(text, "imds_tokens_rejected_total", ["instance_id": id, "reason": "missing"]) == 2)
        #expect(sample(text, "imds_tokens_rejected_total", ["instance_id": id, "reason": "malformed"])
                + sample(text, "imds_tokens_rejected_total", ["instance_id": id, "reason": "bad_signature"]) == 1)
        #expect(sample(text, "imds_requests_total", ["instance_id": id, "version": "v1", "status": "401", "category": "meta-data"]) == 1)
        #expect(sample(text, "imds_requests_total", ["instance_id": id, "version": "v1", "status": "401", "category": "user-data"]) == 1)
        #expect(sample(text, "imds_requests_total", ["instance_id": id, "version": "v2", "status": "200", "category": "meta-data"]) == 2)
        #expect(sample(text, "imds_request_duration_seconds_count", ["version": "v1", "category": "meta-data"]) == 3)
        #expect(text.contains("# HELP imds_metadata_no_token_total "))
        #expect(text.contains("# TYPE imds_request_duration_seconds histogram"))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var method: String
        var path: String
        var v2: Bool
        var version: String
        var status: String
        var category: String
        var testDescription: String { "\(method) \(path) \(v2 ? "v2" : "v1") → \(version) \(status) \(category)" }
    }

    @Test("requests are counted by version, status and category", arguments: [
        Case(method: "GET", path: "/latest/meta-data/instance-id", v2: false, version: "v1", status: "200", category: "meta-data"),
        Case(method: "GET", path: "/latest/meta-data/instance-id", v2: true, version: "v2", status: "200", category: "meta-data"),
        Case(method: "GET", path: "/latest/meta-data/no-such-thing", v2: true, version: "v2", status: "404", category: "meta-data"),
        Case(method: "GET", path: "/latest/dynamic/instance-identity/document", v2: false, version: "v1", status: "200", category: "dynamic"),
        Case(method: "GET", path: "/", v2: false, version: "v1", status: "200", category: "versions"),
        Case(method: "PUT", path: "/latest/api/token", v2: false, version: "none", status: "200", category: "token"),
        Case(method: "GET", path: "/latest/api/token", v2: false, version: "none", status: "405", category: "token"),
        Case(method: "POST", path: "/latest/meta-data/", v2: false, version: "none", status: "405", category: "other"),
    ])
    func byLabels(_ c: Case) throws {
        let imds = try TestIMDS(yaml: Self.yaml)
        let metrics = IMDSMetrics()
        let token = c.v2 ? imds.token(ttl: 60) : nil
        _ = record(imds, metrics, c.method, c.path, token: token)
        let text = metrics.exposition()
        #expect(sample(text, "imds_requests_total", ["instance_id": "i-0aaaabbbbccccdddd", "version": c.version, "status": c.status, "category": c.category]) == 1, "\(text)")
        // Exactly one request was counted in total.
        let all = text.split(separator: "\n").filter { $0.hasPrefix("imds_requests_total{") }.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
        #expect(all == 1)
    }

    @Test("tokens issued are counted; odd statuses and categories stay in bounded label sets")
    func tokensAndBounds() async throws {
        let imds = try TestIMDS(yaml: Self.yaml)
        let metrics = IMDSMetrics()
        _ = record(imds, metrics, "PUT", "/latest/api/token")
        _ = record(imds, metrics, "PUT", "/latest/api/token")
        #expect(IMDSMetrics.statusLabel(IMDSResponse(status: 418, reason: "Teapot", headers: [], body: [])) == "other")
        var hang = IMDSResponse(status: 0, reason: "", headers: [], body: [])
        hang.action = .hang
        #expect(IMDSMetrics.statusLabel(hang) == "hang")
        #expect(IMDSMetrics.categoryLabel("anything-a-client-sends") == "other")
        #expect(IMDSMetrics.rejectionLabel("weird") == "other")
        let label = BoundedLabel(capacity: 2)
        #expect([label.value("a"), label.value("b"), label.value("c"), label.value("a")] == ["a", "b", "other", "a"])
        #expect(sample(metrics.exposition(), "imds_tokens_issued_total", ["instance_id": "i-0aaaabbbbccccdddd"]) == 2)
    }

    @Test("credential rotations and STS failures are detected from the served documents")
    func credentialRotation() async throws {
        let metrics = IMDSMetrics()
        func doc(_ code: String, _ updated: String) -> [UInt8] {
            Array("{\n  \"Code\" : \"\(code)\",\n  \"LastUpdated\" : \"\(updated)\",\n  \"Type\" : \"AWS-HMAC\",\n  \"SecretAccessKey\" : \"s3cr3t\"\n}".utf8)
        }
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("Success", "2024-01-01T00:00:00Z"))
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("Success", "2024-01-01T00:00:00Z"))
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("Success", "2024-01-01T06:00:00Z"))
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("AssumeRoleUnauthorizedAccess", "2024-01-01T06:00:00Z"))
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("AssumeRoleUnauthorizedAccess", "2024-01-01T06:00:00Z"))
        metrics.observeCredentials(instanceID: "i-1", role: "r", document: doc("Success", "2024-01-01T07:00:00Z"))
        let text = metrics.exposition()
        #expect(sample(text, "imds_credential_rotations_total", ["instance_id": "i-1"]) == 1)
        #expect(sample(text, "imds_credential_errors_total", ["instance_id": "i-1", "code": "AssumeRoleUnauthorizedAccess"]) == 1)
        #expect(!text.contains("s3cr3t"))
        #expect(IMDSMetrics.credentialsRole("/latest/meta-data/iam/security-credentials/app-role") == "app-role")
        #expect(IMDSMetrics.credentialsRole("/latest/meta-data/iam/security-credentials/") == nil)
        #expect(IMDSMetrics.jsonStringField("Code", in: doc("Success", "x")) == "Success")
    }

    @Test("the STS client's observer counts calls and failures by error code")
    func stsHook() async {
        let metrics = IMDSMetrics()
        metrics.recordSTSCall(instanceID: "i-1", success: true, message: "AssumeRole arn:aws:iam::1:role/r: new credentials ASIA…")
        metrics.recordSTSCall(instanceID: "i-1", success: false, message: "AssumeRole arn:aws:iam::1:role/r failed: 403 AccessDenied: not allowed")
        metrics.recordSTSCall(instanceID: "i-1", success: false, message: "AssumeRole arn:aws:iam::1:role/r failed: cannot reach http://127.0.0.1:1: connection refused")
        metrics.recordSTSCall(instanceID: "i-1", success: false, message: "something else")
        let text = metrics.exposition()
        #expect(sample(text, "imds_sts_requests_total", ["result": "success"]) == 1)
        #expect(sample(text, "imds_sts_requests_total", ["result": "failure"]) == 3)
        #expect(sample(text, "imds_sts_failures_total", ["instance_id": "i-1", "code": "AccessDenied"]) == 1)
        #expect(sample(text, "imds_sts_failures_total", ["instance_id": "i-1", "code": "Unreachable"]) == 1)
        #expect(sample(text, "imds_sts_failures_total", ["instance_id": "i-1", "code": "Other"]) == 1)
    }

    @Test("the credentials document served by the engine feeds the rotation detector")
    func engineCredentials() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_700_000_000))
        let imds = try TestIMDS(yaml: Self.yaml, manualClock: clock)
        let metrics = IMDSMetrics()
        let path = "/latest/meta-data/iam/security-credentials/app-role"
        #expect(record(imds, metrics, "GET", path).status == 200)
        clock.advance(by: 7 * 3600)
        #expect(record(imds, metrics, "GET", path).status == 200)
        #expect(sample(metrics.exposition(), "imds_credential_rotations_total", ["instance_id": "i-0aaaabbbbccccdddd"]) == 1)
    }

    @Test("active connections come from the source set by the server")
    func connections() async {
        let metrics = IMDSMetrics()
        metrics.setConnectionSource { [("data", 3), ("control", 1)] }
        let text = metrics.exposition()
        #expect(sample(text, "imds_active_connections", ["plane": "data"]) == 3)
        #expect(sample(text, "imds_active_connections", ["plane": "control"]) == 1)
    }
}
