import Foundation
import IMDSCore
import IMDSWire

/// The project's own admin API (JSON over HTTP on the control-plane listener): events, faults,
/// token invalidation and credential scenarios. Documented in `docs/admin-api.md`; its bodies are
/// the Codable types of `IMDSWire` (``AdminEvent``, ``AdminFault``, …), which the CLI decodes.
///
/// A translator from requests into ``StoreChange``s: a change is acknowledged only once the
/// ``InstanceStore`` has made it durable (so an invalidation survives `kill -9` and a restart).
/// Transport-free: ``routes`` go into the control plane's ``ControlPlaneRouter``; `respond(to:)`
/// answers with the admin routes alone (tests, fuzzing).
public struct AdminAPI: AsyncResponder {
    public static let prefix = AdminPaths.prefix

    let store: any InstanceStore
    let clock: any IMDSClock
    let log: @Sendable (String) -> Void
    /// The PEM certificate of the key that signs identity documents (nil: none is served).
    let identityCertificate: String?

    /// - Parameters:
    ///   - identityCertificate: the PEM certificate that verifies identity documents, served at
    ///     `GET /admin/v1/identity/certificate` (nil: that path answers 404).
    ///   - log: receives one line per change (fault added, event triggered, …).
    public init(store: any InstanceStore, clock: any IMDSClock = SystemClock(), identityCertificate: String? = nil,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.store = store
        self.clock = clock
        self.identityCertificate = identityCertificate
        self.log = log
    }

    struct Failure: Error {
        var status: Int
        var code: String
        var message: String
    }

    /// What a handler answers: a status and a body of one of the admin types.
    typealias Answer = (status: Int, body: any Encodable & Sendable)

    /// The admin API's routes, owning every path under `/admin/v1` (the observability API adds its
    /// own there: `/admin/v1/callers`, `/admin/v1/traffic`).
    public var routes: RouteGroup {
        func route(_ method: String, _ path: String, _ handler: @escaping @Sendable (AdminAPI, RoutedRequest) async throws -> Answer) -> Route {
            Route(method, Self.prefix + path) { [self] request in await self.answer { try await handler(self, request) } }
        }
        return RouteGroup(
            name: "admin",
            routes: [
                route("GET", "", { api, _ in api.health() }),
                route("GET", "/health", { api, _ in api.health() }),
                route("GET", "/store", { api, _ in api.storeStatus() }),
                route("GET", "/instances", { api, _ in api.instances() }),
                route("GET", "/identity/certificate", { api, _ in try api.certificate() }),
                route("GET", "/events", { api, r in try api.listEvents(r) }),
                route("POST", "/events", { api, r in try await api.addEvent(r) }),
                route("DELETE", "/events", { api, r in try await api.clearEvents(r) }),
                route("DELETE", "/events/{id}", { api, r in try await api.clearEvent(r) }),
                route("POST", "/events/{id}/complete", { api, r in try await api.finishMaintenance(r, .complete) }),
                route("POST", "/events/{id}/cancel", { api, r in try await api.finishMaintenance(r, .cancel) }),
                route("GET", "/faults", { api, _ in api.listFaults() }),
                route("POST", "/faults", { api, r in try await api.addFault(r) }),
                route("DELETE", "/faults", { api, _ in try await api.clearFaults() }),
                route("DELETE", "/faults/{id}", { api, r in try await api.clearFault(r) }),
                route("POST", "/tokens/invalidate", { api, r in try await api.invalidateTokens(r) }),
                route("PUT", "/credentials/scenario", { api, r in try await api.setCredentialScenario(r) }),
                route("POST", "/credentials/scenario", { api, r in try await api.setCredentialScenario(r) }),
            ],
            prefixes: [Self.prefix])
    }

    public func respond(to request: IMDSRequest) async -> IMDSResponse {
        await ControlPlaneRouter([routes]).respond(to: request)
    }

