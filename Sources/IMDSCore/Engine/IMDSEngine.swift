import Crypto
import Foundation
import IMDSWire

/// What a request turned out to be, for logs and metrics (never contains a token or credential).
public struct RequestOutcome: Sendable, Equatable {
    public enum Version: String, Sendable { case v1, v2 }
    public var instanceID: String?
    /// v2 when a token header was present, v1 otherwise; nil for token PUTs.
    public var version: Version?
    /// `token`, `meta-data`, `user-data`, `dynamic`, `versions`, `other`.
    public var category: String
    /// Set when a token was refused (missing under `required`, malformed, bad signature, expired).
    public var tokenRejection: String?
    /// A token was issued.
    public var tokenIssued: Bool
    /// The fault applied to this request, if any (its type name and id).
    public var fault: String?
    /// The caller matched no instance (answered with EC2's 404 page; `instanceID` is nil).
    public var unknownCaller: Bool = false
    /// The instance was over its ``InstanceThrottle`` (answered with EC2's 429 page).
    public var throttled: Bool = false

    public init(instanceID: String? = nil, version: Version? = nil, category: String = "other",
                tokenRejection: String? = nil, tokenIssued: Bool = false) {
        self.instanceID = instanceID
        self.version = version
        self.category = category
        self.tokenRejection = tokenRejection
        self.tokenIssued = tokenIssued
    }
}

/// The IMDS data plane as a pure function of (request, snapshot, now): it holds no state and never
/// throws; every failure becomes the response EC2 would send. The state comes from an
/// ``InstanceStore`` snapshot, read once per request (``DataPlane`` does that for listeners).
public struct IMDSEngine: Sendable {
    public let clock: any IMDSClock
    /// Decides probabilistic faults (a value in 0..<1 per decision).
    public let random: @Sendable () -> Double
    private let external: (any ExternalCredentialSource)?
    /// Decides which instance each request is answered as.
    public let resolver: any CallerResolver

    /// - Parameters:
    ///   - clock: the time ``DataPlane`` answers at.
    ///   - random: decides probabilistic faults.
    ///   - externalCredentials: real credentials (STS AssumeRole) for roles configured that way.
    ///   - resolver: which instance a request is answered as (default: by its source address).
    public init(
        clock: any IMDSClock = SystemClock(), random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        externalCredentials: (any ExternalCredentialSource)? = nil, resolver: any CallerResolver = SourceAddressResolver()
    ) {
        self.clock = clock
        self.resolver = resolver
        self.external = externalCredentials
        self.random = random
    }

    // MARK: - Requests

    /// Answers one data-plane request at `now` as the instance the ``resolver`` names (a caller
    /// that is no instance's gets EC2's 404 page on every path).
    /// - Parameters:
    ///   - consume: takes one use of a counted fault; false when it is used up (by a concurrent
    ///     request). Only asked for faults with a count.
    ///   - admit: takes one request from the instance's allowance under the snapshot's
    ///     ``StoreSnapshot/throttle``; false: answer EC2's 429 page. Only asked when one is set.
    public func respond(
        to request: IMDSRequest, snapshot: StoreSnapshot, now: Date, consume: (String) -> Bool = { _ in true },
        admit: (String, InstanceThrottle) -> Bool = { _, _ in true }
    ) -> IMDSResponse {
        guard case .instance(let id) = resolver.resolve(request, in: snapshot), let runtime = snapshot.instance(id),
            runtime.state.isServed
        else {
            return unknownCallerResponse(request, now: now)
        }
        let faults = snapshot.faults
        var ctx = Context(request: request, now: now, runtime: runtime, keys: snapshot.keys)
        if let throttle = snapshot.throttle, !admit(id, throttle) {
            ctx.outcome.category = "throttled"
            ctx.outcome.throttled = true
            var r = errorResponse(.throttled, ctx)
            r.outcome = ctx.outcome
            if request.method == "HEAD" { r.omitBody = true }
            return r
        }
        var response: IMDSResponse
        // Faults match the normalized path (collapsed slashes, no query), computed once per request.
        let faultPath = faults.isEmpty ? "" : Self.faultPath(request.target)
        if !faults.isEmpty, let faulted = applyFaults(faults, path: faultPath, &ctx, consume) {
            response = faulted
        } else {
            response = handle(&ctx, versions: snapshot.apiVersions)
            if !faults.isEmpty { applyPostFaults(faults, path: faultPath, &ctx, &response, consume) }
        }
        response.outcome = ctx.outcome
        if request.method == "HEAD" { response.omitBody = true }
        return response
    }

