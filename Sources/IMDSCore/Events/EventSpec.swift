import Foundation

/// When something happens: now, after a delay, or at an absolute time.
public enum TimeSpec: Sendable, Equatable {
    case relative(seconds: Int)
    case absolute(Date)

    /// Parses `now`, `+90s` / `+2m` / `90` (a delay of at most 100 years) or `2026-01-02T03:04:05Z`.
    public static func parse(_ text: String) -> TimeSpec? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "now" { return .relative(seconds: 0) }
        if let d = TimeFormat.parseISO8601(t) { return .absolute(d) }
        let body = t.hasPrefix("+") ? String(t.dropFirst()) : t
        return ConfigMap.parseDuration(body).map { .relative(seconds: $0) }
    }

    public func resolve(from base: Date) -> Date {
        switch self {
        case .relative(let s): base.addingTimeInterval(TimeInterval(s))
        case .absolute(let d): d
        }
    }
}

/// An event as a config file's timeline or the admin API describes it (times not yet resolved).
public struct EventSpec: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case spotInterruption(action: String, time: TimeSpec?)
        case rebalanceRecommendation
        case maintenance(code: String, description: String, notBefore: TimeSpec?, notAfter: TimeSpec?, notBeforeDeadline: TimeSpec?)
        case lifecycleState(String)
        case instanceAction(String)
    }

    public var kind: Kind
    public var at: TimeSpec

    public init(kind: Kind, at: TimeSpec) {
        self.kind = kind
        self.at = at
    }

    public static let typeNames = ["spot-interruption", "rebalance-recommendation", "scheduled-maintenance", "autoscaling-lifecycle", "instance-action"]

    /// The event with concrete times; relative times count from `base` (the server's start for a
    /// config timeline, the request for the admin API). A spot action's time defaults to two minutes
    /// after the notice; maintenance defaults to a two-hour window starting two days after it appears.
    public func resolve(base: Date, id: String? = nil) -> InstanceEvent {
        let atDate = at.resolve(from: base)
        let kind: InstanceEvent.Kind
        switch self.kind {
        case .spotInterruption(let action, let time):
            kind = .spotInterruption(action: action, time: time?.resolve(from: base) ?? atDate.addingTimeInterval(120))
        case .rebalanceRecommendation:
            kind = .rebalanceRecommendation
        case .maintenance(let code, let description, let nb, let na, let deadline):
            let notBefore = nb?.resolve(from: base) ?? atDate.addingTimeInterval(2 * 86400)
            kind = .maintenance(code: code, description: description, notBefore: notBefore,
                                notAfter: na?.resolve(from: base) ?? notBefore.addingTimeInterval(7200),
                                notBeforeDeadline: deadline?.resolve(from: base))
        case .lifecycleState(let s): kind = .lifecycleState(s)
        case .instanceAction(let s): kind = .instanceAction(s)
        }
        return InstanceEvent(id: id ?? InstanceEvent.newID(for: kind), kind: kind, at: atDate)
    }

    /// Decodes one event from JSON (the admin API's request body).
    public static func decode(json: Data) throws(ConfigError) -> EventSpec {
        var m = try ConfigMap(try ConfigValue.parseJSON(json), path: "")
        let spec = try decode(&m)
        try m.finish()
        return spec
    }

    static func decode(_ m: inout ConfigMap) throws(ConfigError) -> EventSpec {
        func time(_ key: String) throws(ConfigError) -> TimeSpec? {
            guard let s = try m.string(key) else { return nil }
            guard let t = TimeSpec.parse(s) else {
                throw ConfigError(path: m.child(key), line: nil, message: "'\(s)' is not a time (allowed: now, +30s, +2m, 90 up to 100 years ahead, or 2026-01-02T03:04:05Z)")
            }
            return t
        }
        guard let type = try m.choice("type", typeNames) else {
            throw ConfigError(path: m.child("type"), line: m.line, message: "missing (allowed: \(typeNames.joined(separator: ", ")))")
        }
        let at = try time("at") ?? .relative(seconds: 0)
        switch type {
        case "spot-interruption":
            let action = try m.choice("action", InstanceEvent.spotActions) ?? "terminate"
            return EventSpec(kind: .spotInterruption(action: action, time: try time("time")), at: at)
        case "rebalance-recommendation":
            return EventSpec(kind: .rebalanceRecommendation, at: at)
        case "scheduled-maintenance":
            let code = try m.choice("code", InstanceEvent.maintenanceCodes) ?? "system-reboot"
            let description = try m.string("description") ?? "scheduled reboot"
            return EventSpec(
                kind: .maintenance(code: code, description: description, notBefore: try time("not-before"),
                                   notAfter: try time("not-after"), notBeforeDeadline: try time("not-before-deadline")),
                at: at)
        case "autoscaling-lifecycle":
            guard let state = try m.choice("state", InstanceEvent.lifecycleStates) else {
                throw ConfigError(path: m.child("state"), line: m.line, message: "missing (allowed: \(InstanceEvent.lifecycleStates.joined(separator: ", ")))")
            }
            return EventSpec(kind: .lifecycleState(state), at: at)
        default:
            guard let action = try m.choice("action", InstanceEvent.instanceActions) else {
                throw ConfigError(path: m.child("action"), line: m.line, message: "missing (allowed: \(InstanceEvent.instanceActions.joined(separator: ", ")))")
            }
            return EventSpec(kind: .instanceAction(action), at: at)
        }
    }
}

