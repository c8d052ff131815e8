import Foundation
import IMDSCore
import IMDSTesting
import Testing

@Suite("Events")
struct EventTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z

    /// A scripted timeline observed by a poller, as aws-node-termination-handler polls.
    @Test func timelineAppearsOnTime() async throws {
        let clock = ManualClock(Self.start)
        let imds = try TestIMDS(yaml: """
            instance:
              instance-life-cycle: spot
              events:
                - {type: rebalance-recommendation, at: +30s}
                - {type: spot-interruption, at: +90s, action: terminate, time: +210s}
                - {type: autoscaling-lifecycle, at: +100s, state: "Warmed:Stopped"}
            """, manualClock: clock)
        func poll() -> (rebalance: IMDSResponse, spot: IMDSResponse, termination: IMDSResponse, lifecycle: IMDSResponse) {
            let t = imds.token()
            return (imds.get("/latest/meta-data/events/recommendations/rebalance", token: t),
                    imds.get("/latest/meta-data/spot/instance-action", token: t),
                    imds.get("/latest/meta-data/spot/termination-time", token: t),
                    imds.get("/latest/meta-data/autoscaling/target-lifecycle-state", token: t))
        }
        var p = poll()
        #expect(p.rebalance.status == 404 && p.spot.status == 404 && p.termination.status == 404 && p.lifecycle.status == 404)
        #expect(imds.get("/latest/meta-data/events/").bodyText == "maintenance/")
        clock.advance(by: 29)
        #expect(poll().rebalance.status == 404)
        clock.advance(by: 1)
        p = poll()
        #expect(p.rebalance.status == 200)
        #expect(p.rebalance.bodyText == "{\"noticeTime\": \"2027-01-15T08:00:30Z\"}")
        #expect(p.rebalance.header("Content-Type") == "text/plain")
        #expect(imds.get("/latest/meta-data/events/").bodyText == "maintenance/\nrecommendations/")
        #expect(p.spot.status == 404)
        clock.advance(by: 60)
        p = poll()
        #expect(p.spot.bodyText == "{\"action\": \"terminate\", \"time\": \"2027-01-15T08:03:30Z\"}")
        #expect(p.termination.bodyText == "2027-01-15T08:03:30Z")
        #expect(imds.get("/latest/meta-data/").bodyText.split(separator: "\n").contains("spot/"))
        #expect(p.lifecycle.status == 404)
        clock.advance(by: 10)
        #expect(poll().lifecycle.bodyText == "Warmed:Stopped")
        #expect(imds.get("/latest/meta-data/autoscaling/").bodyText == "target-lifecycle-state")
    }

    @Test func maintenanceScheduledThenHistory() async throws {
        let clock = ManualClock(Self.start)
        let imds = try TestIMDS(yaml: """
            instance:
              events:
                - type: scheduled-maintenance
                  code: system-reboot
                  description: scheduled reboot
                  not-before: 2027-01-21T09:00:43Z
                  not-after: 2027-01-21T09:17:23Z
            """, manualClock: clock)
        let id = imds.store.snapshot.primaryInstanceID
        let scheduled = imds.get("/latest/meta-data/events/maintenance/scheduled").bodyText
        let eventID = try #require(imds.store.snapshot.instance(id)?.events.first?.id)
        #expect(eventID.hasPrefix("instance-event-") && eventID.count == 32)
        #expect(scheduled == """
            [
              {
                "NotBefore" : "21 Jan 2027 09:00:43 GMT",
                "Code" : "system-reboot",
                "Description" : "scheduled reboot",
                "EventId" : "\(eventID)",
                "NotAfter" : "21 Jan 2027 09:17:23 GMT",
                "State" : "active"
              }
            ]
            """)
        #expect(imds.get("/latest/meta-data/events/maintenance/history").bodyText == "[]")
        var events = imds.instance.events
        events[0].maintenanceState = .completed
        try await imds.store.apply([.setEvents(instanceID: id, events)])
        #expect(imds.get("/latest/meta-data/events/maintenance/scheduled").bodyText == "[]")
        let history = imds.get("/latest/meta-data/events/maintenance/history").bodyText
        #expect(history.contains("\"Description\" : \"[Completed] scheduled reboot\""))
        #expect(history.contains("\"State\" : \"completed\""))
        let json = try JSONSerialization.jsonObject(with: Data(history.utf8)) as? [[String: String]]
        #expect(json?.first?["EventId"] == eventID)
    }

    @Test func instanceActionAndClearing() async throws {
        let clock = ManualClock(Self.start)
        let imds = TestIMDS(manualClock: clock)
        let id = imds.store.snapshot.primaryInstanceID
        #expect(imds.get("/latest/meta-data/instance-action").bodyText == "none")
        let event = EventSpec(kind: .instanceAction("shutdown"), at: .relative(seconds: 5)).resolve(base: clock.now())
        try await imds.store.apply([.setEvents(instanceID: id, imds.instance.events + [event])])
        #expect(imds.get("/latest/meta-data/instance-action").bodyText == "none")
        clock.advance(by: 5)
        #expect(imds.get("/latest/meta-data/instance-action").bodyText == "shutdown")
        try await imds.store.apply([.setEvents(instanceID: id, [])])
        #expect(imds.get("/latest/meta-data/instance-action").bodyText == "none")
    }

    @Test(arguments: [
        ("instance:\n  events:\n    - {type: meteor}\n", "events[0].type"),
        ("instance:\n  events:\n    - {type: spot-interruption, action: explode}\n", "terminate, stop, hibernate"),
        ("instance:\n  events:\n    - {type: rebalance-recommendation, at: tomorrow}\n", "not a time"),
        ("instance:\n  events:\n    - {type: autoscaling-lifecycle}\n", "InService"),
        ("instance:\n  events: {type: rebalance-recommendation}\n", "expected a list"),
        ("faults:\n  - {type: latency}\n", "milliseconds"),
        ("faults:\n  - {type: throttle, probability: 2}\n", "at most 1"),
        ("faults:\n  - {type: token-status, status: 500}\n", "403, 404, 405"),
    ])
    func badTimelines(yaml: String, words: String) {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains(words), "\(error)")
        }
    }
}

@Suite("Faults")
struct FaultTests {
    static func imds(_ faults: [Fault], random: @escaping @Sendable () -> Double = { 0 }) -> TestIMDS {
        var config = IMDSConfig.embeddedDefault
        config.faults = faults
        return TestIMDS(config: config, random: random)
    }

    @Test func throttleAndErrorsOnAPathPattern() async {
        let imds = Self.imds([Fault(kind: .throttle, pathPattern: "/latest/meta-data/iam/*"),
                              Fault(kind: .error(status: 503), pathPattern: "/latest/meta-data/placement/*")])
        let r = imds.get("/latest/meta-data/iam/info")
        #expect(r.status == 429 && r.reason == "Too Many Requests")
        #expect(r.outcome.fault?.hasPrefix("throttle fault-") == true)
        #expect(imds.get("/latest/meta-data/placement/region").status == 503)
        #expect(imds.get("/latest/meta-data/instance-id").status == 200)
    }

    @Test func probabilityIsHonoured() async {
        let imds = Self.imds([Fault(kind: .error(status: 500), probability: 0.25)], random: { 0.5 })
        #expect(imds.get("/latest/meta-data/instance-id").status == 200)
        let always = Self.imds([Fault(kind: .error(status: 500), probability: 0.25)], random: { 0.1 })
        #expect(always.get("/latest/meta-data/instance-id").status == 500)
    }

    @Test func connectionFaults() async {
        #expect(Self.imds([Fault(kind: .reset)]).get("/latest/meta-data/").action == .reset)
        #expect(Self.imds([Fault(kind: .hang)]).get("/latest/meta-data/").action == .hang)
        let latency = Self.imds([Fault(kind: .latency(milliseconds: 250))]).get("/latest/meta-data/instance-id")
        #expect(latency.status == 200 && latency.delayMilliseconds == 250)
    }

    @Test(arguments: [403, 404, 405])
    func tokenStatusForcesFallback(status: Int) async {
        let imds = Self.imds([Fault(kind: .tokenStatus(status))])
        #expect(imds.request("PUT", "/latest/api/token", headers: [(ttlHeader, "60")]).status == status)
        #expect(imds.get("/latest/meta-data/instance-id").status == 200)  // v1 still works
    }

    @Test func tokenTimeoutAndMissingTTLHeader() async {
        #expect(Self.imds([Fault(kind: .tokenTimeout)]).request("PUT", "/latest/api/token", headers: [(ttlHeader, "60")]).action == .hang)
        let r = Self.imds([Fault(kind: .tokenTTLHeaderMissing)]).request("PUT", "/latest/api/token", headers: [(ttlHeader, "60")])
        #expect(r.status == 200 && r.body.count == 56)
        #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == nil)
    }

    @Test func invalidatedTokensGet401ThenNewTokensWork() async throws {
        let imds = Self.imds([])
        let old = imds.token()
        #expect(imds.get("/latest/meta-data/instance-id", token: old).status == 200)
        try await imds.store.apply([.invalidateTokens(instanceID: imds.store.snapshot.primaryInstanceID)])
        #expect(imds.get("/latest/meta-data/instance-id", token: old).status == 401)
        #expect(imds.get("/latest/meta-data/instance-id", token: imds.token()).status == 200)
    }

    @Test func removeFaults() async throws {
        let imds = Self.imds([Fault(kind: .throttle), Fault(kind: .reset)])
        #expect(imds.store.snapshot.faults.count == 2)
        try await imds.store.apply([.removeFaults(id: imds.store.snapshot.faults[0].id)])
        #expect(imds.store.snapshot.faults.count == 1)
        try await imds.store.apply([.removeFaults(id: nil)])
        #expect(imds.store.snapshot.faults.isEmpty)
        #expect(imds.get("/latest/meta-data/instance-id").status == 200)
    }

    @Test(arguments: [("/latest/*", "/latest/meta-data/x", true), ("*/iam/*", "/latest/meta-data/iam/info", true),
                      ("/latest/api/token", "/latest/api/token", true), ("/latest/meta-data/", "/latest/meta-data/x", false),
                      ("*", "/", true), ("/a*b*c", "/aXbYc", true), ("/a*b*c", "/aXbY", false)])
    func globs(pattern: String, path: String, matches: Bool) {
        #expect(Fault(kind: .throttle, pathPattern: pattern).matches(path: path) == matches)
    }
}

@Suite("Credential scenarios")
struct ScenarioTests {
    @Test func scenarios() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
        let imds = TestIMDS(manualClock: clock)
        let id = imds.store.snapshot.primaryInstanceID
        func creds() -> [String: String]? {
            let r = imds.get("/latest/meta-data/iam/security-credentials/app-role", token: imds.token())
            return r.status == 200 ? (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: String] : nil
        }
        func expiresIn() -> Double {
            creds().flatMap { $0["Expiration"] }.flatMap(TimeFormat.parseISO8601).map { $0.timeIntervalSince(clock.now()) } ?? .nan
        }
        #expect(expiresIn() > 3600)
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .nearExpiry(seconds: 240))])
        #expect(expiresIn() == 240)
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .expired)])
        #expect(expiresIn() == -3600)
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .error(code: "AssumeRoleUnauthorizedAccess", message: "EC2 cannot assume the role app-role."))])
        #expect(creds()?["Code"] == "AssumeRoleUnauthorizedAccess")
        #expect(creds()?["AccessKeyId"] == nil)
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .detached)])
        #expect(imds.get("/latest/meta-data/iam/security-credentials/").status == 404)
        #expect(imds.get("/latest/meta-data/iam/info").status == 404)
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .roleChanged("other-role"))])
        #expect(imds.get("/latest/meta-data/iam/security-credentials/").bodyText == "other-role")
        #expect(imds.get("/latest/meta-data/iam/security-credentials/app-role").status == 404)
        #expect(imds.get("/latest/meta-data/iam/info").bodyText.contains("instance-profile/app-role"))
        try await imds.store.apply([.setCredentialScenario(instanceID: id, .normal)])
        #expect(imds.get("/latest/meta-data/iam/security-credentials/").bodyText == "app-role")
        #expect(expiresIn() > 3600)
    }
}

@Suite("Fault paths")
struct FaultPathTests {
    /// Every fault kind sees the same normalized path: a pattern on a directory's slash form matches
    /// latency (applied after the response) exactly as it matches throttling (applied before).
    @Test func latencyAndThrottleMatchTheSamePath() async {
        let latency = FaultTests.imds([Fault(kind: .latency(milliseconds: 5), pathPattern: "/latest/meta-data/")])
        #expect(latency.get("/latest//meta-data/").delayMilliseconds == 5)
        #expect(latency.get("/latest/meta-data/instance-id").delayMilliseconds == 0)
        let throttle = FaultTests.imds([Fault(kind: .throttle, pathPattern: "/latest/meta-data/")])
        #expect(throttle.get("/latest//meta-data/").status == 429)
    }
}
