import Foundation
import IMDSCore

/// The project's own admin API (JSON over HTTP on the control-plane listener): events, faults,
/// token invalidation and credential scenarios. Documented in `docs/admin-api.md`.
///
/// A translator from requests into ``StoreChange``s: a change is acknowledged only once the
/// ``InstanceStore`` has made it durable (so an invalidation survives `kill -9` and a restart).
/// Transport-free: `respond(to:)` takes a request and returns a complete response.
public struct AdminAPI: AsyncResponder {
    public static let prefix = "/admin/v1"

    let store: any InstanceStore
    let clock: any IMDSClock
    let log: @Sendable (String) -> Void

    /// - Parameter log: receives one line per change (fault added, event triggered, …).
    public init(store: any InstanceStore, clock: any IMDSClock = SystemClock(), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.store = store
        self.clock = clock
        self.log = log
    }

    /// Whether a request is for this API (the control plane routes by path).
    public static func handles(_ request: IMDSRequest) -> Bool {
        let path = request.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.target
        return path == prefix || path.hasPrefix(prefix + "/")
    }

    struct Failure: Error {
        var status: Int
        var code: String
        var message: String
    }

    public func respond(to request: IMDSRequest) async -> IMDSResponse {
        let (pathPart, query) = Self.split(request.target)
        let parts = pathPart.dropFirst(Self.prefix.count).split(separator: "/").map(String.init)
        do {
            let (status, body) = try await route(request.method, parts, query: query, body: request.body)
            return Self.json(status, body)
        } catch let f as Failure {
            return Self.json(f.status, ["error": ["code": f.code, "message": f.message]])
        } catch let e as StoreError {
            switch e {
            case .unknownInstance(let id):
                return Self.json(404, ["error": ["code": "InvalidInstanceID.NotFound", "message": "The instance ID '\(id)' does not exist"]])
            case .unknownFault(let id):
                return Self.json(404, ["error": ["code": "FaultNotFound", "message": "no fault '\(id)'"]])
            case .invalid(let why):
                return Self.json(400, ["error": ["code": "InvalidParameterValue", "message": why]])
            case .notDurable, .closed:
                return Self.json(500, ["error": ["code": "InternalError", "message": e.description]])
            }
        } catch let e as ConfigError {
            let message = (e.path.map { $0.isEmpty ? "" : "\($0): " } ?? "") + e.message
            return Self.json(400, ["error": ["code": "InvalidParameterValue", "message": message]])
        } catch {
            return Self.json(400, ["error": ["code": "BadRequest", "message": "\(error)"]])
        }
    }

    func instanceID(_ query: [String: String], _ body: [String: Any]? = nil, in snapshot: StoreSnapshot) throws -> String {
        let id = query["instance-id"] ?? (body?["instance-id"] as? String) ?? snapshot.primaryInstanceID
        guard snapshot.instance(id) != nil else {
            throw Failure(status: 404, code: "InvalidInstanceID.NotFound", message: "The instance ID '\(id)' does not exist")
        }
        return id
    }

    /// Changes the events of one instance through the store (read-modify-write, serialized).
    func changeEvents<T: Sendable>(_ id: String, _ body: ([InstanceEvent]) throws -> ([InstanceEvent], T)) async throws -> T {
        try await store.transact { snapshot in
            guard let rt = snapshot.instance(id) else { throw StoreError.unknownInstance(id) }
            let (events, result) = try body(rt.events)
            return ([.setEvents(instanceID: id, events)], result)
        }.result
    }

