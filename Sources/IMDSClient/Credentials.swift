import Foundation
import Synchronization

/// Temporary AWS credentials from an instance profile.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String
    /// When callers should stop using these credentials. For credentials served under static
    /// stability this is the end of the extension, not the value IMDS sent.
    public var expiration: Date
    /// `AccountId`, served by the extended credentials path.
    public var accountID: String?
    /// `LastUpdated` as IMDS sent it.
    public var lastUpdated: Date?
    /// The role the credentials belong to.
    public var roleName: String
    /// True when IMDS could not supply fresh credentials (unavailable, or it returned expired ones)
    /// and the last good credentials are being served for a bounded extension.
    public var isExtended: Bool

    /// Redacted: never prints the secret or the session token.
    public var description: String {
        "AWSCredentials(accessKeyID: \(accessKeyID), role: \(roleName), expiration: \(expiration)\(isExtended ? ", extended" : ""))"
    }
}

/// Instance-profile credentials from IMDS, as the AWS SDKs' IMDS credentials providers fetch them.
///
/// 1. Role discovery: `GET meta-data/iam/security-credentials-extended/` (the newer API, which also
///    gives the account id); on 404, `meta-data/iam/security-credentials/`. The first listed role is
///    used. `AWS_EC2_INSTANCE_PROFILE_NAME` (``IMDSClientConfiguration/instanceProfileName``) skips
///    the listing.
/// 2. `GET .../{role}`; the JSON must have `Code` `Success` (a 200 with another `Code`, such as
///    `AssumeRoleUnauthorizedAccess`, is an error) and `AccessKeyId`, `SecretAccessKey`, `Token`,
///    `Expiration`.
/// 3. Credentials are cached until ``refreshWindow`` before they expire.
///
/// **Static stability.** When IMDS is briefly unavailable (any error) or returns credentials that have
/// already expired, the provider keeps serving the last good credentials, with their expiration moved
/// to now plus a random 5–10 minutes (``extensionRange``); IMDS is not asked again before that. This is
/// what the JS and Rust SDKs do, so that a workload survives an IMDS outage.
///
/// ```swift
/// let provider = IMDSCredentialsProvider(client: try IMDSClient.fromEnvironment())
/// let creds = try await provider.credentials()
/// print(creds.accessKeyID, creds.expiration)
/// ```
public final class IMDSCredentialsProvider: Sendable {
    public let client: IMDSClient
    /// Fresh credentials are replaced this many seconds before they expire (default 10 minutes).
    public let refreshWindow: TimeInterval
    /// How far past "now" served-stale credentials are extended, in seconds (default 300...600).
    public let extensionRange: ClosedRange<TimeInterval>
    private let clock: any IMDSClientClock
    private let state = Mutex(State())

    struct State {
        var cached: AWSCredentials?
        var refreshAt: Date?
        var lastGood: AWSCredentials?
        var role: String?
        /// nil: not known yet; true: the extended API answers; false: it answered 404.
        var extendedAPI: Bool?
        var lastError: IMDSClientError?
    }

    public init(client: IMDSClient, clock: any IMDSClientClock = WallClock(), refreshWindow: TimeInterval = 600,
                extensionRange: ClosedRange<TimeInterval> = 300...600) {
        self.client = client
        self.clock = clock
        self.refreshWindow = refreshWindow
        self.extensionRange = extensionRange
    }

    /// The error of the last failed refresh (served over by static stability), if any.
    public var lastError: IMDSClientError? { state.withLock { $0.lastError } }

    /// Current credentials: cached, freshly fetched, or the last good ones extended (see above).
    public func credentials() async throws -> AWSCredentials {
        let now = clock.now()
        if let cached = state.withLock({ s -> AWSCredentials? in
            guard let c = s.cached, let at = s.refreshAt, now < at else { return nil }
            return c
        }) {
            return cached
        }
        do {
            var fresh = try await fetch()
            let now = clock.now()
            var refreshAt = Swift.min(Swift.max(fresh.expiration.addingTimeInterval(-refreshWindow), now.addingTimeInterval(60)),
                                      fresh.expiration)
            if fresh.expiration <= now {
                // IMDS handed out expired credentials (it has not rotated yet): use them for a short while.
                fresh.expiration = now.addingTimeInterval(TimeInterval.random(in: extensionRange))
                fresh.isExtended = true
                refreshAt = fresh.expiration
            }
            let result = fresh
            let until = refreshAt
            state.withLock {
                $0.cached = result
                $0.refreshAt = until
                $0.lastGood = result
                $0.lastError = nil
            }
            return result
        } catch let error as IMDSClientError {
            switch error {
            case .disabled, .invalidConfiguration: throw error
            default: break
            }
            let now = clock.now()
            let extended = state.withLock { s -> AWSCredentials? in
                s.lastError = error
                guard var last = s.lastGood else { return nil }
                let until = now.addingTimeInterval(TimeInterval.random(in: extensionRange))
                if until > last.expiration {
                    last.expiration = until
                    last.isExtended = true
                }
                s.cached = last
                s.refreshAt = last.expiration
                return last
            }
            if let extended { return extended }
            throw error
        }
    }

