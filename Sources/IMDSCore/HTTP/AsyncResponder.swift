import IMDSWire

/// Something that answers HTTP requests asynchronously (the control plane).
public protocol AsyncResponder: Sendable {
    func respond(to request: IMDSRequest) async -> IMDSResponse
    /// The answer to a request the HTTP layer could not read or that broke a limit (400 malformed,
    /// 413 body too large, 431 headers too large), sent before any route sees it. By default a small
    /// JSON error; the EC2 Query API answers in EC2's XML.
    func httpErrorResponse(status: Int) -> IMDSResponse
}

extension AsyncResponder {
    public func httpErrorResponse(status: Int) -> IMDSResponse { IMDSResponse.httpErrorJSON(status: status) }
}

extension IMDSResponse {
    /// `{"error":"malformed HTTP request"}` with `status` and a close.
    public static func httpErrorJSON(status: Int) -> IMDSResponse {
        let body = Array("{\"error\":\"malformed HTTP request\"}".utf8)
        return IMDSResponse(
            status: status, plane: .control,
            headers: [("Content-Type", "application/json"), ("Content-Length", String(body.count)), ("Connection", "close")],
            body: body)
    }
}
