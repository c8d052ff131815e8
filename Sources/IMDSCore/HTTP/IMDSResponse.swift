import IMDSWire

/// What the transport must do besides writing the response.
public enum TransportAction: Sendable, Equatable {
    /// Write the response, then close the connection (what IMDS always does).
    case respondAndClose
    /// Write nothing and leave the connection open until the client gives up (a fault).
    case hang
    /// Reset the connection without writing anything (a fault).
    case reset
}

/// A complete HTTP response: status line, ordered headers and body, rendered byte for byte by
/// ``serialized()``. Transports write those bytes as they are.
public struct IMDSResponse: Sendable {
    public var status: Int
    public var reason: String
    /// Header fields in the order they are sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// `true` for a response to `HEAD`: headers announce the body's length, but no body is sent.
    public var omitBody: Bool
    /// When set, the transport sends this response with this IP TTL / IPv6 hop limit.
    public var hopLimit: Int?
    /// Delay before the response is written (a fault), in milliseconds.
    public var delayMilliseconds: Int
    public var action: TransportAction
    /// What the request was (version, category, token decisions), for logs and metrics.
    public var outcome: RequestOutcome = RequestOutcome()

    public init(
        status: Int,
        reason: String,
        headers: [(name: String, value: String)],
        body: [UInt8],
        omitBody: Bool = false,
        hopLimit: Int? = nil,
        delayMilliseconds: Int = 0,
        action: TransportAction = .respondAndClose
    ) {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.omitBody = omitBody
        self.hopLimit = hopLimit
        self.delayMilliseconds = delayMilliseconds
        self.action = action
    }

    /// A response whose reason phrase comes from the project's one table (``HTTPStatus``), as seen
    /// on `plane`: the data plane keeps EC2's exact phrases (`405 Not Allowed`).
    public init(
        status: Int,
        plane: HTTPStatus.Plane,
        headers: [(name: String, value: String)],
        body: [UInt8],
        omitBody: Bool = false
    ) {
        self.init(status: status, reason: HTTPStatus.reason(status, plane: plane), headers: headers, body: body, omitBody: omitBody)
    }

    /// The first value of a header, matching the name case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// The body as UTF-8 text (lossy), for tests and logs.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The exact bytes on the wire: `HTTP/1.1 <status> <reason>`, headers, blank line, body.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (omitBody ? 0 : body.count))
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        if (100...999).contains(status) {
            out.append(UInt8(48 + status / 100))
            out.append(UInt8(48 + status / 10 % 10))
            out.append(UInt8(48 + status % 10))
        } else {
            out.append(contentsOf: String(status).utf8)
        }
        out.append(0x20)
        out.append(contentsOf: reason.utf8)
        out.append(contentsOf: "\r\n".utf8)
        for (name, value) in headers {
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        if !omitBody { out.append(contentsOf: body) }
        return out
    }
}