    struct Context {
        let request: IMDSRequest
        let now: Date
        let runtime: InstanceRuntime
        let keys: SecretKeys
        var outcome: RequestOutcome
        /// Remaining seconds of a valid token, sent back on the response.
        var remainingTTL: Int?
        init(request: IMDSRequest, now: Date, runtime: InstanceRuntime, keys: SecretKeys) {
            self.request = request
            self.now = now
            self.runtime = runtime
            self.keys = keys
            self.outcome = RequestOutcome(instanceID: runtime.instance.instanceID)
        }
    }

    private func handle(_ ctx: inout Context, versions: [String]) -> IMDSResponse {
        let req = ctx.request
        let options = ctx.runtime.options
        guard let parsed = RequestTarget(req.target) else { return errorResponse(.badRequest, ctx) }
        let parts = parsed.components
        let isTokenPath = parts.count == 3 && parts[1] == "api" && parts[2] == "token"

        if options.httpEndpoint == .disabled {
            ctx.outcome.category = isTokenPath ? "token" : "other"
            var r = errorResponse(.endpointDisabled, ctx)
            if isTokenPath && req.method == "PUT" { r.hopLimit = options.httpPutResponseHopLimit }
            return r
        }

        if isTokenPath {
            ctx.outcome.category = "token"
            guard parts[0] == "latest" else {
                if req.method == "PUT" {
                    var r = errorResponse(.versionedTokenPath, ctx)
                    r.hopLimit = options.httpPutResponseHopLimit
                    return r
                }
                return errorResponse(.notFound, ctx)
            }
            return tokenRequest(&ctx)
        }

        guard req.method == "GET" || req.method == "HEAD" else {
            return errorResponse(.methodNotAllowed(allow: BehaviourChoices.dataPathAllow), ctx)
        }

        // Authentication: a token header makes the request IMDSv2, and the token must be valid.
        if let token = req.header(IMDSHeader.token) {
            ctx.outcome.version = .v2
            switch ctx.keys.tokens.validate(token, instanceID: ctx.runtime.instance.instanceID, now: ctx.now,
                                   generation: ctx.runtime.tokenGeneration) {
            case .success(let remaining):
                ctx.remainingTTL = remaining
            case .failure(let why):
                ctx.outcome.tokenRejection = why.rawValue
                if BehaviourChoices.invalidTokenRejectedWhenOptional || options.httpTokens == .required {
                    ctx.outcome.category = Self.category(parts)
                    return errorResponse(.invalidToken, ctx)
                }
                ctx.outcome.version = .v1
            }
        } else {
            ctx.outcome.version = .v1
            if options.httpTokens == .required {
                ctx.outcome.tokenRejection = "missing"
                ctx.outcome.category = Self.category(parts)
                return errorResponse(.missingToken, ctx)
            }
        }
        ctx.outcome.category = Self.category(parts)
        return lookup(&ctx, parts: parts, trailingSlash: parsed.trailingSlash, versions: versions)
    }

    static func category(_ parts: [String]) -> String {
        guard parts.count >= 2 else { return parts.isEmpty ? "versions" : "version-root" }
        switch parts[1] {
        case "meta-data": return "meta-data"
        case "user-data": return "user-data"
        case "dynamic": return "dynamic"
        default: return "other"
        }
    }