    /// Runs a handler; its refusals become `{"error": {"code", "message"}}`.
    func answer(_ body: () async throws -> Answer) async -> IMDSResponse {
        do {
            let (status, value) = try await body()
            return IMDSResponse.json(status, value)
        } catch let f as Failure {
            return IMDSResponse.json(f.status, AdminError(code: f.code, message: f.message))
        } catch let e as StoreError {
            switch e {
            case .unknownInstance(let id):
                return IMDSResponse.json(404, AdminError(code: "InvalidInstanceID.NotFound", message: "The instance ID '\(id)' does not exist"))
            case .unknownFault(let id):
                return IMDSResponse.json(404, AdminError(code: "FaultNotFound", message: "no fault '\(id)'"))
            case .invalid(let why):
                return IMDSResponse.json(400, AdminError(code: "InvalidParameterValue", message: why))
            case .unavailable:
                return IMDSResponse.json(503, AdminError(code: "ServiceUnavailable", message: e.description))
            case .notDurable, .closed:
                return IMDSResponse.json(500, AdminError(code: "InternalError", message: e.description))
            }
        } catch let e as ConfigError {
            let message = (e.path.map { $0.isEmpty ? "" : "\($0): " } ?? "") + e.message
            return IMDSResponse.json(400, AdminError(code: "InvalidParameterValue", message: message))
        } catch {
            return IMDSResponse.json(400, AdminError(code: "BadRequest", message: "\(error)"))
        }
    }

    func instanceID(_ query: [String: String], _ body: [String: Any]? = nil) throws -> String {
        let snapshot = store.snapshot
        let id = query["instance-id"] ?? (body?["instance-id"] as? String) ?? snapshot.primaryInstanceID
        guard snapshot.instance(id) != nil else {
            throw Failure(status: 404, code: "InvalidInstanceID.NotFound", message: "The instance ID '\(id)' does not exist")
        }
        return id
    }

    // MARK: - Handlers

    func certificate() throws -> Answer {
        guard let pem = identityCertificate else {
            throw Failure(status: 404, code: "NoIdentityCertificate", message: "this server signs no identity documents")
        }
        return (200, AdminIdentityCertificate(certificate: pem))
    }

    func health() -> Answer {
        (200, AdminHealth(instances: store.snapshot.instanceIDs))
    }

    func storeStatus() -> Answer {
        let h = store.health
        return (200, AdminStoreStatus(kind: h.kind, reachable: h.reachable, unreachableSince: h.unreachableSince.map(TimeFormat.iso8601),
                                      appliedRevision: h.appliedRevision, location: h.location,
                                      openedAt: h.openedAt, batchesApplied: h.batchesApplied))
    }

    func instances() -> Answer {
        let now = clock.now()
        return (200, AdminInstanceList(instances: store.snapshot.allInstances.map { Self.describe($0, now: now) }))
    }

    func listEvents(_ r: RoutedRequest) throws -> Answer {
        let now = clock.now()
        let snapshot = store.snapshot
        let id = try instanceID(r.query)
        guard let rt = snapshot.instance(id) else { throw StoreError.unknownInstance(id) }
        return (200, AdminEventList(instanceID: id, events: rt.events.map { Self.describe($0, now: now) },
                                    faults: snapshot.faults.map(Self.describe), credentialScenario: Self.describe(rt.credentialScenario)))
    }

    /// Changes the events of one instance through the store (read-modify-write, serialized).
    func changeEvents<T: Sendable>(_ id: String, _ body: ([InstanceEvent]) throws -> ([InstanceEvent], T)) async throws -> T {
        try await store.transact { snapshot in
            guard let rt = snapshot.instance(id) else { throw StoreError.unknownInstance(id) }
            let (events, result) = try body(rt.events)
            return ([.setEvents(instanceID: id, events)], result)
        }.result
    }

    func addEvent(_ r: RoutedRequest) async throws -> Answer {
        let now = clock.now()
        let spec = try EventSpec.decode(json: try Self.strip(r.body, keys: ["instance-id"]))
        let id = try instanceID(r.query, Self.object(r.body))
        let event = spec.resolve(base: now)
        try await changeEvents(id) { events in (events + [event], ()) }
        log("event \(event.id) (\(event.kind.typeName)) scheduled on \(id) for \(TimeFormat.iso8601(event.at))")
        return (201, Self.describe(event, now: now))
    }

    func clearEvents(_ r: RoutedRequest) async throws -> Answer {
        let id = try instanceID(r.query)
        let n = try await changeEvents(id) { events in ([], events.count) }
        log("cleared \(n) event(s) on \(id)")
        return (200, AdminRemoval(removed: .count(n)))
    }

