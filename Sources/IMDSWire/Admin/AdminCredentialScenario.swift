/// A role-credentials scenario: the body of `PUT /admin/v1/credentials/scenario`, and how the
/// admin API describes the current one.
///
/// ```swift
/// let soon = AdminCredentialScenario(scenario: "near-expiry", seconds: 240)
/// ```
public struct AdminCredentialScenario: Codable, Sendable, Equatable {
    /// `normal`, `near-expiry`, `expired`, `error`, `detached` or `role-changed`.
    public var scenario: String
    /// near-expiry: seconds left (1–3600, default 600).
    public var seconds: Int?
    /// error: the `Code` and `Message` served.
    public var code: String?
    public var message: String?
    /// role-changed: the new role name.
    public var role: String?
    /// In a request: the instance (default: the server's). Never set in answers.
    public var instanceID: String?

    public init(
        scenario: String, seconds: Int? = nil, code: String? = nil, message: String? = nil, role: String? = nil,
        instanceID: String? = nil
    ) {
        self.scenario = scenario
        self.seconds = seconds
        self.code = code
        self.message = message
        self.role = role
        self.instanceID = instanceID
    }

    enum CodingKeys: String, CodingKey {
        case scenario, seconds, code, message, role
        case instanceID = "instance-id"
    }
}

/// The answer to `PUT /admin/v1/credentials/scenario`.
public struct AdminCredentialScenarioChanged: Codable, Sendable, Equatable {
    public var instanceID: String
    public var credentialScenario: AdminCredentialScenario

    public init(instanceID: String, credentialScenario: AdminCredentialScenario) {
        self.instanceID = instanceID
        self.credentialScenario = credentialScenario
    }

    enum CodingKeys: String, CodingKey {
        case instanceID = "instance-id", credentialScenario = "credential-scenario"
    }
}
