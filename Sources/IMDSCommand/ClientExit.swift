import IMDSClient

/// Exit statuses of the client commands (`get`, `ls`, `dump`, `token`); see docs/client-cli.md.
enum ClientExit: Int32 {
    case ok = 0
    /// Any other failure: an unexpected HTTP status (400, 5xx after retries), a malformed answer.
    case failure = 1
    /// Invalid configuration (bad endpoint or mode), or IMDS disabled by AWS_EC2_METADATA_DISABLED.
    case configuration = 2
    /// 404 Not Found: the item does not exist (or does not apply to this instance).
    case notFound = 3
    /// 401 Unauthorized: no or invalid token (IMDSv1 rejected because HttpTokens=required, token expired).
    case unauthorized = 4
    /// 403 Forbidden: the metadata endpoint is disabled (or a proxy's request was refused).
    case forbidden = 5
    /// Timed out connecting or waiting for the answer.
    case timeout = 6
    /// Connection refused: nothing listens at the endpoint.
    case connectionRefused = 7
    /// Another connection failure (unreachable, reset).
    case connectionFailed = 8

    static func of(_ error: IMDSClientError) -> ClientExit {
        switch error.rootCause {
        case .invalidConfiguration, .disabled: return .configuration
        case .httpError(let status, _):
            switch status {
            case 404: return .notFound
            case 401: return .unauthorized
            case 403: return .forbidden
            default: return .failure
            }
        case .transport(let t, _):
            if t.isTimeout { return .timeout }
            if t == .connectionRefused { return .connectionRefused }
            return .connectionFailed
        default: return .failure
        }
    }

    var kind: String {
        switch self {
        case .ok: "ok"
        case .failure: "failure"
        case .configuration: "configuration"
        case .notFound: "not-found"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .timeout: "timeout"
        case .connectionRefused: "connection-refused"
        case .connectionFailed: "connection-failed"
        }
    }
}