    private func tokenRequest(_ ctx: inout Context) -> IMDSResponse {
        let req = ctx.request
        let hop = ctx.runtime.options.httpPutResponseHopLimit
        switch req.method {
        case "PUT":
            if req.header(IMDSHeader.forwardedFor) != nil {
                var r = errorResponse(.forwardedTokenRequest, ctx)
                r.hopLimit = hop
                return r
            }
            guard let raw = req.header(IMDSHeader.tokenTTLRequest), let ttl = Self.parseTTL(raw) else {
                var r = errorResponse(.invalidTokenTTL, ctx)
                r.hopLimit = hop
                return r
            }
            let token = ctx.keys.tokens.issue(
                instanceID: ctx.runtime.instance.instanceID, ttl: ttl, now: ctx.now,
                generation: ctx.runtime.tokenGeneration)
            ctx.outcome.tokenIssued = true
            let body = Array(token.utf8)
            return IMDSResponse(
                status: 200, reason: HTTPStatus.reason(200, plane: .data),
                headers: [
                    (IMDSHeader.tokenTTLResponse, String(ttl)),
                    ("Content-Length", String(body.count)),
                    ("Date", TimeFormat.http(ctx.now)),
                    ("Server", "EC2ws"),
                    ("Connection", "close"),
                    ("Content-Type", "text/plain"),
                ],
                body: body, hopLimit: hop)
        case "OPTIONS" where BehaviourChoices.optionsOnTokenPathAllowed:
            return IMDSResponse(
                status: 200, reason: HTTPStatus.reason(200, plane: .data),
                headers: [("Allow", "OPTIONS, PUT"), ("Content-Length", "0"), ("Content-Type", "text/plain"),
                          ("Date", TimeFormat.http(ctx.now)), ("Server", "EC2ws"), ("Connection", "close")],
                body: [])
        default:
            return errorResponse(.methodNotAllowed(allow: "OPTIONS, PUT"), ctx)
        }
    }

    /// A TTL is 1...21600 written as decimal digits only.
    static func parseTTL(_ raw: String) -> Int? {
        // Plain digits need no trimming; Foundation's trimmingCharacters bridges through NSString
        // and showed up in token-PUT profiles. Anything else takes the original path unchanged.
        let plain = !raw.isEmpty && raw.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
        let s = plain ? raw : raw.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty, s.utf8.count <= 10, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(s),
            (TokenAuthority.minTTL...TokenAuthority.maxTTL).contains(n)
        else { return nil }
        return n
    }

    // MARK: - Tree lookup

    private func lookup(_ ctx: inout Context, parts: [String], trailingSlash: Bool, versions: [String]) -> IMDSResponse {
        if parts.isEmpty {
            return ok(ctx, body: Array((versions + ["latest"]).joined(separator: "\n").utf8), contentType: "text/plain",
                      lastModified: ctx.runtime.lastModified)
        }
        let version = parts[0]
        guard version == "latest" || versions.contains(version) else { return errorResponse(.notFound, ctx) }
        var root = ctx.runtime.tree
        if !ctx.runtime.events.isEmpty {
            let overlay = ctx.runtime.eventOverlay(now: ctx.now)
            for (path, n) in overlay { root.set(path.split(separator: "/").map(String.init)[...], n) }
        }
        var node = MetadataNode.directory(root)
        // The path walked so far, kept only for a dated version (`latest` shows everything).
        var walked: [String] = []
        for name in parts.dropFirst() {
            guard case .directory(let dir) = node, let child = dir.children[name],
                version == "latest" || APIVersions.isVisible((walked + [name]).joined(separator: "/"), in: version)
            else { return errorResponse(.notFound, ctx) }
            if version != "latest" { walked.append(name) }
            node = child
        }
        switch node {
        case .directory(let dir):
            if !trailingSlash && parts.count > BehaviourChoices.listingWithoutSlashMaxDepth {
                return redirect(ctx, to: "/" + parts.joined(separator: "/") + "/")
            }
            let names = version == "latest" ? dir.orderedNames : dir.orderedNames.filter {
                APIVersions.isVisible((walked + [$0]).joined(separator: "/"), in: version)
            }
            let listing = names.map { dir.listingEntry($0) }.joined(separator: "\n")
            return ok(ctx, body: Array(listing.utf8), contentType: "text/plain", lastModified: ctx.runtime.lastModified)
        case .leaf(.text(let s)):
            return ok(ctx, body: Array(s.utf8), contentType: "text/plain", lastModified: ctx.runtime.lastModified)
        case .leaf(.bytes(let b)):
            return ok(ctx, body: b, contentType: "application/octet-stream", lastModified: ctx.runtime.lastModified)
        case .leaf(.dynamic(let d)):
            let (text, modified) = dynamicValue(d, ctx)
            return ok(ctx, body: Array(text.utf8), contentType: "text/plain", lastModified: modified)
        }
    }

