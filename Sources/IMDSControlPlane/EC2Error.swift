import AWSQuery

/// An error as EC2 returns it: a code, a message and an HTTP status, rendered as
/// `<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>`.
public struct EC2Error: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var status: Int

    public init(_ code: String, _ message: String, status: Int = 400) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "\(code): \(message)" }

    /// The XML body EC2 sends with an error.
    public func xml(requestID: String) -> String {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>\(XML.escape(code))</Code><Message>\(XML.escape(message))</Message></Error></Errors><RequestID>\(requestID)</RequestID></Response>"
    }

    // MARK: - The errors this control plane returns (codes and statuses as EC2 uses them)

    static func instanceNotFound(_ ids: [String]) -> EC2Error {
        if ids.count == 1 { return EC2Error("InvalidInstanceID.NotFound", "The instance ID '\(ids[0])' does not exist") }
        return EC2Error("InvalidInstanceID.NotFound", "The instance IDs '\(ids.joined(separator: ", "))' do not exist")
    }
    static func instanceMalformed(_ id: String) -> EC2Error {
        EC2Error("InvalidInstanceID.Malformed", "Invalid id: \"\(id)\" (expecting \"i-...\")")
    }
    static func missingParameter(_ name: String) -> EC2Error {
        EC2Error("MissingParameter", "The request must contain the parameter \(name)")
    }
    static func invalidAction(_ action: String) -> EC2Error {
        EC2Error("InvalidAction", "The action \(action) is not valid for this web service.")
    }
    static func unknownParameter(_ name: String) -> EC2Error {
        EC2Error("UnknownParameter", "The parameter \(name) is not recognized")
    }
    static func invalidValue(_ value: String, for parameter: String, allowed: [String]) -> EC2Error {
        let list = allowed.map { "'\($0)'" }
        let choice = list.count == 2 ? "either \(list[0]) or \(list[1])" : "one of " + list.joined(separator: ", ")
        return EC2Error("InvalidParameterValue", "A value of '\(value)' is not valid for \(parameter). Specify \(choice) and try again.")
    }
    static let dryRun = EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", status: 412)
    static let unauthorized = EC2Error("UnauthorizedOperation", "You are not authorized to perform this operation.", status: 403)
    static let authFailure = EC2Error("AuthFailure", "AWS was not able to validate the provided access credentials", status: 401)
    static let signatureMismatch = EC2Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        status: 403)
    static let missingAuthentication = EC2Error(
        "MissingAuthenticationToken", "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.", status: 403)
    static let payloadHashMismatch = EC2Error(
        "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed from the request body.")
    static func payloadNotSigned(_ mode: String) -> EC2Error {
        EC2Error("XAmzContentSHA256Mismatch",
                 "x-amz-content-sha256 '\(mode.prefix(64))' is not accepted: the EC2 Query API requires a signed payload (the hex SHA-256 of the request body).")
    }
    static func tooManyParameters(_ count: Int) -> EC2Error {
        EC2Error("InvalidRequest", "The request has \(count) parameters; at most \(EC2ControlPlane.maxParameters) are accepted.")
    }
    static let requestExpired = EC2Error("RequestExpired", "Request has expired.")
    static func incompleteSignature(_ message: String) -> EC2Error { EC2Error("IncompleteSignature", message) }
    static func internalError(_ message: String) -> EC2Error { EC2Error("InternalError", message, status: 500) }
}
