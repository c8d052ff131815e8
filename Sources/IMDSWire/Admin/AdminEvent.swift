/// What an event is, as a request names it and the admin API describes it; the fields a type does
/// not use are absent.
public struct AdminEventDetails: Codable, Sendable, Equatable {
    /// `spot-interruption`, `rebalance-recommendation`, `scheduled-maintenance`, `autoscaling-lifecycle`
    /// or `instance-action`.
    public var type: String
    /// spot-interruption: `terminate`, `stop`, `hibernate`; instance-action: `none`, `shutdown`, `bundle-pending`.
    public var action: String?
    /// spot-interruption: the action's time.
    public var time: String?
    /// scheduled-maintenance: the event code, its description and its window.
    public var code: String?
    public var description: String?
    public var notBefore: String?
    public var notAfter: String?
    public var notBeforeDeadline: String?
    /// autoscaling-lifecycle: the target lifecycle state; maintenance (answers): `active`,
    /// `completed` or `canceled`.
    public var state: String?

    public init(
        type: String, action: String? = nil, time: String? = nil, code: String? = nil, description: String? = nil,
        notBefore: String? = nil, notAfter: String? = nil, notBeforeDeadline: String? = nil, state: String? = nil
    ) {
        self.type = type
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
        case type, action, time, code, description, state
        case notBefore = "not-before", notAfter = "not-after", notBeforeDeadline = "not-before-deadline"
    }
}

/// The body of `POST /admin/v1/events`: one event, times as `now`, `+30s`, `90` or an ISO 8601 time.
/// The details' fields read and write as the request's own (`request.action`), and sit flat in the JSON.
///
/// ```swift
/// let spot = AdminEventRequest(type: "spot-interruption", at: "+30s", action: "terminate")
/// ```
@dynamicMemberLookup
public struct AdminEventRequest: Codable, Sendable, Equatable {
    public var details: AdminEventDetails
    /// When the event appears (default: now).
    public var at: String?
    /// The instance (default: the server's).
    public var instanceID: String?

    public init(
        type: String, at: String? = nil, action: String? = nil, time: String? = nil, code: String? = nil,
        description: String? = nil, notBefore: String? = nil, notAfter: String? = nil, notBeforeDeadline: String? = nil,
        state: String? = nil, instanceID: String? = nil
    ) {
        details = AdminEventDetails(
            type: type, action: action, time: time, code: code, description: description, notBefore: notBefore,
            notAfter: notAfter, notBeforeDeadline: notBeforeDeadline, state: state)
        self.at = at
        self.instanceID = instanceID
    }

    public subscript<T>(dynamicMember field: WritableKeyPath<AdminEventDetails, T>) -> T {
        get { details[keyPath: field] }
        set { details[keyPath: field] = newValue }
    }

    enum CodingKeys: String, CodingKey {
        case at
        case instanceID = "instance-id"
    }

    public init(from decoder: any Decoder) throws {
        details = try AdminEventDetails(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        at = try c.decodeIfPresent(String.self, forKey: .at)
        instanceID = try c.decodeIfPresent(String.self, forKey: .instanceID)
    }

    public func encode(to encoder: any Encoder) throws {
        try details.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(at, forKey: .at)
        try c.encodeIfPresent(instanceID, forKey: .instanceID)
    }
}

/// An event as the admin API describes it (times resolved, ISO 8601); the details' fields read and
/// write as the event's own (`event.action`).
@dynamicMemberLookup
public struct AdminEvent: Codable, Sendable, Equatable {
    /// `instance-event-…` for maintenance, a generated id otherwise.
    public var id: String
    public var at: String
    /// Whether `at` has passed (the event is visible on the data plane).
    public var active: Bool
    public var details: AdminEventDetails

    public init(id: String, at: String, active: Bool, details: AdminEventDetails) {
        self.id = id
        self.at = at
        self.active = active
        self.details = details
    }

    public subscript<T>(dynamicMember field: WritableKeyPath<AdminEventDetails, T>) -> T {
        get { details[keyPath: field] }
        set { details[keyPath: field] = newValue }
    }

    enum CodingKeys: String, CodingKey {
        case id, at, active
    }

    public init(from decoder: any Decoder) throws {
        details = try AdminEventDetails(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        at = try c.decode(String.self, forKey: .at)
        active = try c.decode(Bool.self, forKey: .active)
    }

    public func encode(to encoder: any Encoder) throws {
        try details.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(at, forKey: .at)
        try c.encode(active, forKey: .active)
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
