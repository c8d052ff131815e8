import AWSQuery
import Foundation
import IMDSClient
import IMDSCore
import Synchronization

/// Real role credentials from STS `AssumeRole` (SigV4-signed with the configured source credentials),
/// cached and refreshed before they expire. STS failures are served as EC2 serves them — a 200 whose
/// JSON carries `"Code" : "AssumeRoleUnauthorizedAccess"` — never as a crash; on transient failures the
/// last good credentials are kept while they are valid.
public final class AssumeRoleProvider: ExternalCredentialSource {
    struct Entry {
        var result: ExternalCredentials
        /// When to call STS again.
        var refreshAt: Date
        var failures: Int
    }

    private let cache = Mutex<[String: Entry]>([:])
    private let transport: any IMDSTransport
    private let clock: any IMDSClock
    /// Called after every STS call: (success, message) — for logs and metrics.
    private let observer: (@Sendable (Bool, String) -> Void)?

    public init(transport: any IMDSTransport = NIOIMDSTransport(userAgent: "imds/0.1 sts-assume-role"),
                clock: any IMDSClock = SystemClock(), observer: (@Sendable (Bool, String) -> Void)? = nil) {
        self.transport = transport
        self.clock = clock
        self.observer = observer
    }

    static func key(_ instanceID: String, _ role: String) -> String { instanceID + "|" + role }

    public func current(instanceID: String, role: String) -> ExternalCredentials? {
        cache.withLock { $0[Self.key(instanceID, role)]?.result }
    }

    /// Calls STS for every instance of `store` whose credentials come from AssumeRole and are due.
    public func refreshDue(store: any InstanceStore) async {
        let snapshot = store.snapshot
        for id in snapshot.instanceIDs {
            guard let rt = snapshot.instance(id), let iam = rt.instance.iam, case .assumeRole(let settings) = iam.credentials.source
            else { continue }
            let key = Self.key(id, iam.role)
            let due = cache.withLock { c in c[key].map { $0.refreshAt <= clock.now() } ?? true }
            if due { await refresh(instanceID: id, role: iam.role, settings: settings, lifetime: iam.credentials.lifetime,
                                   rotateBeforeExpiry: iam.credentials.rotateBeforeExpiry) }
        }
    }

    /// Runs ``refreshDue(store:)`` every few seconds until cancelled.
    public func run(store: any InstanceStore) async {
        while !Task.isCancelled {
            await refreshDue(store: store)
            try? await Task.sleep(for: .seconds(2))
        }
    }

    func refresh(instanceID: String, role: String, settings: CredentialSettings.AssumeRole, lifetime: Int, rotateBeforeExpiry: Int) async {
        let now = clock.now()
        let key = Self.key(instanceID, role)
        do {
            let c = try await assumeRole(settings, sessionName: settings.sessionName ?? instanceID, duration: max(900, min(43200, lifetime)), now: now)
            // Refresh when the remaining lifetime falls to rotate-before-expiry (at least 5 min).
            let refreshAt = c.expiration.addingTimeInterval(-Double(max(300, min(rotateBeforeExpiry, Int(c.expiration.timeIntervalSince(now)) / 2))))
            cache.withLock { $0[key] = Entry(result: .credentials(c), refreshAt: refreshAt, failures: 0) }
            observer?(true, "AssumeRole \(settings.roleARN): new credentials \(c.accessKeyID.prefix(4))…, expire \(TimeFormat.iso8601(c.expiration))")
        } catch let failure as STSFailure {
            cache.withLock { c in
                let failures = (c[key]?.failures ?? 0) + 1
                let retry = now.addingTimeInterval(Double(min(60, 2 << min(failures, 5))))
                // Keep serving the last good credentials while they are still valid (transient failures).
                if case .credentials(let old)? = c[key]?.result, old.expiration > now, !failure.isAuthorization {
                    c[key] = Entry(result: .credentials(old), refreshAt: retry, failures: failures)
                } else {
                    c[key] = Entry(result: .failure(code: failure.imdsCode(role: role).code, message: failure.imdsCode(role: role).message, lastUpdated: now),
                                   refreshAt: retry, failures: failures)
                }
            }
            observer?(false, "AssumeRole \(settings.roleARN) failed: \(failure.detail)")
        } catch {
            observer?(false, "AssumeRole \(settings.roleARN) failed: \(error)")
        }
    }

