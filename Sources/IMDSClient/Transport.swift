/// One HTTP request as the IMDS client sends it: a method, an origin-form path and header fields.
public struct IMDSHTTPRequest: Sendable, Equatable {
    /// `GET` or `PUT`.
    public var method: String
    /// Origin-form target, e.g. `/latest/meta-data/instance-id`.
    public var path: String
    /// Header fields in the order they are sent.
    public var headers: [IMDSHeaderField]
    /// A request body (empty for IMDS itself; the admin API takes JSON).
    public var body: [UInt8]

    public init(method: String, path: String, headers: [IMDSHeaderField] = [], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, matching the name case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// A header name and value.
public struct IMDSHeaderField: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A complete HTTP response as the transport received it.
public struct IMDSHTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [IMDSHeaderField]
    public var body: [UInt8]

    public init(status: Int, headers: [IMDSHeaderField] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, matching the name case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body decoded as UTF-8 (invalid bytes replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Time limits for one HTTP exchange.
public struct IMDSTimeouts: Sendable, Equatable {
    /// Time allowed to open the TCP connection.
    public var connect: Duration
    /// Time allowed, once connected, for the whole response to arrive.
    public var read: Duration

    /// The SDK defaults: 1 s to connect, 1 s to read.
    public static let sdkDefault = IMDSTimeouts(connect: .seconds(1), read: .seconds(1))

    public init(connect: Duration, read: Duration) {
        self.connect = connect
        self.read = read
    }
}

/// Why an exchange produced no HTTP response.
public enum IMDSTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing listens on the port (`ECONNREFUSED`).
    case connectionRefused
    /// The TCP connection was not established in time (packets dropped: firewall, routing, wrong address).
    case connectTimeout
    /// Connected, but the response did not arrive in time (for a token PUT: typically the hop limit).
    case readTimeout
    /// The peer closed or reset the connection before a complete response.
    case connectionClosed
    /// Host or network unreachable, name resolution failure, or another socket error.
    case connectionFailed(String)
    /// The bytes received are not an HTTP response.
    case malformedResponse(String)
    /// The endpoint's scheme is not supported by this transport (only `http` is).
    case unsupportedScheme(String)

    public var description: String {
        switch self {
        case .connectionRefused: "connection refused"
        case .connectTimeout: "timed out connecting"
        case .readTimeout: "timed out waiting for the response"
        case .connectionClosed: "connection closed before a complete response"
        case .connectionFailed(let why): "connection failed: \(why)"
        case .malformedResponse(let why): "malformed HTTP response: \(why)"
        case .unsupportedScheme(let s): "unsupported scheme '\(s)' (IMDS is plain http)"
        }
    }

    /// Whether a time limit expired.
    public var isTimeout: Bool { self == .connectTimeout || self == .readTimeout }
}

/// Sends one HTTP request to an IMDS endpoint and returns the complete response.
///
/// The default is ``NIOIMDSTransport`` (a socket per request, as IMDS closes after each response).
/// Tests plug in an in-process engine or a stub:
/// ```swift
/// struct Always404: IMDSTransport {
///     func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws -> IMDSHTTPResponse {
///         IMDSHTTPResponse(status: 404)
///     }
/// }
/// ```
/// Implementations throw ``IMDSTransportError`` when there is no response; any HTTP status is a response.
public protocol IMDSTransport: Sendable {
    func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws -> IMDSHTTPResponse
}
