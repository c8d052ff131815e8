import AWSQuery
import Foundation
import IMDSCore
import IMDSWire

/// The control plane: the subset of the EC2 Query API (version 2016-11-15) that concerns instance
/// metadata, answering as EC2 does so that `aws --endpoint-url … ec2 …` and the SDKs work unchanged.
///
/// A translator from requests into ``StoreChange``s: it reads the ``InstanceStore``'s snapshot and
/// replies only once the store says the change is durable (the data plane serves it from then on).
public final class EC2ControlPlane: AsyncResponder {
    public static let apiVersion = EC2Query.apiVersion

    public let store: any InstanceStore
    let accessKeys: [ControlPlaneAccessKey]
    let clock: any IMDSClock
    let makeRequestID: @Sendable () -> String

    /// - Parameters:
    ///   - store: the state this control plane describes and changes.
    ///   - accessKeys: when non-empty, every request must be signed (SigV4, service `ec2`) by one of them.
    public init(
        store: any InstanceStore, accessKeys: [ControlPlaneAccessKey] = [],
        clock: any IMDSClock = SystemClock(), requestID: (@Sendable () -> String)? = nil
    ) {
        self.store = store
        self.accessKeys = accessKeys
        self.clock = clock
        self.makeRequestID = requestID ?? { UUID().uuidString.lowercased() }
    }

    /// Serves `config` from now on (SIGHUP). An instance changed through the control plane keeps
    /// those changes; any other is launched from the file with the account defaults in effect now.
    /// Events, faults and the credential scenario go back to the file's. Throws, changing nothing,
    /// when `HttpTokensEnforced` forbids the launch.
    public func reload(_ config: IMDSConfig) async throws(EC2Error) {
        let resets = config.instances.map { StoreChange.resetEvents(instanceID: $0.instanceID) }
        do {
            try await store.reload(config, changes: resets + [.resetFaults]) { head in
                if let why = Self.launchViolation(config, in: head) { throw EC2Error("UnsupportedOperation", why) }
            }
        } catch {
            throw Self.ec2Error(error)
        }
    }

    /// Why one of `config`'s instances may not be launched over `snapshot` (nil when all may). An
    /// instance whose options were changed through the control plane keeps them, so it is not
    /// launched anew.
    public static func launchViolation(_ config: IMDSConfig, in snapshot: StoreSnapshot) -> String? {
        let defaults = snapshot.durable.accountDefaults ?? config.accountDefaults ?? AccountDefaults()
        for instance in config.instances where snapshot.record(instance.instanceID)?.options == nil {
            if let why = LaunchPolicy.violation(instance: instance, accountDefaults: defaults) { return why }
        }
        return nil
    }

    // MARK: - Requests

    public func respond(to request: IMDSRequest) async -> IMDSResponse { await handle(request) }

    /// The EC2 Query API's routes for the control plane's ``ControlPlaneRouter``: `POST` (form body)
    /// and `GET` (query string) on any path the other APIs do not own. Any other method is refused
    /// as EC2 refuses it, with `UnsupportedOperation`.
    public var routes: RouteGroup {
        RouteGroup(
            name: "ec2",
            routes: [
                Route("POST", .anyPath) { [self] r in await self.handle(r.request) },
                Route("GET", .anyPath) { [self] r in await self.handle(r.request) },
            ],
            prefixes: ["/"],
            refuse: { [self] refusal, _ in
                let requestID = self.makeRequestID()
                let error = Self.unsupportedMethod(refusal.method)
                return Self.xmlResponse(status: error.status, body: error.xml(requestID: requestID), requestID: requestID, now: self.clock.now())
            })
    }

    /// Answers one control-plane request (a change is durable before the reply).
    public func handle(_ request: IMDSRequest) async -> IMDSResponse {
        let requestID = makeRequestID()
        do {
            let (action, body) = try await dispatch(request)
            return Self.xmlResponse(status: 200, body: XML.response(action: action, requestID: requestID, body),
                                    requestID: requestID, now: clock.now())
        } catch {
            return Self.xmlResponse(status: error.status, body: error.xml(requestID: requestID), requestID: requestID, now: clock.now())
        }
    }

    /// With access keys configured, the error response for a request that does not carry a valid
    /// signature by one of them (nil when it does, or when no keys are configured). For routers that
    /// put other APIs next to this one on the control-plane listener.
    public func authenticationRefusal(_ request: IMDSRequest) -> IMDSResponse? {
        guard !accessKeys.isEmpty else { return nil }
        guard case .failure(let error) = SigV4.verify(request, keys: accessKeys, now: clock.now()) else { return nil }
        let requestID = makeRequestID()
        return Self.xmlResponse(status: error.status, body: error.xml(requestID: requestID), requestID: requestID, now: clock.now())
    }

    /// What a call may do, and how it was asked.
    struct Call {
        var params: QueryParameters
        var canWrite: Bool
        var dryRun: Bool
    }

