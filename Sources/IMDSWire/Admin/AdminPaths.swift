/// The admin API's paths (`docs/admin-api.md`), named once for the server's routes and the CLI.
public enum AdminPaths {
    /// Every admin path starts with this.
    public static let prefix = "/admin/v1"
    public static let health = prefix + "/health"
    public static let instances = prefix + "/instances"
    public static let events = prefix + "/events"
    public static let faults = prefix + "/faults"
    public static let invalidateTokens = prefix + "/tokens/invalidate"
    public static let credentialScenario = prefix + "/credentials/scenario"
    public static let identityCertificate = prefix + "/identity/certificate"

    /// `/admin/v1/events/{id}`.
    public static func event(_ id: String) -> String { events + "/" + escape(id) }
    /// `/admin/v1/events/{id}/complete` or `…/cancel`.
    public static func event(_ id: String, _ verb: AdminEventVerb) -> String { event(id) + "/" + verb.rawValue }
    /// `/admin/v1/faults/{id}`.
    public static func fault(_ id: String) -> String { faults + "/" + escape(id) }

    /// A path segment with everything but unreserved characters percent-encoded.
    static func escape(_ segment: String) -> String {
        var out = ""
        for b in segment.utf8 {
            switch b {
            case 65...90, 97...122, 48...57, 45, 46, 95, 126: out.unicodeScalars.append(UnicodeScalar(b))
            default:
                let digits = Array("0123456789ABCDEF")
                out += "%" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
            }
        }
        return out
    }
}

/// What can be done to a scheduled maintenance event.
public enum AdminEventVerb: String, Codable, Sendable, CaseIterable {
    case complete
    case cancel
}