    private func dynamicValue(_ value: DynamicValue, _ ctx: Context) -> (String, Date) {
        let i = ctx.runtime.instance
        let delivery: CredentialIssuer.Delivery = ctx.outcome.version == .v2 ? .v2 : .v1
        switch value {
        case .iamInfo:
            guard let iam = i.iam else { return ("", ctx.now) }
            var c = ctx.keys.credentials.credentials(instanceID: i.instanceID, role: iam.role, delivery: delivery,
                                            settings: iam.credentials, now: ctx.now)
            if case .assumeRole = iam.credentials.source, case .credentials(let real)? = external?.current(instanceID: i.instanceID, role: iam.role) {
                c = real
            }
            return (EC2JSON.pretty([
                ("Code", .string("Success")),
                ("LastUpdated", .string(TimeFormat.iso8601(c.lastUpdated))),
                ("InstanceProfileArn", .string(i.instanceProfileARN ?? "")),
                ("InstanceProfileId", .string(i.instanceProfileID ?? "")),
            ]), c.lastUpdated)
        case .roleCredentials(let extended):
            guard let iam = i.iam else { return ("", ctx.now) }
            var c = ctx.keys.credentials.credentials(instanceID: i.instanceID, role: iam.role, delivery: delivery,
                                            settings: iam.credentials, now: ctx.now)
            if case .assumeRole = iam.credentials.source {
                switch external?.current(instanceID: i.instanceID, role: iam.role) {
                case .credentials(let real)?:
                    c = real
                case .failure(let code, let message, let lastUpdated)?:
                    return (EC2JSON.pretty([
                        ("Code", .string(code)), ("Message", .string(message)),
                        ("LastUpdated", .string(TimeFormat.iso8601(lastUpdated))),
                    ]), lastUpdated)
                case nil:
                    return (EC2JSON.pretty([
                        ("Code", .string("AssumeRoleUnauthorizedAccess")),
                        ("Message", .string("EC2 cannot assume the role \(iam.role). No credentials have been obtained from STS yet.")),
                        ("LastUpdated", .string(TimeFormat.iso8601(ctx.now))),
                    ]), ctx.now)
                }
            }
            switch ctx.runtime.credentialScenario {
            case .nearExpiry(let seconds):
                c.expiration = Date(timeIntervalSince1970: (ctx.now.timeIntervalSince1970 + Double(seconds)).rounded(.down))
            case .expired:
                c.expiration = Date(timeIntervalSince1970: (ctx.now.timeIntervalSince1970 - 3600).rounded(.down))
                c.lastUpdated = c.expiration.addingTimeInterval(-Double(iam.credentials.lifetime))
            case .error(let code, let message):
                return (EC2JSON.pretty([
                    ("Code", .string(code)), ("Message", .string(message)),
                    ("LastUpdated", .string(TimeFormat.iso8601(c.lastUpdated))),
                ]), c.lastUpdated)
            case .normal, .detached, .roleChanged:
                break
            }
            return (Self.credentialsJSON(c, accountID: extended ? i.accountID : nil), c.lastUpdated)
        case .identityCredentialsInfo:
            let c = ctx.keys.credentials.credentials(instanceID: i.instanceID, role: "ec2-instance", delivery: .identity,
                                            settings: CredentialSettings(distinctV1Credentials: false), now: ctx.now)
            return (EC2JSON.pretty([
                ("Code", .string("Success")),
                ("LastUpdated", .string(TimeFormat.iso8601(c.lastUpdated))),
                ("AccountId", .string(i.accountID)),
            ]), c.lastUpdated)
        case .identityCredentials:
            let c = ctx.keys.credentials.credentials(instanceID: i.instanceID, role: "ec2-instance", delivery: .identity,
                                            settings: CredentialSettings(distinctV1Credentials: false), now: ctx.now)
            return (Self.credentialsJSON(c, accountID: nil), c.lastUpdated)
        }
    }

