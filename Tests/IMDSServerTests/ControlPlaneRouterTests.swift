import Foundation
import IMDSAdmin
import IMDSControlPlane
import IMDSCore
import IMDSObservability
import IMDSTesting
import IMDSWire
import Testing

/// The control plane's one router, composed as `imds serve` composes it: every route reachable,
/// one 404/405 behaviour, and the admin API's bodies decoded with the types the CLI uses.
@Suite("Control-plane router")
struct ControlPlaneRouterTests {
    struct Surface {
        let imds = TestIMDS()
        let admin: AdminAPI
        let observability: ObservabilityAPI
        let ec2: EC2ControlPlane
        let router: ControlPlaneRouter

        init() {
            admin = AdminAPI(store: imds.store)
            observability = ObservabilityAPI(observability: Observability())
            ec2 = EC2ControlPlane(store: imds.store)
            router = ControlPlaneRouter([observability.routes, admin.routes, ec2.routes])
        }

        func call(_ method: String, _ target: String, _ body: [UInt8] = [], headers: [(String, String)] = []) async -> IMDSResponse {
            await router.respond(to: IMDSRequest(method: method, target: target, headers: headers.map { ($0.0, $0.1) }, body: body))
        }
    }

    static func refusalCode(_ r: IMDSResponse) -> String? {
        (try? AdminJSON.decode(AdminError.self, from: r.body))?.error.code
    }