    func clearEvent(_ r: RoutedRequest) async throws -> Answer {
        let eventID = r.parameters["id"] ?? ""
        let id = try instanceID(r.query)
        try await changeEvents(id) { events in
            guard events.contains(where: { $0.id == eventID }) else {
                throw Failure(status: 404, code: "EventNotFound", message: "no event '\(eventID)' on \(id)")
            }
            return (events.filter { $0.id != eventID }, ())
        }
        log("event \(eventID) cleared on \(id)")
        return (200, AdminRemoval(removed: .id(eventID)))
    }

    func finishMaintenance(_ r: RoutedRequest, _ verb: AdminEventVerb) async throws -> Answer {
        let now = clock.now()
        let eventID = r.parameters["id"] ?? ""
        let id = try instanceID(r.query)
        let event = try await changeEvents(id) { events -> ([InstanceEvent], InstanceEvent) in
            var events = events
            guard let i = events.firstIndex(where: { $0.id == eventID }) else {
                throw Failure(status: 404, code: "EventNotFound", message: "no event '\(eventID)' on \(id)")
            }
            guard case .maintenance = events[i].kind else {
                throw Failure(status: 409, code: "IncorrectState", message: "only scheduled maintenance can be completed or canceled")
            }
            guard events[i].maintenanceState == .active else {
                throw Failure(status: 409, code: "IncorrectState", message: "event '\(eventID)' is already \(events[i].maintenanceState.rawValue)")
            }
            events[i].maintenanceState = verb == .complete ? .completed : .canceled
            return (events, events[i])
        }
        log("maintenance \(eventID) \(event.maintenanceState.rawValue) on \(id)")
        return (200, Self.describe(event, now: now))
    }

    func listFaults() -> Answer {
        (200, AdminFaultList(faults: store.snapshot.faults.map(Self.describe)))
    }

    func addFault(_ r: RoutedRequest) async throws -> Answer {
        var fault = try FaultSpec.decode(json: Data(r.body))
        if let i = fault.instanceID { _ = try instanceID(["instance-id": i]) }
        fault.id = Fault.newID()
        try await store.apply([.addFault(fault)])
        log("fault \(fault.id) active: \(Self.summary(fault))")
        return (201, Self.describe(fault))
    }

    func clearFaults() async throws -> Answer {
        let n = try await store.transact { s in ([.removeFaults(id: nil)], s.faults.count) }.result
        log("cleared \(n) fault(s)")
        return (200, AdminRemoval(removed: .count(n)))
    }

    func clearFault(_ r: RoutedRequest) async throws -> Answer {
        let faultID = r.parameters["id"] ?? ""
        try await store.apply([.removeFaults(id: faultID)])  // an unknown id: 404 FaultNotFound
        log("fault \(faultID) cleared")
        return (200, AdminRemoval(removed: .id(faultID)))
    }

    func invalidateTokens(_ r: RoutedRequest) async throws -> Answer {
        let id = try instanceID(r.query, Self.object(r.body))
        // Durable before the reply: the invalidation survives a crash and a restart.
        try await store.apply([.invalidateTokens(instanceID: id)])
        log("all tokens of \(id) invalidated")
        return (200, AdminTokensInvalidated(instanceID: id))
    }

    func setCredentialScenario(_ r: RoutedRequest) async throws -> Answer {
        let obj = try Self.object(r.body) ?? [:]
        let id = try instanceID(r.query, obj)
        let scenario = try Self.scenario(obj)
        try await store.apply([.setCredentialScenario(instanceID: id, scenario)])
        log("credential scenario of \(id): \(scenario.name)")
        return (200, AdminCredentialScenarioChanged(instanceID: id, credentialScenario: Self.describe(scenario)))
    }