    /// The credentials document, in EC2's field order.
    public static func credentialsJSON(_ c: RoleCredentials, accountID: String?) -> String {
        var fields: [(String, JSONValue)] = [
            ("Code", .string("Success")),
            ("LastUpdated", .string(TimeFormat.iso8601(c.lastUpdated))),
            ("Type", .string("AWS-HMAC")),
            ("AccessKeyId", .string(c.accessKeyID)),
            ("SecretAccessKey", .string(c.secretAccessKey)),
            ("Token", .string(c.token)),
            ("Expiration", .string(TimeFormat.iso8601(c.expiration))),
        ]
        if let accountID { fields.append(("AccountId", .string(accountID))) }
        return EC2JSON.pretty(fields)
    }

    // MARK: - Faults

    /// Faults that replace the response (or the connection's fate) before any IMDS logic.
    static func faultPath(_ target: String) -> String {
        RequestTarget(target).map { "/" + $0.components.joined(separator: "/") + ($0.trailingSlash && !$0.components.isEmpty ? "/" : "") } ?? target
    }

    private func applyFaults(_ faults: [Fault], path: String, _ ctx: inout Context, _ consume: (String) -> Bool) -> IMDSResponse? {
        let isTokenPUT = ctx.request.method == "PUT" && path.hasSuffix("/api/token")
        for f in faults where (f.instanceID == nil || f.instanceID == ctx.runtime.instance.instanceID) && f.matches(path: path) {
            if f.kind.isTokenFault && !isTokenPUT { continue }
            switch f.kind {
            case .latency, .tokenTTLHeaderMissing: continue  // applied after the response is built
            default: break
            }
            guard random() < f.probability, (f.remaining == nil || consume(f.id)) else { continue }
            ctx.outcome.fault = "\(f.kind.typeName) \(f.id)"
            switch f.kind {
            case .hang, .tokenTimeout:
                var r = IMDSResponse(status: 0, reason: "", headers: [], body: [])
                r.action = .hang
                return r
            case .reset:
                var r = IMDSResponse(status: 0, reason: "", headers: [], body: [])
                r.action = .reset
                return r
            case .throttle:
                return errorResponse(.throttled, ctx)
            case .error(let status):
                return errorResponse(status == 503 ? .unavailable : .internalError, ctx)
            case .tokenStatus(let status):
                ctx.outcome.category = "token"
                switch status {
                case 403: return errorResponse(.endpointDisabled, ctx)
                case 404: return errorResponse(.notFound, ctx)
                default: return errorResponse(.methodNotAllowed(allow: "OPTIONS, PUT"), ctx)
                }
            case .latency, .tokenTTLHeaderMissing:
                continue
            }
        }
        return nil
    }

    /// Faults that alter a built response: added latency, a missing TTL header on token responses.
    private func applyPostFaults(_ faults: [Fault], path: String, _ ctx: inout Context, _ response: inout IMDSResponse, _ consume: (String) -> Bool) {
        for f in faults where (f.instanceID == nil || f.instanceID == ctx.runtime.instance.instanceID) && f.matches(path: path) {
            switch f.kind {
            case .latency(let ms):
                guard random() < f.probability, (f.remaining == nil || consume(f.id)) else { continue }
                response.delayMilliseconds += ms
                ctx.outcome.fault = "\(f.kind.typeName) \(f.id)"
            case .tokenTTLHeaderMissing where ctx.outcome.tokenIssued:
                guard random() < f.probability, (f.remaining == nil || consume(f.id)) else { continue }
                response.headers.removeAll { $0.name == IMDSHeader.tokenTTLResponse }
                ctx.outcome.fault = "\(f.kind.typeName) \(f.id)"
            default:
                continue
            }
        }
    }