    @Test func everyRouteIsReachable() async throws {
        let s = Surface()
        var reached = 0
        for group in s.router.groups {
            for route in group.routes {
                let path: String
                if route.pattern.isAnyPath {
                    path = "/"
                } else {
                    // A parameter gets a value no resource has: the handler's own 404, not the router's.
                    path = route.pattern.description.replacingOccurrences(of: "{id}", with: "nope")
                }
                let body: [UInt8] = route.method == "POST" || route.method == "PUT" ? Array("{}".utf8) : []
                let r = await s.call(route.method, path, body)
                let code = Self.refusalCode(r)
                #expect(code != "MethodNotAllowed" && !(code == "NotFound" && r.status == 404),
                        "\(route.method) \(path) (\(group.name)) did not reach its handler: \(r.status) \(r.bodyText)")
                #expect(r.header("Allow") == nil, "\(route.method) \(path)")
                reached += 1
            }
        }
        #expect(reached == 18 + 7 + 2)
    }

    @Test func unknownPathsAre404AndWrongMethods405() async throws {
        let s = Surface()
        for path in ["/admin/v1/nope", "/admin/v1/events/x/y/z", "/admin/v1/faults/x/complete", "/metrics/x", "/dashboard/x"] {
            let r = await s.call("GET", path)
            #expect(r.status == 404, "\(path)")
            #expect(Self.refusalCode(r) == "NotFound", "\(path)")
            #expect(r.header("Content-Type") == "application/json")
        }
        let cases: [(String, String, String)] = [
            ("PATCH", "/admin/v1/events", "GET, POST, DELETE"),
            ("GET", "/admin/v1/events/some-id", "DELETE"),
            ("GET", "/admin/v1/events/some-id/complete", "POST"),
            ("POST", "/admin/v1/health", "GET"),
            ("GET", "/admin/v1/credentials/scenario", "PUT, POST"),
            ("POST", "/metrics", "GET, HEAD"),
            ("PUT", "/admin/v1/callers", "GET, DELETE"),
            ("GET", "/admin/v1/tokens/invalidate/", "POST"),
        ]
        for (method, path, allowed) in cases {
            let r = await s.call(method, path)
            #expect(r.status == 405, "\(method) \(path)")
            #expect(r.header("Allow") == allowed, "\(method) \(path)")
            #expect(Self.refusalCode(r) == "MethodNotAllowed", "\(method) \(path)")
        }
        // The EC2 Query API owns every other path, and refuses other methods as EC2 does.
        let delete = await s.call("DELETE", "/")
        #expect(delete.status == 400)
        #expect(delete.bodyText.contains("<Code>UnsupportedOperation</Code>"))
        #expect(delete.header("Content-Type") == "text/xml;charset=UTF-8")
        let described = await s.call("POST", "/some/base/path", Array("Action=DescribeInstances&Version=2016-11-15".utf8))
        #expect(described.status == 200 && described.bodyText.contains("<DescribeInstancesResponse"))
        let viaGet = await s.call("GET", "/?Action=DescribeInstances&Version=2016-11-15")
        #expect(viaGet.status == 200)
        // Trailing and doubled slashes do not change the resource; the query is not part of the path.
        #expect(await s.call("GET", "/admin/v1/").status == 200)
        #expect(await s.call("GET", "/admin/v1//health?x=1").status == 200)
        #expect(await s.call("HEAD", "/metrics").omitBody)
    }

    @Test func aGateRefusesBeforeAnyRoute() async {
        let s = Surface()
        let gated = ControlPlaneRouter(s.router.groups, gate: { _ in .json(403, AdminError(code: "Refused", message: "no")) })
        for target in ["/", "/admin/v1/health", "/metrics", "/admin/v1/nope"] {
            let r = await gated.respond(to: IMDSRequest(method: "GET", target: target))
            #expect(r.status == 403 && Self.refusalCode(r) == "Refused", "\(target)")
        }
    }

    /// The bodies the CLI sends, built from the shared types, are accepted by the server, and its
    /// answers decode into the shared types with the values that went in.
    @Test func adminTypesRoundTripBetweenServerAndCLI() async throws {
        let s = Surface()
        let id = s.imds.store.snapshot.primaryInstanceID
        func exchange<T: Decodable>(_ method: String, _ path: String, _ body: (some Encodable)?, _ type: T.Type,
                                    status: Int = 200) async throws -> T {
            let r = await s.call(method, path, body.map { AdminJSON.encode($0) } ?? [])
            #expect(r.status == status, "\(method) \(path): \(r.bodyText)")
            return try AdminJSON.decode(type, from: r.body)
        }
        let none: AdminInstanceSelector? = nil

        let health = try await exchange("GET", AdminPaths.health, none, AdminHealth.self)
        #expect(health == AdminHealth(instances: [id]))

        let spot = try await exchange("POST", AdminPaths.events, AdminEventRequest(
            type: "spot-interruption", at: "2030-01-02T03:04:05Z", action: "stop", time: "2030-01-02T03:06:05Z", instanceID: id),
            AdminEvent.self, status: 201)
        #expect(spot.type == "spot-interruption" && spot.action == "stop" && spot.at == "2030-01-02T03:04:05Z"
                && spot.time == "2030-01-02T03:06:05Z" && !spot.active)
        let maintenance = try await exchange("POST", AdminPaths.events, AdminEventRequest(
            type: "scheduled-maintenance", at: "now", code: "instance-reboot", description: "reboot", notBefore: "+1d"),
            AdminEvent.self, status: 201)
        #expect(maintenance.code == "instance-reboot" && maintenance.state == "active" && maintenance.notAfter != nil)
        let lifecycle = try await exchange("POST", AdminPaths.events, AdminEventRequest(type: "autoscaling-lifecycle", state: "Warmed:Stopped"),
                                           AdminEvent.self, status: 201)
        #expect(lifecycle.state == "Warmed:Stopped" && lifecycle.active)

        let completed = try await exchange("POST", AdminPaths.event(maintenance.id, .complete), none, AdminEvent.self)
        #expect(completed.state == "completed")

        let fault = try await exchange("POST", AdminPaths.faults, AdminFaultRequest(
            type: "error", path: "/latest/meta-data/iam/*", probability: 0.5, status: 503, count: 3, instanceID: id),
            AdminFault.self, status: 201)
        #expect(fault == AdminFault(id: fault.id, type: "error", probability: 0.5, path: "/latest/meta-data/iam/*", status: 503,
                                    instanceID: id, remaining: 3))

        let scenario = AdminCredentialScenario(scenario: "error", code: "AssumeRoleUnauthorizedAccess", message: "no", instanceID: id)
        let changed = try await exchange("PUT", AdminPaths.credentialScenario, scenario, AdminCredentialScenarioChanged.self)
        #expect(changed == AdminCredentialScenarioChanged(
            instanceID: id, credentialScenario: AdminCredentialScenario(scenario: "error", code: "AssumeRoleUnauthorizedAccess", message: "no")))

        let list = try await exchange("GET", AdminPaths.events, none, AdminEventList.self)
        #expect(list.instanceID == id)
        #expect(Set(list.events.map(\.id)) == [spot.id, maintenance.id, lifecycle.id])
        #expect(list.events.contains(completed))
        #expect(list.faults == [fault])
        #expect(list.credentialScenario == changed.credentialScenario)

        let instances = try await exchange("GET", AdminPaths.instances, none, AdminInstanceList.self)
        #expect(instances.instances.map(\.instanceID) == [id])
        #expect(instances.instances.first?.metadataOptions.httpTokens == "optional")
        #expect(instances.instances.first?.events == list.events)

        let invalidated = try await exchange("POST", AdminPaths.invalidateTokens, AdminInstanceSelector(instanceID: id), AdminTokensInvalidated.self)
        #expect(invalidated == AdminTokensInvalidated(instanceID: id))

        #expect(try await exchange("DELETE", AdminPaths.fault(fault.id), none, AdminRemoval.self) == AdminRemoval(removed: .id(fault.id)))
        #expect(try await exchange("DELETE", AdminPaths.event(spot.id), none, AdminRemoval.self) == AdminRemoval(removed: .id(spot.id)))
        #expect(try await exchange("DELETE", AdminPaths.events, none, AdminRemoval.self) == AdminRemoval(removed: .count(2)))
        #expect(try await exchange("GET", AdminPaths.faults, none, AdminFaultList.self) == AdminFaultList(faults: []))

        let refused = try await exchange("POST", AdminPaths.events, AdminEventRequest(type: "nope"), AdminError.self, status: 400)
        #expect(refused.error.code == "InvalidParameterValue" && refused.error.message.contains("type"))
        let missing = try await exchange("DELETE", AdminPaths.event("nope"), none, AdminError.self, status: 404)
        #expect(missing.error.code == "EventNotFound")
    }
}
