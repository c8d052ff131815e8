import Foundation
import IMDSCore
import IMDSTesting
import Testing

/// `throttle:`: each instance's own request allowance, EC2's 429 beyond it.
@Suite("Per-instance throttling")
struct ThrottleTests {
    static let yaml = """
        instances:
          - {instance-id: i-0aaaaaaaaaaaaaaa1, local-ipv4: 10.0.1.31, caller-addresses: [127.0.0.2]}
          - {instance-id: i-0bbbbbbbbbbbbbbb2, local-ipv4: 10.0.1.32, caller-addresses: [127.0.0.3]}
        throttle: {requests-per-second: 2, burst: 3}
        """

    @Test func eachInstanceHasItsOwnAllowance() throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_767_323_045))
        let imds = try TestIMDS(yaml: Self.yaml, manualClock: clock)
        func get(_ from: String) -> IMDSResponse { imds.request("GET", "/latest/meta-data/instance-id", from: from) }
        #expect((0..<3).map { _ in get("127.0.0.2").status } == [200, 200, 200], "the burst")
        let throttled = get("127.0.0.2")
        #expect(throttled.status == 429)
        #expect(throttled.reason == "Too Many Requests")
        #expect(throttled.bodyText.contains("<title>429 - Too Many Requests</title>"))
        #expect(throttled.outcome.throttled && throttled.outcome.instanceID == "i-0aaaaaaaaaaaaaaa1")
        #expect(imds.request("PUT", "/latest/api/token", headers: [(IMDSHeader.tokenTTLRequest, "60")], from: "127.0.0.2").status == 429,
                "token requests count too")
        // B's allowance is its own.
        #expect((0..<3).map { _ in get("127.0.0.3").status } == [200, 200, 200])
        // Unknown callers are not instances: 404, never throttled.
        #expect((0..<5).map { _ in get("127.0.0.9").status } == Array(repeating: 404, count: 5))
        // Refilled at 2 per second.
        clock.advance(by: 1)
        #expect((0..<3).map { _ in get("127.0.0.2").status } == [200, 200, 429])
        clock.advance(by: 60)
        #expect((0..<4).map { _ in get("127.0.0.2").status } == [200, 200, 200, 429], "never more than the burst")
    }

    @Test func offUnlessConfigured() throws {
        let imds = try TestIMDS(yaml: "instance: {instance-id: i-0aaaaaaaaaaaaaaa1}")
        #expect(imds.store.snapshot.throttle == nil)
        #expect((0..<500).allSatisfy { _ in imds.request("GET", "/latest/meta-data/instance-id").status == 200 })
    }

    @Test(arguments: [
        ("throttle: {burst: 3}", "throttle.requests-per-second"),
        ("throttle: {requests-per-second: 0}", "throttle.requests-per-second"),
        ("throttle: {requests-per-second: 5, burst: -1}", "throttle.burst"),
        ("throttle: {requests-per-second: 5, per-instance: true}", "per-instance"),
        ("throttle: 5", "throttle"),
    ])
    func badSettingsAreClearErrors(yaml: String, names: String) {
        _ = Self.configError(yaml, names: names)
    }

    /// Parses `yaml`, which must be refused with an error containing `names`; returns the error text.
    static func configError(_ yaml: String, names: String) -> String {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("accepted: \(yaml)")
            return ""
        } catch {
            #expect("\(error)".contains(names), "\(error)")
            return "\(error)"
        }
    }
}
