import IMDSWire

/// Why an IMDS call failed.
public enum IMDSClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A setting has a value the SDKs reject (bad endpoint URI, unknown endpoint mode, ...).
    case invalidConfiguration(String)
    /// `AWS_EC2_METADATA_DISABLED=true` (or `disable_ec2_metadata`): IMDS is not called at all.
    case disabled
    /// IMDS answered with an error status (after retries, for retryable statuses).
    case httpError(status: Int, path: String)
    /// No HTTP response (after retries): timeout, refused, reset.
    case transport(IMDSTransportError, path: String)
    /// The token request was rejected as invalid (400): a bug or a proxy in the way; no fallback.
    case tokenRequestInvalid
    /// No token could be had (the token request's own failure inside) and IMDSv1 may not be used.
    indirect case tokenUnavailable(IMDSClientError)
    /// A 200 answer that cannot be used (missing TTL header, bad JSON, ...).
    case invalidResponse(String)
    /// IMDS returned credentials JSON with a `Code` other than `Success`.
    case credentialsError(code: String, message: String?)

    public var description: String {
        switch self {
        case .invalidConfiguration(let m): "invalid IMDS configuration: \(m)"
        case .disabled: "IMDS access is disabled (AWS_EC2_METADATA_DISABLED=true)"
        case .httpError(let status, let path):
            "\(path): HTTP \(status) \(Self.meaning(status))"
        case .transport(let e, let path): "\(path): \(e)"
        case .tokenRequestInvalid: "the token request was rejected with 400 Bad Request (missing or invalid TTL header)"
        case .tokenUnavailable(let why):
            "unable to get an IMDSv2 token (\(why)) and IMDSv1 may not be used"
        case .invalidResponse(let m): "invalid IMDS response: \(m)"
        case .credentialsError(let code, let message):
            "IMDS returned a credentials error: \(code)" + (message.map { ": \($0)" } ?? "")
        }
    }

    /// The HTTP status, when IMDS answered with one.
    public var status: Int? {
        switch self {
        case .httpError(let s, _): s
        case .tokenRequestInvalid: 400
        case .tokenUnavailable(let inner): inner.status
        default: nil
        }
    }

    /// The transport error, when there was no response.
    public var transportError: IMDSTransportError? {
        switch self {
        case .transport(let e, _): e
        case .tokenUnavailable(let inner): inner.transportError
        default: nil
        }
    }

    /// The innermost cause (the token request's failure for ``tokenUnavailable(_:)``).
    public var rootCause: IMDSClientError {
        if case .tokenUnavailable(let inner) = self { return inner.rootCause }
        return self
    }

    /// The status's reason phrase (from the project's one table), with what it means for a caller of IMDS.
    static func meaning(_ status: Int) -> String {
        let reason = HTTPStatus.reason(status)
        switch status {
        case 401: return reason + " (missing, invalid or expired token; with HttpTokens=required every request needs a token)"
        case 403: return reason + " (the metadata endpoint is disabled, or the request was refused)"
        case 429: return reason + " (throttled)"
        default: return reason
        }
    }
}