/// A fault as the config file or the admin API describes it.
public enum FaultSpec {
    public static let typeNames = ["latency", "throttle", "error", "reset", "hang", "token-status", "token-timeout", "token-ttl-header-missing"]

    /// Decodes one fault from JSON (the admin API's request body).
    public static func decode(json: Data) throws(ConfigError) -> Fault {
        var m = try ConfigMap(try ConfigValue.parseJSON(json), path: "")
        let f = try decode(&m)
        try m.finish()
        return f
    }

    static func decode(_ m: inout ConfigMap) throws(ConfigError) -> Fault {
        guard let type = try m.choice("type", typeNames) else {
            throw ConfigError(path: m.child("type"), line: m.line, message: "missing (allowed: \(typeNames.joined(separator: ", ")))")
        }
        let kind: Fault.Kind
        switch type {
        case "latency":
            guard let ms = try m.int("milliseconds", range: 1...600_000) else {
                throw ConfigError(path: m.child("milliseconds"), line: m.line, message: "missing (allowed: 1 to 600000)")
            }
            kind = .latency(milliseconds: ms)
        case "throttle": kind = .throttle
        case "error": kind = .error(status: Int(try m.choice("status", ["500", "503"]) ?? "500")!)
        case "reset": kind = .reset
        case "hang": kind = .hang
        case "token-status":
            guard let s = try m.choice("status", ["403", "404", "405"]) else {
                throw ConfigError(path: m.child("status"), line: m.line, message: "missing (allowed: 403, 404, 405)")
            }
            kind = .tokenStatus(Int(s)!)
        case "token-timeout": kind = .tokenTimeout
        default: kind = .tokenTTLHeaderMissing
        }
        let path = try m.string("path", pattern: { $0.hasPrefix("/") || $0 == "*" }, expected: "a path pattern starting with /, * matches anything")
        var probability = 1.0
        if let p = try m.string("probability", expected: "a number") {
            guard let v = Double(p), v > 0, v <= 1 else {
                throw ConfigError(path: m.child("probability"), line: m.line, message: "'\(p)' is not allowed (allowed: a number greater than 0 and at most 1)")
            }
            probability = v
        }
        let instance = try m.string("instance-id")
        let count = try m.int("count", range: 1...1_000_000)
        return Fault(kind: kind, pathPattern: path, probability: probability, instanceID: instance, remaining: count)
    }
}