    /// Forces the next ``credentials()`` call to ask IMDS.
    public func invalidate() { state.withLock { $0.cached = nil; $0.refreshAt = nil } }

    // MARK: - Fetching

    private static let extendedBase = "meta-data/iam/security-credentials-extended/"
    private static let legacyBase = "meta-data/iam/security-credentials/"

    private func fetch() async throws -> AWSCredentials {
        let fixed = client.configuration.instanceProfileName
        for _ in 0..<2 {
            let (role, discovered) = try await roleName(fixed: fixed)
            do {
                return try await fetchCredentials(role: role)
            } catch IMDSClientError.httpError(status: 404, _) where discovered {
                // The role changed since discovery: discover again once.
                state.withLock { $0.role = nil }
                continue
            }
        }
        throw IMDSClientError.invalidResponse("the instance profile role keeps changing; no credentials found")
    }

    private func roleName(fixed: String?) async throws -> (String, discovered: Bool) {
        if let fixed, !fixed.isEmpty { return (fixed, false) }
        if let role = state.withLock({ $0.role }) { return (role, true) }
        var names: [String]
        if state.withLock({ $0.extendedAPI }) != false {
            do {
                names = try await client.list(Self.extendedBase)
                state.withLock { $0.extendedAPI = true }
            } catch IMDSClientError.httpError(status: 404, _) {
                state.withLock { $0.extendedAPI = false }
                names = try await client.list(Self.legacyBase)
            }
        } else {
            names = try await client.list(Self.legacyBase)
        }
        guard let role = names.first?.trimmingCharacters(in: .whitespaces), !role.isEmpty else {
            throw IMDSClientError.invalidResponse("IMDS lists no instance profile role")
        }
        state.withLock { $0.role = role }
        return (role, true)
    }

    private func fetchCredentials(role: String) async throws -> AWSCredentials {
        let escaped = role.addingPercentEncoding(withAllowedCharacters: IMDSJSON.pathAllowed) ?? role
        if state.withLock({ $0.extendedAPI }) != false {
            do {
                let body = try await client.bytes(Self.extendedBase + escaped)
                state.withLock { $0.extendedAPI = true }
                return try Self.parse(body, role: role)
            } catch IMDSClientError.httpError(status: 404, _) {
                state.withLock { $0.extendedAPI = false }
            }
        }
        return try Self.parse(try await client.bytes(Self.legacyBase + escaped), role: role)
    }

    /// Parses EC2's credentials JSON. `Code` (when present) must be `Success`.
    static func parse(_ body: [UInt8], role: String) throws -> AWSCredentials {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw IMDSClientError.invalidResponse("the credentials for role \(role) are not a JSON object")
        }
        if let code = object["Code"] as? String, code.lowercased() != "success" {
            throw IMDSClientError.credentialsError(code: code, message: object["Message"] as? String)
        }
        func field(_ name: String) throws -> String {
            guard let v = object[name] as? String, !v.isEmpty else {
                throw IMDSClientError.invalidResponse("the credentials for role \(role) have no \(name)")
            }
            return v
        }
        let expirationText = try field("Expiration")
        guard let expiration = IMDSJSON.parseISO8601(expirationText) else {
            throw IMDSClientError.invalidResponse("the credentials' Expiration '\(expirationText)' is not a time")
        }
        return AWSCredentials(
            accessKeyID: try field("AccessKeyId"), secretAccessKey: try field("SecretAccessKey"),
            sessionToken: try field("Token"), expiration: expiration, accountID: object["AccountId"] as? String,
            lastUpdated: (object["LastUpdated"] as? String).flatMap(IMDSJSON.parseISO8601), roleName: role,
            isExtended: false)
    }
}
