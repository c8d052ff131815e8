/// An access key the control plane accepts (AWS Signature Version 4 with service `ec2`).
public struct ControlPlaneAccessKey: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// A read-only key may call `Describe*`/`Get*` actions; changes answer `UnauthorizedOperation`.
    public var readOnly: Bool

    public init(accessKeyID: String, secretAccessKey: String, readOnly: Bool = false) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.readOnly = readOnly
    }
}

/// The `control-plane:` section of the config file.
public struct ControlPlaneSettings: Sendable, Equatable, CustomStringConvertible {
    /// When non-empty, every control-plane request must carry a valid SigV4 signature by one of these.
    public var accessKeys: [ControlPlaneAccessKey]

    public init(accessKeys: [ControlPlaneAccessKey] = []) {
        self.accessKeys = accessKeys
    }

    /// Never shows a secret.
    public var description: String {
        "ControlPlaneSettings(accessKeys: [\(accessKeys.map { $0.accessKeyID + ($0.readOnly ? " (read-only)" : "") }.joined(separator: ", "))])"
    }
}