    struct STSFailure: Error {
        var status: Int?
        var code: String
        var detail: String
        var isAuthorization: Bool {
            ["AccessDenied", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "RegionDisabledException",
             "MalformedPolicyDocument", "UnrecognizedClientException"].contains(code) || status == 403
        }
        /// What IMDS serves for this failure.
        func imdsCode(role: String) -> (code: String, message: String) {
            if isAuthorization {
                return ("AssumeRoleUnauthorizedAccess", "EC2 cannot assume the role \(role).  Please see documentation at https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html#roles-usingrole-ec2instance-roles.")
            }
            return ("InternalFailure", "EC2 could not obtain credentials for the role \(role) (\(code)); retrying.")
        }
    }

    /// One `AssumeRole` call.
    func assumeRole(_ s: CredentialSettings.AssumeRole, sessionName: String, duration: Int, now: Date) async throws -> RoleCredentials {
        let endpoint: IMDSEndpoint
        do { endpoint = try IMDSEndpoint(parsing: s.stsEndpoint, source: "sts-endpoint") } catch {
            throw STSFailure(status: nil, code: "InvalidEndpoint", detail: "\(error)")
        }
        var params: [(String, String)] = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", s.roleARN),
            ("RoleSessionName", sessionName), ("DurationSeconds", String(duration)),
        ]
        if let e = s.externalID { params.append(("ExternalId", e)) }
        let body = Array(QueryParameters(params.map { (name: $0.0, value: $0.1) }).formEncoded.utf8)
        let path = endpoint.basePath.isEmpty ? "/" : endpoint.basePath + "/"
        var unsigned: [(name: String, value: String)] = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
        if let token = s.sourceSessionToken { unsigned.append(("X-Amz-Security-Token", token)) }
        let headers = SigV4.clientHeaders(
            method: "POST", target: path, host: endpoint.authority, headers: unsigned, body: body,
            credentials: SigV4.Credentials(accessKeyID: s.sourceAccessKeyID, secretAccessKey: s.sourceSecretAccessKey),
            region: s.region, service: "sts", date: now
        ).map { IMDSHeaderField($0.name, $0.value) }
        let response: IMDSHTTPResponse
        do {
            response = try await transport.send(
                IMDSHTTPRequest(method: "POST", path: "/", headers: headers, body: body), to: endpoint,
                timeouts: IMDSTimeouts(connect: .seconds(3), read: .seconds(10)))
        } catch {
            throw STSFailure(status: nil, code: "ServiceUnavailable", detail: "cannot reach \(s.stsEndpoint): \(error)")
        }
        let xml = response.bodyText
        guard response.status == 200 else {
            let error = EC2ResponseReader.error(xml)
            let code = error?.code ?? "HTTP\(response.status)"
            throw STSFailure(status: response.status, code: code, detail: "\(response.status) \(code): \(error?.message ?? "")")
        }
        let credentials = XMLTree.parse(xml)?.first("Credentials")
        func field(_ name: String) -> String? {
            credentials?.child(name)?.text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let akid = field("AccessKeyId"), let secret = field("SecretAccessKey"),
              let token = field("SessionToken"), let exp = field("Expiration"),
              let expiration = Self.parseTime(exp)
        else {
            throw STSFailure(status: 200, code: "MalformedResponse", detail: "no credentials in the AssumeRole answer")
        }
        return RoleCredentials(accessKeyID: akid, secretAccessKey: secret, token: token,
                               lastUpdated: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down)), expiration: expiration)
    }

    /// STS times: `2019-11-09T13:34:41Z`, possibly with fractional seconds.
    static func parseTime(_ s: String) -> Date? {
        if let d = TimeFormat.parseISO8601(s) { return d }
        if let dot = s.firstIndex(of: "."), s.hasSuffix("Z") { return TimeFormat.parseISO8601(String(s[..<dot]) + "Z") }
        if s.hasSuffix("+00:00") { return TimeFormat.parseISO8601(String(s.dropLast(6)) + "Z") }
        return nil
    }
}