    func route(_ method: String, _ parts: [String], query: [String: String], body: [UInt8]) async throws -> (Int, Any) {
        let now = clock.now()
        let snapshot = store.snapshot
        let p0 = parts.first ?? "", p1 = parts.count > 1 ? parts[1] : "", p2 = parts.count > 2 ? parts[2] : ""
        switch (method, parts.count == 2 && p0 == "events" ? ["events", "*"] : parts.count == 3 && p0 == "events" ? ["events", "*", "*"] : parts.count == 2 && p0 == "faults" ? ["faults", "*"] : parts) {
        case ("GET", []), ("GET", ["health"]):
            return (200, ["status": "ok", "instances": snapshot.instanceIDs])
        case ("GET", ["instances"]):
            return (200, ["instances": snapshot.instanceIDs.compactMap { snapshot.instance($0).map { Self.describe($0, now: now) } }])
        case ("GET", ["events"]):
            let id = try instanceID(query, in: snapshot)
            let rt = snapshot.instance(id)!
            return (200, ["instance-id": id, "events": rt.events.map { Self.describe($0, now: now) },
                          "faults": snapshot.faults.map(Self.describe), "credential-scenario": Self.describe(rt.credentialScenario)])
        case ("POST", ["events"]):
            let spec = try EventSpec.decode(json: try Self.strip(body, keys: ["instance-id"]))
            let id = try instanceID(query, Self.object(body), in: snapshot)
            let event = spec.resolve(base: now)
            try await changeEvents(id) { events in (events + [event], ()) }
            log("event \(event.id) (\(event.kind.typeName)) scheduled on \(id) for \(TimeFormat.iso8601(event.at))")
            return (201, Self.describe(event, now: now))
        case ("DELETE", ["events"]):
            let id = try instanceID(query, in: snapshot)
            let n = try await changeEvents(id) { events in ([], events.count) }
            log("cleared \(n) event(s) on \(id)")
            return (200, ["removed": n])
        case ("DELETE", ["events", "*"]):
            let eventID = p1
            let id = try instanceID(query, in: snapshot)
            try await changeEvents(id) { events in
                guard events.contains(where: { $0.id == eventID }) else {
                    throw Failure(status: 404, code: "EventNotFound", message: "no event '\(eventID)' on \(id)")
                }
                return (events.filter { $0.id != eventID }, ())
            }
            log("event \(eventID) cleared on \(id)")
            return (200, ["removed": eventID])
        case ("POST", ["events", "*", "*"]) where p2 == "complete" || p2 == "cancel":
            let eventID = p1, verb = p2
            let id = try instanceID(query, in: snapshot)
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
                events[i].maintenanceState = verb == "complete" ? .completed : .canceled
                return (events, events[i])
            }
            log("maintenance \(eventID) \(event.maintenanceState.rawValue) on \(id)")
            return (200, Self.describe(event, now: now))
        case ("GET", ["faults"]):
            return (200, ["faults": snapshot.faults.map(Self.describe)])
        case ("POST", ["faults"]):
            var fault = try FaultSpec.decode(json: Data(body))
            if let i = fault.instanceID { _ = try instanceID(["instance-id": i], in: snapshot) }
            fault.id = Fault.newID()
            try await store.apply([.addFault(fault)])
            log("fault \(fault.id) active: \(Self.summary(fault))")
            return (201, Self.describe(fault))
        case ("DELETE", ["faults"]):
            let n = try await store.transact { s in ([.removeFaults(id: nil)], s.faults.count) }.result
            log("cleared \(n) fault(s)")
            return (200, ["removed": n])
        case ("DELETE", ["faults", "*"]):
            let faultID = p1
            try await store.apply([.removeFaults(id: faultID)])
            log("fault \(faultID) cleared")
            return (200, ["removed": faultID])
        case ("POST", ["tokens", "invalidate"]):
            let id = try instanceID(query, Self.object(body), in: snapshot)
            // Durable before the reply: the invalidation survives a crash and a restart.
            try await store.apply([.invalidateTokens(instanceID: id)])
            log("all tokens of \(id) invalidated")
            return (200, ["instance-id": id, "invalidated": true])
        case ("PUT", ["credentials", "scenario"]), ("POST", ["credentials", "scenario"]):
            let obj = try Self.object(body) ?? [:]
            let id = try instanceID(query, obj, in: snapshot)
            let scenario = try Self.scenario(obj)
            try await store.apply([.setCredentialScenario(instanceID: id, scenario)])
            log("credential scenario of \(id): \(scenario.name)")
            return (200, ["instance-id": id, "credential-scenario": Self.describe(scenario)])
        default:
            let known = ["", "health", "instances", "events", "faults", "tokens", "credentials"]
            if parts.isEmpty || known.contains(parts[0]) {
                throw Failure(status: 405, code: "MethodNotAllowed", message: "\(method) \(Self.prefix)/\(parts.joined(separator: "/")) is not supported; see docs/admin-api.md")
            }
            throw Failure(status: 404, code: "NotFound", message: "no admin resource '\(parts.joined(separator: "/"))'; see docs/admin-api.md")
        }
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

