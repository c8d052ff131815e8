import Foundation

/// An event scheduled on an instance: it appears in the metadata at `at` and stays until cleared.
public struct InstanceEvent: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        /// `spot/instance-action` (`terminate`, `stop` or `hibernate` at `time`) and, for terminate,
        /// `spot/termination-time`.
        case spotInterruption(action: String, time: Date)
        /// `events/recommendations/rebalance` with `noticeTime` = when it appears.
        case rebalanceRecommendation
        /// An entry of `events/maintenance/scheduled` (then `history` once completed or canceled).
        case maintenance(code: String, description: String, notBefore: Date, notAfter: Date, notBeforeDeadline: Date?)
        /// `autoscaling/target-lifecycle-state`.
        case lifecycleState(String)
        /// `instance-action` (`none`, `shutdown`, `bundle-pending`).
        case instanceAction(String)

        public var typeName: String {
            switch self {
            case .spotInterruption: "spot-interruption"
            case .rebalanceRecommendation: "rebalance-recommendation"
            case .maintenance: "scheduled-maintenance"
            case .lifecycleState: "autoscaling-lifecycle"
            case .instanceAction: "instance-action"
            }
        }
    }

    /// Scheduled maintenance moves to `history` as EC2 does when it ends.
    public enum MaintenanceState: String, Sendable, Equatable, Codable { case active, completed, canceled }

    public var id: String
    public var kind: Kind
    /// When the event becomes visible.
    public var at: Date
    public var maintenanceState: MaintenanceState

    public init(id: String, kind: Kind, at: Date, maintenanceState: MaintenanceState = .active) {
        self.id = id
        self.kind = kind
        self.at = at
        self.maintenanceState = maintenanceState
    }

    public static let spotActions = ["terminate", "stop", "hibernate"]
    public static let lifecycleStates = [
        "Detached", "InService", "Standby", "Terminated", "Warmed:Hibernated", "Warmed:Running", "Warmed:Stopped",
        "Warmed:Terminated",
    ]
    public static let instanceActions = ["none", "shutdown", "bundle-pending"]
    public static let maintenanceCodes = ["instance-reboot", "system-reboot", "system-maintenance", "instance-retirement", "instance-stop"]

    /// A new id: maintenance events use EC2's `instance-event-<17 hex>` form.
    public static func newID(for kind: Kind) -> String {
        let hex = (0..<17).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
        if case .maintenance = kind { return "instance-event-" + hex }
        return "evt-" + hex
    }
}

extension InstanceRuntime {
    /// The paths events add or replace at `now` (relative to the version root), or nothing when no
    /// event is visible.
    func eventOverlay(now: Date) -> [(path: String, node: MetadataNode)] {
        let visible = events.filter { $0.at <= now }
        guard !visible.isEmpty else { return [] }
        var out: [(path: String, node: MetadataNode)] = []
        if let spot = visible.last(where: { if case .spotInterruption = $0.kind { true } else { false } }),
            case .spotInterruption(let action, let time) = spot.kind
        {
            out.append(("meta-data/spot/instance-action",
                        .text(EC2JSON.compact([("action", .string(action)), ("time", .string(TimeFormat.iso8601(time)))]))))
            if action == "terminate" { out.append(("meta-data/spot/termination-time", .text(TimeFormat.iso8601(time)))) }
            out.append(("meta-data/instance-life-cycle", .text("spot")))
        }
        if let r = visible.first(where: { $0.kind == .rebalanceRecommendation }) {
            out.append(("meta-data/events/recommendations/rebalance",
                        .text(EC2JSON.compact([("noticeTime", .string(TimeFormat.iso8601(r.at)))]))))
        }
        let maintenance = visible.filter { if case .maintenance = $0.kind { true } else { false } }
        if !maintenance.isEmpty {
            out.append(("meta-data/events/maintenance/scheduled", .text(Self.maintenanceJSON(maintenance.filter { $0.maintenanceState == .active }))))
            out.append(("meta-data/events/maintenance/history", .text(Self.maintenanceJSON(maintenance.filter { $0.maintenanceState != .active }))))
        }
        if let l = visible.last(where: { if case .lifecycleState = $0.kind { true } else { false } }), case .lifecycleState(let s) = l.kind {
            out.append(("meta-data/autoscaling/target-lifecycle-state", .text(s)))
        }
        if let a = visible.last(where: { if case .instanceAction = $0.kind { true } else { false } }), case .instanceAction(let s) = a.kind {
            out.append(("meta-data/instance-action", .text(s)))
        }
        return out
    }

    /// `events/maintenance/*` JSON: an array of EC2's pretty objects; `[]` when empty.
    static func maintenanceJSON(_ events: [InstanceEvent]) -> String {
        guard !events.isEmpty else { return "[]" }
        let objects = events.map { e -> String in
            guard case .maintenance(let code, let description, let notBefore, let notAfter, let deadline) = e.kind else { return "" }
            var d = description
            if e.maintenanceState == .completed { d = "[Completed] " + d }
            if e.maintenanceState == .canceled { d = "[Canceled] " + d }
            var fields: [(String, JSONValue)] = [
                ("NotBefore", .string(TimeFormat.maintenance(notBefore))),
                ("Code", .string(code)),
                ("Description", .string(d)),
                ("EventId", .string(e.id)),
                ("NotAfter", .string(TimeFormat.maintenance(notAfter))),
            ]
            if let deadline { fields.append(("NotBeforeDeadline", .string(TimeFormat.maintenance(deadline)))) }
            fields.append(("State", .string(e.maintenanceState.rawValue)))
            return EC2JSON.pretty(fields).split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
        }
        return "[\n" + objects.joined(separator: ",\n") + "\n]"
    }
}
