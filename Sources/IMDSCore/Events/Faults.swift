/// A way to make the data plane misbehave on purpose, for testing clients' resilience.
public struct Fault: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        /// Add this many milliseconds before the response.
        case latency(milliseconds: Int)
        /// Answer 429 Too Many Requests.
        case throttle
        /// Answer 500 or 503.
        case error(status: Int)
        /// Reset the connection (RST) without answering.
        case reset
        /// Accept the request and never answer (until the client gives up).
        case hang
        /// Answer the token PUT with 403, 404 or 405 (forces SDKs' IMDSv1 fallback).
        case tokenStatus(Int)
        /// Never answer the token PUT (as a hop limit that is too low does).
        case tokenTimeout
        /// Answer the token PUT without the `X-aws-ec2-metadata-token-ttl-seconds` header.
        case tokenTTLHeaderMissing

        public var typeName: String {
            switch self {
            case .latency: "latency"
            case .throttle: "throttle"
            case .error: "error"
            case .reset: "reset"
            case .hang: "hang"
            case .tokenStatus: "token-status"
            case .tokenTimeout: "token-timeout"
            case .tokenTTLHeaderMissing: "token-ttl-header-missing"
            }
        }

        /// Whether the fault concerns only token PUTs.
        public var isTokenFault: Bool {
            switch self {
            case .tokenStatus, .tokenTimeout, .tokenTTLHeaderMissing: true
            default: false
            }
        }
    }

    public var id: String
    public var kind: Kind
    /// Glob over the request path (`*` matches anything, including `/`); nil matches every path.
    public var pathPattern: String?
    /// Fraction of matching requests affected, 0 < p ≤ 1.
    public var probability: Double
    /// The instance it applies to; nil for every instance.
    public var instanceID: String?
    /// How many more requests it may affect; nil for no limit. A fault whose count reaches 0 is removed
    /// (for example "throttle the next 2 requests", to test a client's retries deterministically).
    public var remaining: Int?

    public init(
        id: String = Fault.newID(), kind: Kind, pathPattern: String? = nil, probability: Double = 1,
        instanceID: String? = nil, remaining: Int? = nil
    ) {
        self.id = id
        self.kind = kind
        self.pathPattern = pathPattern
        self.probability = probability
        self.instanceID = instanceID
        self.remaining = remaining
    }

    public static func newID() -> String { "fault-" + (0..<12).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined() }

    /// Whether the pattern matches `path` (`*` is any run of characters; nothing else is special).
    public func matches(path: String) -> Bool {
        guard let pattern = pathPattern else { return true }
        return Glob.matches(pattern, path, syntax: .starOnly)
    }
}