    // MARK: - JSON

    static func describe(_ e: InstanceEvent, now: Date) -> [String: Any] {
        var d: [String: Any] = ["id": e.id, "type": e.kind.typeName, "at": TimeFormat.iso8601(e.at), "active": e.at <= now]
        switch e.kind {
        case .spotInterruption(let action, let time):
            d["action"] = action
            d["time"] = TimeFormat.iso8601(time)
        case .rebalanceRecommendation: break
        case .maintenance(let code, let description, let nb, let na, let deadline):
            d["code"] = code
            d["description"] = description
            d["not-before"] = TimeFormat.iso8601(nb)
            d["not-after"] = TimeFormat.iso8601(na)
            if let deadline { d["not-before-deadline"] = TimeFormat.iso8601(deadline) }
            d["state"] = e.maintenanceState.rawValue
        case .lifecycleState(let s): d["state"] = s
        case .instanceAction(let s): d["action"] = s
        }
        return d
    }

    static func describe(_ f: Fault) -> [String: Any] {
        var d: [String: Any] = ["id": f.id, "type": f.kind.typeName, "probability": f.probability, "path": f.pathPattern ?? "*"]
        switch f.kind {
        case .latency(let ms): d["milliseconds"] = ms
        case .error(let s), .tokenStatus(let s): d["status"] = s
        default: break
        }
        if let i = f.instanceID { d["instance-id"] = i }
        if let r = f.remaining { d["remaining"] = r }
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

    static func describe(_ s: CredentialScenario) -> [String: Any] {
        switch s {
        case .nearExpiry(let seconds): ["scenario": s.name, "seconds": seconds]
        case .error(let code, let message): ["scenario": s.name, "code": code, "message": message]
        case .roleChanged(let role): ["scenario": s.name, "role": role]
        default: ["scenario": s.name]
        }
    }

    static func describe(_ rt: InstanceRuntime, now: Date) -> [String: Any] {
        let o = rt.options
        return [
            "instance-id": rt.instance.instanceID,
            "metadata-options": [
                "http-tokens": o.httpTokens.rawValue, "http-endpoint": o.httpEndpoint.rawValue,
                "http-put-response-hop-limit": o.httpPutResponseHopLimit, "http-protocol-ipv6": o.httpProtocolIPv6.rawValue,
                "instance-metadata-tags": o.instanceMetadataTags.rawValue,
            ],
            "tags": Dictionary(rt.tags.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }),
            "events": rt.events.map { describe($0, now: now) },
            "credential-scenario": describe(rt.credentialScenario),
        ]
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

    static func split(_ target: String) -> (String, [String: String]) {
        let pieces = target.split(separator: "?", maxSplits: 1)
        var query: [String: String] = [:]
        if pieces.count == 2 {
            for pair in pieces[1].split(separator: "&") {
                // Not omitting empty pieces: a bare `=` must give a key, not an empty array.
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                query[k] = kv.count == 2 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
            }
        }
        var path = String(pieces.first ?? "")
        while path.count > prefix.count && path.hasSuffix("/") { path.removeLast() }
        return (path, query)
    }

    static func json(_ status: Int, _ object: Any) -> IMDSResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
        let body = Array(data) + [10]
        let reasons = [200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"]
        return IMDSResponse(
            status: status, reason: reasons[status] ?? "Error",
            headers: [("Content-Type", "application/json"), ("Content-Length", String(body.count)),
                      ("Date", TimeFormat.http(Date())), ("Connection", "close")],
            body: body)
    }
}
