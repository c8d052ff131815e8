import Foundation
import IMDSWire

/// A path pattern: literal segments and `{name}` parameters (`/admin/v1/events/{id}/complete`), or
/// ``anyPath``. Paths are compared by segment; empty segments (`//`, a trailing `/`) do not count.
public struct RoutePattern: Sendable, Equatable, CustomStringConvertible {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    /// nil: every path.
    let segments: [Segment]?

    /// Parses `/a/{b}/c`.
    public init(_ text: String) {
        segments = text.split(separator: "/").map { s in
            s.hasPrefix("{") && s.hasSuffix("}") ? .parameter(String(s.dropFirst().dropLast())) : .literal(String(s))
        }
    }

    private init(any: Void) { segments = nil }

    /// Matches every path (an API that answers on any path, as the EC2 Query API does).
    public static let anyPath = RoutePattern(any: ())

    public var isAnyPath: Bool { segments == nil }

    /// The parameters when `path` matches.
    func match(_ path: [Substring]) -> [String: String]? {
        guard let segments else { return [:] }
        guard segments.count == path.count else { return nil }
        var parameters: [String: String] = [:]
        for (pattern, actual) in zip(segments, path) {
            switch pattern {
            case .literal(let l): guard l == actual else { return nil }
            case .parameter(let name): parameters[name] = String(actual).removingPercentEncoding ?? String(actual)
            }
        }
        return parameters
    }

    public var description: String {
        guard let segments else { return "*" }
        return "/" + segments.map { s in
            switch s {
            case .literal(let l): l
            case .parameter(let p): "{\(p)}"
            }
        }.joined(separator: "/")
    }
}

/// A request as a route's handler gets it: the request, its path parameters and its query.
public struct RoutedRequest: Sendable {
    public var request: IMDSRequest
    /// The path without the query, as sent.
    public var path: String
    /// `{name}` segments of the route's pattern, percent-decoded.
    public var parameters: [String: String]
    /// The query string's pairs, percent-decoded (the last of repeated names wins).
    public var query: [String: String]

    public var method: String { request.method }
    public var body: [UInt8] { request.body }
}

/// One method on one pattern, answered by `handler`.
public struct Route: Sendable {
    public var method: String
    public var pattern: RoutePattern
    public var handler: @Sendable (RoutedRequest) async -> IMDSResponse

    public init(_ method: String, _ pattern: RoutePattern, _ handler: @escaping @Sendable (RoutedRequest) async -> IMDSResponse) {
        self.method = method
        self.pattern = pattern
        self.handler = handler
    }

    public init(_ method: String, _ pattern: String, _ handler: @escaping @Sendable (RoutedRequest) async -> IMDSResponse) {
        self.init(method, RoutePattern(pattern), handler)
    }
}

/// Why the router refused a request: no route has the path (404), or none has the method (405).
public struct RouteRefusal: Sendable, Equatable {
    public var status: Int
    public var method: String
    public var path: String
    /// For a 405: the methods the path accepts.
    public var allowed: [String]
}

/// One API on the control-plane listener: its routes, the path prefixes it owns (a request under
/// one that no route matches is this API's 404), and how it words the router's refusals.
public struct RouteGroup: Sendable {
    public var name: String
    public var routes: [Route]
    /// Prefixes by segment (`/admin/v1` owns `/admin/v1/x`, not `/admin/v1x`); `/` owns everything.
    public var prefixes: [String]
    public var refuse: @Sendable (RouteRefusal, IMDSRequest) -> IMDSResponse

    public init(
        name: String, routes: [Route], prefixes: [String] = [],
        refuse: @escaping @Sendable (RouteRefusal, IMDSRequest) -> IMDSResponse = RouteGroup.jsonRefusal
    ) {
        self.name = name
        self.routes = routes
        self.prefixes = prefixes
        self.refuse = refuse
    }

    /// The JSON APIs' refusal (admin, observability): `{"error": {"code": "NotFound" | "MethodNotAllowed",
    /// "message"}}` with 404, or 405 and an `Allow` header.
    @Sendable public static func jsonRefusal(_ refusal: RouteRefusal, _ request: IMDSRequest) -> IMDSResponse {
        let docs = "see docs/admin-api.md"
        if refusal.status == 405 {
            let allowed = refusal.allowed.joined(separator: ", ")
            var r = IMDSResponse.json(405, AdminError(
                code: "MethodNotAllowed", message: "\(refusal.method) \(refusal.path) is not supported (allowed: \(allowed)); \(docs)"))
            r.headers.insert(("Allow", allowed), at: 0)
            return r
        }
        return IMDSResponse.json(404, AdminError(code: "NotFound", message: "no resource \(refusal.path); \(docs)"))
    }
}