    static func scenario(_ obj: [String: Any]) throws -> CredentialScenario {
        let allowed = ["normal", "near-expiry", "expired", "error", "detached", "role-changed"]
        guard let name = obj["scenario"] as? String, allowed.contains(name) else {
            throw Failure(status: 400, code: "InvalidParameterValue", message: "scenario must be one of \(allowed.joined(separator: ", "))")
        }
        switch name {
        case "near-expiry":
            // Absent means the default; anything else must be an exact integer in range (a string, a
            // fraction or a number too large for Int is refused, never silently replaced).
            let seconds = obj["seconds"] == nil ? 600 : obj["seconds"] as? Int
            guard let seconds, (1...3600).contains(seconds) else {
                throw Failure(status: 400, code: "InvalidParameterValue", message: "seconds must be an integer from 1 to 3600")
            }
            return .nearExpiry(seconds: seconds)
        case "expired": return .expired
        case "error":
            return .error(code: (obj["code"] as? String) ?? "AssumeRoleUnauthorizedAccess",
                          message: (obj["message"] as? String) ?? "EC2 cannot assume the role.")
        case "detached": return .detached
        case "role-changed":
            guard let role = obj["role"] as? String, role.range(of: "^[A-Za-z0-9+=,.@_-]{1,64}$", options: .regularExpression) != nil else {
                throw Failure(status: 400, code: "InvalidParameterValue", message: "role-changed needs a role name in 'role'")
            }
            return .roleChanged(role)
        default: return .normal
        }
    }

    // MARK: - Admin types

    static func describe(_ e: InstanceEvent, now: Date) -> AdminEvent {
        var d = AdminEvent(id: e.id, at: TimeFormat.iso8601(e.at), active: e.at <= now, details: AdminEventDetails(type: e.kind.typeName))
        switch e.kind {
        case .spotInterruption(let action, let time):
            d.action = action
            d.time = TimeFormat.iso8601(time)
        case .rebalanceRecommendation: break
        case .maintenance(let code, let description, let nb, let na, let deadline):
            d.code = code
            d.description = description
            d.notBefore = TimeFormat.iso8601(nb)
            d.notAfter = TimeFormat.iso8601(na)
            d.notBeforeDeadline = deadline.map(TimeFormat.iso8601)
            d.state = e.maintenanceState.rawValue
        case .lifecycleState(let s): d.state = s
        case .instanceAction(let s): d.action = s
        }
        return d
    }

    static func describe(_ f: Fault) -> AdminFault {
        var d = AdminFault(id: f.id, type: f.kind.typeName, probability: f.probability, path: f.pathPattern ?? "*",
                           instanceID: f.instanceID, remaining: f.remaining)
        switch f.kind {
        case .latency(let ms): d.milliseconds = ms
        case .error(let s), .tokenStatus(let s): d.status = s
        default: break
        }
        return d
    }

    static func summary(_ f: Fault) -> String {
        var s = f.kind.typeName
        switch f.kind {
        case .latency(let ms): s += " \(ms) ms"
        case .error(let st), .tokenStatus(let st): s += " \(st)"
        default: break
        }
        return s + " on \(f.pathPattern ?? "*")" + (f.probability < 1 ? " (p=\(f.probability))" : "")
    }

    static func describe(_ s: CredentialScenario) -> AdminCredentialScenario {
        switch s {
        case .nearExpiry(let seconds): AdminCredentialScenario(scenario: s.name, seconds: seconds)
        case .error(let code, let message): AdminCredentialScenario(scenario: s.name, code: code, message: message)
        case .roleChanged(let role): AdminCredentialScenario(scenario: s.name, role: role)
        default: AdminCredentialScenario(scenario: s.name)
        }
    }

    static func describe(_ rt: InstanceRuntime, now: Date) -> AdminInstance {
        let o = rt.options
        return AdminInstance(
            instanceID: rt.instance.instanceID,
            metadataOptions: .init(
                httpTokens: o.httpTokens.rawValue, httpEndpoint: o.httpEndpoint.rawValue,
                httpPutResponseHopLimit: o.httpPutResponseHopLimit, httpProtocolIPv6: o.httpProtocolIPv6.rawValue,
                instanceMetadataTags: o.instanceMetadataTags.rawValue),
            tags: Dictionary(rt.tags.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }),
            events: rt.events.map { describe($0, now: now) },
            credentialScenario: describe(rt.credentialScenario))
    }

    static func object(_ body: [UInt8]) throws -> [String: Any]? {
        guard !body.isEmpty else { return nil }
        guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw Failure(status: 400, code: "MalformedJSON", message: "the request body is not a JSON object")
        }
        return o
    }

    /// The body without keys handled here (so the strict event decoder does not reject them).
    static func strip(_ body: [UInt8], keys: [String]) throws -> Data {
        guard var o = try object(body) else { throw Failure(status: 400, code: "MissingParameter", message: "a JSON body is required") }
        for k in keys { o.removeValue(forKey: k) }
        return try JSONSerialization.data(withJSONObject: o)
    }
}