    // MARK: - Responses

    private func ok(_ ctx: Context, body: [UInt8], contentType: String, lastModified: Date) -> IMDSResponse {
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(8)
        if let ttl = ctx.remainingTTL { headers.append((IMDSHeader.tokenTTLResponse, String(ttl))) }
        headers.append(("Content-Type", contentType))
        headers.append(("Accept-Ranges", "none"))
        headers.append(("Last-Modified", TimeFormat.http(lastModified)))
        headers.append(("Content-Length", String(body.count)))
        headers.append(("Date", TimeFormat.http(ctx.now)))
        headers.append(("Server", "EC2ws"))
        headers.append(("Connection", "close"))
        return IMDSResponse(status: 200, plane: .data, headers: headers, body: body)
    }

    private func redirect(_ ctx: Context, to path: String) -> IMDSResponse {
        let host = ctx.request.header("Host").flatMap { Self.isSafeHost($0) ? $0 : nil } ?? BehaviourChoices.redirectHostFallback
        var headers: [(name: String, value: String)] = []
        if let ttl = ctx.remainingTTL { headers.append((IMDSHeader.tokenTTLResponse, String(ttl))) }
        headers += [("Location", "http://\(host)\(RequestTarget.encode(path))"), ("Content-Length", "0"),
                    ("Date", TimeFormat.http(ctx.now)), ("Server", "EC2ws"), ("Connection", "close")]
        return IMDSResponse(status: 301, plane: .data, headers: headers, body: [])
    }

    /// A Host header usable in a Location: host or [v6], optional port, nothing else.
    static func isSafeHost(_ host: String) -> Bool {
        !host.isEmpty && host.utf8.count <= 255
            && host.utf8.allSatisfy { c in
                (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 46 || c == 91 || c == 93
            }
    }

    func errorResponse(_ error: IMDSError, _ ctx: Context) -> IMDSResponse {
        var headers: [(name: String, value: String)] = []
        if let ttl = ctx.remainingTTL { headers.append((IMDSHeader.tokenTTLResponse, String(ttl))) }
        if case .methodNotAllowed(let allow) = error {
            headers += [("Allow", allow), ("Content-Length", "0"), ("Content-Type", "text/plain"),
                        ("Date", TimeFormat.http(ctx.now)), ("Server", "EC2ws"), ("Connection", "close")]
            return IMDSResponse(status: error.status, reason: error.reason, headers: headers, body: [])
        }
        let body = ErrorPage.html(status: error.status)
        headers += [("Content-Type", "text/html"), ("Content-Length", String(body.count)),
                    ("Date", TimeFormat.http(ctx.now)), ("Server", "EC2ws"), ("Connection", "close")]
        return IMDSResponse(status: error.status, reason: error.reason, headers: headers, body: body)
    }

    /// EC2's 404 page, for a caller that is no instance's: the same on every path and method, so it
    /// tells the caller nothing about the instances served.
    func unknownCallerResponse(_ request: IMDSRequest, now: Date) -> IMDSResponse {
        let body = ErrorPage.html(status: IMDSError.notFound.status)
        var r = IMDSResponse(
            status: IMDSError.notFound.status, reason: IMDSError.notFound.reason,
            headers: [("Content-Type", "text/html"), ("Content-Length", String(body.count)),
                      ("Date", TimeFormat.http(now)), ("Server", "EC2ws"), ("Connection", "close")],
            body: body)
        r.outcome = RequestOutcome(instanceID: nil, category: "unknown-caller")
        r.outcome.unknownCaller = true
        if request.method == "HEAD" { r.omitBody = true }
        return r
    }

    /// The response for a request the transport could not parse (sent before any engine logic).
    public func malformedRequestResponse(status: Int = 400) -> IMDSResponse {
        let body = ErrorPage.html(status: status)
        return IMDSResponse(
            status: status, plane: .data,
            headers: [("Content-Type", "text/html"), ("Content-Length", String(body.count)),
                      ("Date", TimeFormat.http(clock.now())), ("Server", "EC2ws"), ("Connection", "close")],
            body: body)
    }
}
