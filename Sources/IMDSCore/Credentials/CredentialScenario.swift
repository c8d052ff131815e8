import Foundation

/// A credential situation to test SDK behaviour against, switchable at runtime.
public enum CredentialScenario: Sendable, Equatable, Codable {
    /// Normal rotation.
    case normal
    /// Credentials that expire `seconds` from the request (inside SDKs' refresh windows).
    case nearExpiry(seconds: Int)
    /// Credentials whose `Expiration` is already past.
    case expired
    /// A 200 answer with an error `Code`, as IMDS sends when it cannot assume the role.
    case error(code: String, message: String)
    /// The role is detached: 404 everywhere under `iam/`.
    case detached
    /// The instance profile now has another role.
    case roleChanged(String)

    public var name: String {
        switch self {
        case .normal: "normal"
        case .nearExpiry: "near-expiry"
        case .expired: "expired"
        case .error: "error"
        case .detached: "detached"
        case .roleChanged: "role-changed"
        }
    }
}