    func dispatch(_ request: IMDSRequest) async throws(EC2Error) -> (String, [XMLNode]) {
        var canWrite = true
        if !accessKeys.isEmpty {
            switch SigV4.verify(request, keys: accessKeys, now: clock.now()) {
            case .success(let key): canWrite = !key.readOnly
            case .failure(let error): throw error
            }
        }
        guard request.method == "POST" || request.method == "GET" else { throw Self.unsupportedMethod(request.method) }
        var params = QueryParameters()
        let target = request.target
        if let q = target.firstIndex(of: "?") {
            guard let p = QueryParameters.parse(form: target[target.index(after: q)...]) else { throw Self.malformedQuery }
            params.append(contentsOf: p)
        }
        if request.method == "POST", !request.body.isEmpty {
            guard let text = String(validating: request.body, as: UTF8.self), let p = QueryParameters.parse(form: text[...])
            else { throw Self.malformedQuery }
            params.append(contentsOf: p)
        }
        guard params.pairs.count <= Self.maxParameters else { throw .tooManyParameters(params.pairs.count) }
        guard let action = params["Action"], !action.isEmpty else {
            throw EC2Error("MissingAction", "The request must contain the parameter Action")
        }
        guard let handler = Self.actions[action] else { throw .invalidAction(action) }
        guard let version = params["Version"] else { throw .missingParameter("Version") }
        guard version == Self.apiVersion else {
            throw EC2Error("NoSuchVersion", "The requested version (\(version)) of service AmazonEC2 does not exist")
        }
        for name in params.names where !Self.isCommon(name) && !handler.accepts(name) {
            throw .unknownParameter(name)
        }
        var dryRun = false
        if let raw = params["DryRun"] {
            switch raw.lowercased() {
            case "true": dryRun = true
            case "false": dryRun = false
            default: throw EC2Error("InvalidParameterValue", "Invalid value '\(raw)' for DryRun: expected true or false")
            }
        }
        let call = Call(params: params, canWrite: canWrite, dryRun: dryRun)
        if handler.mutates && !canWrite { throw .unauthorized }
        return (action, try await handler.run(self, call))
    }

    /// Parameters one request may carry (query string and body together); the body itself is bounded
    /// by the listener (`ListenerLimits.maxBodyBytes`).
    public static let maxParameters = 10_000

    static func unsupportedMethod(_ method: String) -> EC2Error {
        EC2Error("UnsupportedOperation", "The HTTP method \(method) is not supported; send the EC2 Query API as POST / with a form-encoded body.")
    }

    static let malformedQuery = EC2Error("MalformedQueryString", "The query string or form body contains a malformed percent-escape or is not UTF-8.")

    static func isCommon(_ name: String) -> Bool {
        name == "Action" || name == "Version" || name.hasPrefix("X-Amz-")
    }

    /// One action: which parameters it takes, whether it changes state, and its implementation.
    struct Handler: Sendable {
        var mutates: Bool
        var accepts: @Sendable (String) -> Bool
        var run: @Sendable (EC2ControlPlane, Call) async throws(EC2Error) -> [XMLNode]
    }

    static let actions: [String: Handler] = [
        "DescribeInstances": Handler(
            mutates: false,
            accepts: { n in ["DryRun", "MaxResults", "NextToken"].contains(n) || isListItem(n, "InstanceId") || isFilter(n) },
            run: { cp, call async throws(EC2Error) in try await cp.describeInstances(call) }),
        "ModifyInstanceMetadataOptions": Handler(
            mutates: true,
            accepts: { ["InstanceId", "HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint", "DryRun", "HttpProtocolIpv6", "InstanceMetadataTags"].contains($0) },
            run: { cp, call async throws(EC2Error) in try await cp.modifyInstanceMetadataOptions(call) }),
        "RunInstances": Handler(
            mutates: true, accepts: isRunInstancesParameter,
            run: { cp, call async throws(EC2Error) in try await cp.runInstances(call) }),
        "TerminateInstances": Handler(
            mutates: true, accepts: { $0 == "DryRun" || isListItem($0, "InstanceId") },
            run: { cp, call async throws(EC2Error) in try await cp.changeState(call, .terminate) }),
        "StopInstances": Handler(
            mutates: true, accepts: { ["DryRun", "Force", "Hibernate"].contains($0) || isListItem($0, "InstanceId") },
            run: { cp, call async throws(EC2Error) in try await cp.changeState(call, .stop) }),
        "StartInstances": Handler(
            mutates: true, accepts: { ["DryRun", "AdditionalInfo"].contains($0) || isListItem($0, "InstanceId") },
            run: { cp, call async throws(EC2Error) in try await cp.changeState(call, .start) }),
        "GetInstanceMetadataDefaults": Handler(
            mutates: false, accepts: { $0 == "DryRun" },
            run: { cp, call async throws(EC2Error) in try await cp.getInstanceMetadataDefaults(call) }),
        "ModifyInstanceMetadataDefaults": Handler(
            mutates: true,
            accepts: { ["HttpTokens", "HttpPutResponseHopLimit", "HttpEndpoint", "InstanceMetadataTags", "DryRun", "HttpTokensEnforced"].contains($0) },
            run: { cp, call async throws(EC2Error) in try await cp.modifyInstanceMetadataDefaults(call) }),
        "CreateTags": Handler(
            mutates: true, accepts: { $0 == "DryRun" || isListItem($0, "ResourceId") || isTagField($0) },
            run: { cp, call async throws(EC2Error) in try await cp.createTags(call) }),
        "DeleteTags": Handler(
            mutates: true, accepts: { $0 == "DryRun" || isListItem($0, "ResourceId") || isTagField($0) },
            run: { cp, call async throws(EC2Error) in try await cp.deleteTags(call) }),
        "DescribeTags": Handler(
            mutates: false, accepts: { ["DryRun", "MaxResults", "NextToken"].contains($0) || isFilter($0) },
            run: { cp, call async throws(EC2Error) in try await cp.describeTags(call) }),
    ]