/// The control plane's one router: every API on the listener (EC2 Query, admin, observability)
/// declares its routes by method and path, and every request is answered the same way — a route
/// that has the path and the method answers; a path some route has, but not with this method, is
/// a 405 listing the allowed methods; any other path is a 404, each worded by the API that owns it.
///
/// ```swift
/// let router = ControlPlaneRouter([observability.routes, admin.routes, ec2.routes],
///                                 gate: { request in ec2.authenticationRefusal(request) })
/// ```
public struct ControlPlaneRouter: AsyncResponder {
    public var groups: [RouteGroup]
    /// Checked before any route (e.g. SigV4 when access keys are configured); a response refuses the request.
    public var gate: (@Sendable (IMDSRequest) async -> IMDSResponse?)?

    /// How HTTP-level errors (unreadable request, body or headers too large) are answered; nil: JSON.
    /// The EC2 Query API's XML when it owns the listener (``AsyncResponder/httpErrorResponse(status:)``).
    public var httpError: (@Sendable (Int) -> IMDSResponse)?

    public init(_ groups: [RouteGroup], gate: (@Sendable (IMDSRequest) async -> IMDSResponse?)? = nil,
                httpError: (@Sendable (Int) -> IMDSResponse)? = nil) {
        self.groups = groups
        self.gate = gate
        self.httpError = httpError
    }

    public func httpErrorResponse(status: Int) -> IMDSResponse {
        httpError?(status) ?? IMDSResponse.httpErrorJSON(status: status)
    }

    public func respond(to request: IMDSRequest) async -> IMDSResponse {
        if let gate, let refused = await gate(request) { return refused }
        let (path, rawQuery) = Self.split(request.target)
        let segments = path.split(separator: "/")
        func routed(_ parameters: [String: String]) -> RoutedRequest {
            RoutedRequest(request: request, path: path, parameters: parameters, query: Self.query(rawQuery))
        }
        // Routes with a pattern first: the path decides, then the method.
        var allowed: [String] = []
        var owner: RouteGroup?
        for group in groups {
            for route in group.routes where !route.pattern.isAnyPath {
                guard let parameters = route.pattern.match(segments) else { continue }
                if route.method == request.method { return await route.handler(routed(parameters)) }
                if !allowed.contains(route.method) { allowed.append(route.method) }
                owner = owner ?? group
            }
        }
        if let owner {
            return owner.refuse(RouteRefusal(status: 405, method: request.method, path: path, allowed: allowed), request)
        }
        // Then the API that owns the path (longest prefix), with its any-path routes.
        guard let claimant = claimant(of: segments) else {
            return RouteGroup.jsonRefusal(RouteRefusal(status: 404, method: request.method, path: path, allowed: []), request)
        }
        for route in claimant.routes where route.pattern.isAnyPath {
            if route.method == request.method { return await route.handler(routed([:])) }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        let status = allowed.isEmpty ? 404 : 405
        return claimant.refuse(RouteRefusal(status: status, method: request.method, path: path, allowed: allowed), request)
    }

    /// The group with the longest prefix (by segments) that contains `segments`.
    func claimant(of segments: [Substring]) -> RouteGroup? {
        var best: (group: RouteGroup, length: Int)?
        for group in groups {
            for prefix in group.prefixes {
                let p = prefix.split(separator: "/")
                guard p.count <= segments.count, zip(p, segments).allSatisfy({ $0 == $1 }) else { continue }
                if best == nil || p.count > best!.length { best = (group, p.count) }
            }
        }
        return best?.group
    }

    static func split(_ target: String) -> (path: String, query: Substring) {
        guard let q = target.firstIndex(of: "?") else { return (target, "") }
        return (String(target[..<q]), target[target.index(after: q)...])
    }

    /// `a=1&b=%2F` → `["a": "1", "b": "/"]`; a bare `k` gives `k: ""`.
    static func query(_ raw: Substring) -> [String: String] {
        var query: [String: String] = [:]
        for pair in raw.split(separator: "&") {
            // Not omitting empty pieces: a bare `=` must give a key, not an empty array.
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
            query[k] = kv.count == 2 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
        }
        return query
    }
}

extension IMDSResponse {
    /// A control-plane answer: the body with its type, never cached, the connection closed after.
    public static func controlPlane(_ status: Int, contentType: String, body: [UInt8], omitBody: Bool = false) -> IMDSResponse {
        IMDSResponse(
            status: status, plane: .control,
            headers: [("Content-Type", contentType), ("Content-Length", String(body.count)), ("Cache-Control", "no-store"),
                      ("Date", TimeFormat.http(Date())), ("Connection", "close")],
            body: body, omitBody: omitBody)
    }

    /// A JSON control-plane answer, written as the admin API writes its bodies (``AdminJSON``).
    public static func json(_ status: Int, _ value: some Encodable) -> IMDSResponse {
        controlPlane(status, contentType: "application/json", body: AdminJSON.encode(value))
    }
}
