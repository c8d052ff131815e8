import IMDSWire

/// Every way a data-plane request can fail, with its status, in one place.
///
/// Changing what EC2 answers for a case is a one-line change in ``status`` and a row in the status
/// matrix test.
public enum IMDSError: Error, Equatable, Sendable {
    /// Unknown path, category that does not apply, or a path inside a JSON or text leaf.
    case notFound
    /// Token PUT without a valid `X-aws-ec2-metadata-token-ttl-seconds` (missing, non-integer, 0, > 21600).
    case invalidTokenTTL
    /// Token PUT on a versioned path such as `/2021-03-23/api/token`.
    case versionedTokenPath
    /// Token PUT carrying `X-Forwarded-For`.
    case forwardedTokenRequest
    /// IMDSv1 request while `HttpTokens` is `required`.
    case missingToken
    /// Expired, altered, malformed or foreign token.
    case invalidToken
    /// `HttpEndpoint` is `disabled`.
    case endpointDisabled
    /// A method the path does not accept.
    case methodNotAllowed(allow: String)
    /// A request the HTTP layer could not parse, or that breaks a limit.
    case badRequest
    /// Throttled (fault injection).
    case throttled
    /// Internal error (fault injection).
    case internalError
    /// Service unavailable (fault injection).
    case unavailable

    /// The HTTP status for this error.
    public var status: Int {
        switch self {
        case .notFound: 404
        case .invalidTokenTTL, .badRequest: 400
        case .versionedTokenPath: 403
        case .forwardedTokenRequest: BehaviourChoices.forwardedTokenRequestStatus
        case .missingToken, .invalidToken: 401
        case .endpointDisabled: 403
        case .methodNotAllowed: 405
        case .throttled: 429
        case .internalError: 500
        case .unavailable: 503
        }
    }

    /// The reason phrase on the status line, from the project's one table (EC2's 405 says `Not Allowed`).
    public var reason: String { HTTPStatus.reason(status, plane: .data) }
}
