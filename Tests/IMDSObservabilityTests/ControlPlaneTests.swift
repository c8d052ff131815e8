import Foundation
import IMDSAdmin
import IMDSCore
import IMDSServer
import IMDSTesting
import Testing

@testable import IMDSObservability

@Suite("Observability endpoints")
struct ControlPlaneTests {
    func router(_ imds: TestIMDS, _ obs: Observability) -> ControlPlaneRouter {
        ControlPlaneRouter([ObservabilityAPI(observability: obs).routes, AdminAPI(store: imds.store).routes])
    }

    func call(_ r: ControlPlaneRouter, _ method: String, _ target: String, _ body: String = "") async -> IMDSResponse {
        await r.respond(to: IMDSRequest(method: method, target: target, body: Array(body.utf8)))
    }

    @Test("/metrics, /dashboard, /admin/v1/callers and /admin/v1/traffic answer; other methods get 405")
    func endpoints() async throws {
        let imds = TestIMDS()
        let obs = Observability()
        let r = router(imds, obs)
        let request = IMDSRequest(method: "GET", target: "/latest/meta-data/instance-id", peer: PeerAddress(ip: "127.0.0.1", port: 1))
        obs.requestCompleted(request, imds.respond(to: request), seconds: 0.001, connection: nil)

        let metrics = await call(r, "GET", "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(sample(metrics.bodyText, "imds_metadata_no_token_total", ["instance_id": imds.store.snapshot.instanceIDs[0]]) == 1)

        let dash = await call(r, "GET", "/dashboard")
        #expect(dash.status == 200 && dash.bodyText.contains("<title>imds dashboard</title>"))

        let callers = await call(r, "GET", "/admin/v1/callers")
        let doc = try JSONDecoder().decode(CallersDocument.self, from: Data(callers.body))
        #expect(doc.totals.v1 == 1)
        #expect(doc.callers.first?.v1 == 1)
        #expect(doc.callers.first?.attribution == "skipped")

        let traffic = await call(r, "GET", "/admin/v1/traffic")
        let t = try #require(try JSONSerialization.jsonObject(with: Data(traffic.body)) as? [String: Any])
        let series = try #require(t["series"] as? [[String: Int]])
        #expect(series.count == TrafficWindow.seconds)
        #expect(series.reduce(0) { $0 + ($1["v1"] ?? 0) } == 1)

        #expect(await call(r, "POST", "/metrics").status == 405)
        #expect(await call(r, "DELETE", "/admin/v1/callers").status == 200)
        #expect(obs.callers.snapshot().isEmpty)
    }

    @Test("the traffic window keeps per-second counts for two minutes")
    func trafficWindow() {
        let w = TrafficWindow()
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        w.record(.v1, at: t0)
        w.record(.v2, at: t0)
        w.record(.v1Rejected, at: t0.addingTimeInterval(1))
        var s = w.series(now: t0.addingTimeInterval(1))
        #expect(s.last == { var b = TrafficWindow.Bucket(); b.v1Rejected = 1; return b }())
        #expect(s[s.count - 2].v1 == 1 && s[s.count - 2].v2 == 1)
        s = w.series(now: t0.addingTimeInterval(500))
        #expect(s.allSatisfy { $0 == TrafficWindow.Bucket() })
    }
}