    /// `Prefix.N` with N ≥ 1.
    static func isListItem(_ name: String, _ prefix: String) -> Bool {
        guard name.hasPrefix(prefix + "."), let n = Int(name.dropFirst(prefix.count + 1)) else { return false }
        return n >= 1
    }
    /// `Filter.N.Name` or `Filter.N.Value.M`.
    static func isFilter(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.first == "Filter", parts.count >= 3, let n = Int(parts[1]), n >= 1 else { return false }
        if parts.count == 3 { return parts[2] == "Name" }
        return parts.count == 4 && parts[2] == "Value" && (Int(parts[3]).map { $0 >= 1 } ?? false)
    }
    /// `Tag.N.Key` or `Tag.N.Value`.
    static func isTagField(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "Tag", let n = Int(parts[1]), n >= 1 else { return false }
        return parts[2] == "Key" || parts[2] == "Value"
    }

    // MARK: - Changing state

    /// Runs a change through the store: `change` reads the state every earlier change leaves and
    /// returns the changes to make (or throws an EC2 error, changing nothing); the reply waits until
    /// they are durable. Changes are serialized, so what `change` checked still holds.
    func commit<T: Sendable>(
        dryRun: Bool, _ change: (StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: T)
    ) async throws(EC2Error) -> T {
        do {
            return try await store.transact { snapshot in
                let made = try change(snapshot)
                if dryRun { throw EC2Error.dryRun }
                return made
            }.result
        } catch {
            throw Self.ec2Error(error)
        }
    }

    /// The EC2 error for a failed change.
    static func ec2Error(_ error: any Error) -> EC2Error {
        switch error {
        case let e as EC2Error: return e
        case StoreError.unknownInstance(let id): return .instanceNotFound([id])
        case StoreError.invalid(let why): return EC2Error("InvalidParameterValue", why)
        case StoreError.unavailable:
            return EC2Error("ServiceUnavailable", "The service is unavailable (\(error)). Please try again shortly.", status: 503)
        default: return .internalError("The change could not be saved (\(error)); nothing was changed.")
        }
    }

    /// An instance as it is in `snapshot`.
    static func runtime(_ id: String, in snapshot: StoreSnapshot) throws(EC2Error) -> InstanceRuntime {
        guard let rt = snapshot.instance(id) else { throw .instanceNotFound([id]) }
        return rt
    }

    // MARK: - Responses

    /// HTTP-level errors in EC2's XML (`<Response><Errors>…`), as the AWS CLI can read them: 400 for
    /// a request that is not HTTP/1.1, 413 for a body over the listener's limit, 431 for headers over it.
    public func httpErrorResponse(status: Int) -> IMDSResponse {
        let error: EC2Error
        switch status {
        case 413: error = EC2Error("RequestEntityTooLarge", "The request body is larger than this endpoint accepts.", status: 413)
        case 431: error = EC2Error("RequestHeaderSectionTooLarge", "The request's headers are larger than this endpoint accepts.", status: 431)
        default: error = EC2Error("MalformedHTTPRequest", "The request is not a well-formed HTTP/1.1 request.", status: status)
        }
        let requestID = makeRequestID()
        return Self.xmlResponse(status: error.status, body: error.xml(requestID: requestID), requestID: requestID, now: clock.now())
    }

    static func xmlResponse(status: Int, body: String, requestID: String, now: Date) -> IMDSResponse {
        let bytes = Array(body.utf8)
        return IMDSResponse(
            status: status, plane: .control,
            headers: [
                ("x-amzn-RequestId", requestID),
                ("Content-Type", "text/xml;charset=UTF-8"),
                ("Content-Length", String(bytes.count)),
                ("Date", TimeFormat.http(now)),
                ("Server", "AmazonEC2"),
                ("Connection", "close"),
            ],
            body: bytes)
    }
}
