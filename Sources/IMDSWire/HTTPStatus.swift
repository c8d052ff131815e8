/// The one table from HTTP status code to reason phrase for everything imds sends or reports: the
/// data plane, every API on the control plane (EC2 Query, admin, observability), the listeners'
/// answers to malformed requests, and the client library's messages.
///
/// Standard phrases are RFC 9110's (the same as swift-http-types'). EC2's data plane differs in one
/// place, and only there: its 405 status line reads `Not Allowed` (captured; imds-behaviour.md §2.3).
///
/// ```swift
/// HTTPStatus.reason(413)                  // "Content Too Large"
/// HTTPStatus.reason(405, plane: .data)    // "Not Allowed"      (EC2's metadata service)
/// HTTPStatus.reason(405, plane: .control) // "Method Not Allowed"
/// ```
public enum HTTPStatus {
    /// Which side of imds answers: the metadata service (EC2's exact bytes) or the control plane.
    public enum Plane: Sendable, CaseIterable {
        case data
        case control
    }

    /// Every status imds sends, with its standard reason phrase.
    public static let reasons: [Int: String] = [
        200: "OK",
        201: "Created",
        301: "Moved Permanently",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        412: "Precondition Failed",
        413: "Content Too Large",
        429: "Too Many Requests",
        431: "Request Header Fields Too Large",
        500: "Internal Server Error",
        503: "Service Unavailable",
    ]

    /// The phrases EC2's metadata service is known to send instead of the standard ones.
    public static let dataPlaneReasons: [Int: String] = [
        405: "Not Allowed"
    ]

    /// The reason phrase for `status` on `plane`. A status outside the table gets its class's name
    /// ("Client Error", "Server Error", …), never an empty phrase.
    public static func reason(_ status: Int, plane: Plane = .control) -> String {
        if plane == .data, let r = dataPlaneReasons[status] { return r }
        if let r = reasons[status] { return r }
        switch status {
        case 100..<200: return "Informational"
        case 200..<300: return "Success"
        case 300..<400: return "Redirection"
        case 400..<500: return "Client Error"
        default: return "Server Error"
        }
    }
}
