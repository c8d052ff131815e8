/// The body of `POST /admin/v1/events`: one event, times as `now`, `+30s`, `90` or an ISO 8601 time.
///
/// ```swift
/// let spot = AdminEventRequest(type: "spot-interruption", at: "+30s", action: "terminate")
/// ```
public struct AdminEventRequest: Codable, Sendable, Equatable {
    /// `spot-interruption`, `rebalance-recommendation`, `scheduled-maintenance`, `autoscaling-lifecycle`
    /// or `instance-action`.
    public var type: String
    public var at: String?
    /// spot-interruption: `terminate`, `stop`, `hibernate`; instance-action: `none`, `shutdown`, `bundle-pending`.
    public var action: String?
    /// spot-interruption: the action's time.
    public var time: String?
    /// scheduled-maintenance fields.
    public var code: String?
    public var description: String?
    public var notBefore: String?
    public var notAfter: String?
    public var notBeforeDeadline: String?
    /// autoscaling-lifecycle: the target lifecycle state.
    public var state: String?
    /// The instance (default: the server's).
    public var instanceID: String?

    public init(
        type: String, at: String? = nil, action: String? = nil, time: String? = nil, code: String? = nil,
        description: String? = nil, notBefore: String? = nil, notAfter: String? = nil, notBeforeDeadline: String? = nil,
        state: String? = nil, instanceID: String? = nil
    ) {
        self.type = type
        self.at = at
        self.action = action
        self.time = time
        self.code = code
        self.description = description
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.notBeforeDeadline = notBeforeDeadline
        self.state = state
        self.instanceID = instanceID
    }

    enum CodingKeys: String, CodingKey {
        case type, at, action, time, code, description, state
        case notBefore = "not-before", notAfter = "not-after", notBeforeDeadline = "not-before-deadline"
        case instanceID = "instance-id"
    }
}

/// An event as the admin API describes it (times resolved, ISO 8601).
public struct AdminEvent: Codable, Sendable, Equatable {
    /// `instance-event-…` for maintenance, a generated id otherwise.
    public var id: String
    public var type: String
    public var at: String
    /// Whether `at` has passed (the event is visible on the data plane).
    public var active: Bool
    public var action: String?
    public var time: String?
    public var code: String?
    public var description: String?
    public var notBefore: String?
    public var notAfter: String?
    public var notBeforeDeadline: String?
    /// Maintenance: `active`, `completed` or `canceled`; autoscaling-lifecycle: the state.
    public var state: String?

    public init(
        id: String, type: String, at: String, active: Bool, action: String? = nil, time: String? = nil,
        code: String? = nil, description: String? = nil, notBefore: String? = nil, notAfter: String? = nil,
        notBeforeDeadline: String? = nil, state: String? = nil
    ) {
        self.id = id
        self.type = type
        self.at = at
        self.active = active
        self.action = action
        self.time = time
        self.code = code
        self.description = description
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.notBeforeDeadline = notBeforeDeadline
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case id, type, at, active, action, time, code, description, state
        case notBefore = "not-before", notAfter = "not-after", notBeforeDeadline = "not-before-deadline"
    }
}

/// `GET /admin/v1/events`: an instance's events, the active faults and its credential scenario.
public struct AdminEventList: Codable, Sendable, Equatable {
    public var instanceID: String
    public var events: [AdminEvent]
    public var faults: [AdminFault]
    public var credentialScenario: AdminCredentialScenario

    public init(instanceID: String, events: [AdminEvent], faults: [AdminFault], credentialScenario: AdminCredentialScenario) {
        self.instanceID = instanceID
        self.events = events
        self.faults = faults
        self.credentialScenario = credentialScenario
    }

    enum CodingKeys: String, CodingKey {
        case events, faults
        case instanceID = "instance-id", credentialScenario = "credential-scenario"
    }
}
