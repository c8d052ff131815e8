import Foundation
import IMDSCore
import IMDSTesting
import Testing

@testable import IMDSObservability

/// Metrics in a fleet: MetadataNoToken and MetadataNoTokenRejected per instance, unknown callers
/// counted apart, and the instance label bounded however many instances call.
@Suite("Fleet metrics")
struct FleetMetricsTests {
    static let yaml = """
        instances:
          - {instance-id: i-0aaaaaaaaaaaaaaa1, local-ipv4: 10.0.1.31}
          - {instance-id: i-0bbbbbbbbbbbbbbb2, local-ipv4: 10.0.1.32, metadata-options: {http-tokens: required}}
        """

    func record(_ imds: TestIMDS, _ metrics: IMDSMetrics, from ip: String) -> IMDSResponse {
        let request = IMDSRequest(method: "GET", target: "/latest/meta-data/instance-id", peer: PeerAddress(ip: ip, port: 5000))
        let response = imds.respond(to: request)
        metrics.record(request: request, response: response, seconds: 0.0005)
        return response
    }

    @Test func noTokenCountsArePerInstance() throws {
        let imds = try TestIMDS(yaml: Self.yaml)
        let metrics = IMDSMetrics()
        #expect(record(imds, metrics, from: "10.0.1.31").status == 200)
        #expect(record(imds, metrics, from: "10.0.1.31").status == 200)
        #expect(record(imds, metrics, from: "10.0.1.32").status == 401)
        #expect(record(imds, metrics, from: "10.0.1.99").status == 404)
        let text = metrics.exposition()
        #expect(sample(text, "imds_metadata_no_token_total", ["instance_id": "i-0aaaaaaaaaaaaaaa1"]) == 2)
        #expect(sample(text, "imds_metadata_no_token_total", ["instance_id": "i-0bbbbbbbbbbbbbbb2"]) == 0)
        #expect(sample(text, "imds_metadata_no_token_rejected_total", ["instance_id": "i-0bbbbbbbbbbbbbbb2"]) == 1)
        #expect(sample(text, "imds_metadata_no_token_rejected_total", ["instance_id": "i-0aaaaaaaaaaaaaaa1"]) == 0)
        #expect(sample(text, "imds_unknown_caller_requests_total") == 1)
        #expect(sample(text, "imds_requests_total", ["instance_id": "unknown", "version": "none", "status": "404", "category": "unknown-caller"]) == 1)
    }

    @Test func theInstanceLabelIsBounded() async throws {
        let imds = try TestIMDS(yaml: "instance: {subnet-ipv4-cidr-block: 10.0.0.0/16}\n")
        let template = imds.store.snapshot.primary.instance
        var changes: [StoreChange] = []
        for n in 0..<100 {
            changes.append(.launch(LaunchSpec(
                instanceID: String(format: "i-%017x", n + 1), reservationID: "r-0123456789abcdef0", imageID: template.amiID,
                instanceType: template.instanceType, privateIPv4: "10.0.2.\(n + 1)", options: MetadataOptions.ec2Defaults,
                launchTime: Date(timeIntervalSince1970: 1_767_323_045))))
        }
        try await imds.store.apply(changes)
        let metrics = IMDSMetrics()
        for n in 0..<100 { #expect(record(imds, metrics, from: "10.0.2.\(n + 1)").status == 200) }
        let text = metrics.exposition()
        let series = text.split(separator: "\n").filter { $0.hasPrefix("imds_metadata_no_token_total{") }
        #expect(series.count <= 65, "at most 64 instance labels and \"other\"")
        #expect(sample(text, "imds_metadata_no_token_total", ["instance_id": "other"]) == 36)
    }
}
