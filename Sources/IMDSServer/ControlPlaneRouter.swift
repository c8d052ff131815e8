import IMDSCore

/// Routes control-plane requests by path prefix: the admin API (`/admin/`), metrics (`/metrics`),
/// the dashboard, and everything else to the EC2 Query API. One listener, several APIs; the data
/// plane never sees any of them.
public struct ControlPlaneRouter: AsyncResponder {
    public struct Route: Sendable {
        public var prefix: String
        public var responder: any AsyncResponder
        public init(prefix: String, responder: any AsyncResponder) {
            self.prefix = prefix
            self.responder = responder
        }
    }

    public var routes: [Route]
    public var fallback: any AsyncResponder
    /// Checked before any route (e.g. SigV4 when access keys are configured); returning a response
    /// refuses the request with it.
    public var gate: (@Sendable (IMDSRequest) async -> IMDSResponse?)?

    public init(routes: [Route], fallback: any AsyncResponder, gate: (@Sendable (IMDSRequest) async -> IMDSResponse?)? = nil) {
        self.routes = routes
        self.fallback = fallback
        self.gate = gate
    }

    public func respond(to request: IMDSRequest) async -> IMDSResponse {
        if let gate, let refused = await gate(request) { return refused }
        let path = request.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.target
        for route in routes where path == route.prefix || path.hasPrefix(route.prefix.hasSuffix("/") ? route.prefix : route.prefix + "/") {
            return await route.responder.respond(to: request)
        }
        return await fallback.respond(to: request)
    }
}
