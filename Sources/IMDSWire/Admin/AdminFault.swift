/// The body of `POST /admin/v1/faults`: one fault on the data plane.
///
/// ```swift
/// let throttle = AdminFaultRequest(type: "throttle", path: "/latest/meta-data/iam/*", count: 2)
/// ```
public struct AdminFaultRequest: Codable, Sendable, Equatable {
    /// `latency`, `throttle`, `error`, `reset`, `hang`, `token-status`, `token-timeout` or `token-ttl-header-missing`.
    public var type: String
    /// A pattern over the request path (`*` matches anything); default every path.
    public var path: String?
    /// 0 < p ≤ 1 (default 1).
    public var probability: Double?
    /// latency: the delay.
    public var milliseconds: Int?
    /// error: 500 or 503; token-status: 403, 404 or 405.
    public var status: Int?
    /// Affect only the next N matching requests.
    public var count: Int?
    public var instanceID: String?

    public init(
        type: String, path: String? = nil, probability: Double? = nil, milliseconds: Int? = nil, status: Int? = nil,
        count: Int? = nil, instanceID: String? = nil
    ) {
        self.type = type
        self.path = path
        self.probability = probability
        self.milliseconds = milliseconds
        self.status = status
        self.count = count
        self.instanceID = instanceID
    }

    enum CodingKeys: String, CodingKey {
        case type, path, probability, milliseconds, status, count
        case instanceID = "instance-id"
    }
}

/// An active fault as the admin API describes it.
public struct AdminFault: Codable, Sendable, Equatable {
    public var id: String
    public var type: String
    public var probability: Double
    /// The path pattern (`*`: every path).
    public var path: String
    public var milliseconds: Int?
    public var status: Int?
    public var instanceID: String?
    /// Requests left to affect (a fault with a `count`).
    public var remaining: Int?

    public init(
        id: String, type: String, probability: Double, path: String, milliseconds: Int? = nil, status: Int? = nil,
        instanceID: String? = nil, remaining: Int? = nil
    ) {
        self.id = id
        self.type = type
        self.probability = probability
        self.path = path
        self.milliseconds = milliseconds
        self.status = status
        self.instanceID = instanceID
        self.remaining = remaining
    }

    enum CodingKeys: String, CodingKey {
        case id, type, probability, path, milliseconds, status, remaining
        case instanceID = "instance-id"
    }
}

/// `GET /admin/v1/faults`.
public struct AdminFaultList: Codable, Sendable, Equatable {
    public var faults: [AdminFault]
    public init(faults: [AdminFault]) { self.faults = faults }
}
