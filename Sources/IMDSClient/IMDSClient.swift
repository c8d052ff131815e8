import Foundation
import Synchronization

/// Wall-clock time for token and credential expiry, injectable for tests.
public protocol IMDSClientClock: Sendable {
    func now() -> Date
}

/// The system clock.
public struct WallClock: IMDSClientClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// An IMDSv2 session token and when the client considers it expired.
public struct IMDSToken: Sendable, Equatable, CustomStringConvertible {
    /// The token to send in `X-aws-ec2-metadata-token`.
    public var value: String
    /// The lifetime IMDS granted, in seconds (its `X-aws-ec2-metadata-token-ttl-seconds` header).
    public var ttl: Int
    /// When the token expires (local clock at receipt plus ``ttl``).
    public var expiresAt: Date

    /// Redacted: tokens are secrets.
    public var description: String { "IMDSToken(ttl: \(ttl), expiresAt: \(expiresAt))" }
}

/// A successful (200) IMDS answer.
public struct IMDSResult: Sendable, Equatable {
    /// The full path requested.
    public var path: String
    public var response: IMDSHTTPResponse
    /// Whether the request carried a token (IMDSv2) or not (IMDSv1).
    public var usedToken: Bool
    /// The body bytes, exactly as served.
    public var body: [UInt8] { response.body }
    /// The body as UTF-8 text.
    public var text: String { response.bodyText }
}

/// An IMDS client that behaves like the AWS SDKs' IMDS clients.
///
/// - IMDSv2 first: a token is fetched with `PUT /latest/api/token`, cached, replaced shortly before it
///   expires and again when a request is answered 401.
/// - IMDSv1 fallback as the SDK reference documents it: a token PUT answered 403, 404 or 405, or one
///   that times out (hop limit too low), switches to IMDSv1 until a v1 request is answered 401; a 400
///   is an error; 5xx/429/connection errors are retried, then the request goes out as v1. Disable the
///   fallback with `AWS_EC2_METADATA_V1_DISABLED=true` (then those cases are errors).
/// - Retries with exponential backoff and jitter on 5xx, 429 and connection errors, never on other 4xx.
/// - Never a proxy.
///
/// ```swift
/// let imds = try IMDSClient.fromEnvironment()
/// let id = try await imds.instanceID()
/// let region = try await imds.region()
/// let doc = try await imds.identityDocument()
/// let raw = try await imds.fetch("meta-data/placement/availability-zone").text
/// ```
public final class IMDSClient: Sendable {
    public let configuration: IMDSClientConfiguration
    let transport: any IMDSTransport
    let clock: any IMDSClientClock
    private let state = Mutex(TokenState())

    struct TokenState {
        var token: IMDSToken?
        /// Sticky IMDSv1 after a 403/404/405 or a timeout on the token PUT (as go-v2 and the JS SDK).
        var tokenDisabled = false
    }

    /// - Parameters:
    ///   - configuration: endpoint, timeouts, retries and switches (defaults: the SDK defaults).
    ///   - transport: how requests are sent; ``NIOIMDSTransport`` by default.
    ///   - clock: the clock used for token expiry.
    public init(configuration: IMDSClientConfiguration = IMDSClientConfiguration(),
                transport: any IMDSTransport = NIOIMDSTransport(), clock: any IMDSClientClock = WallClock()) {
        self.configuration = configuration
        self.transport = transport
        self.clock = clock
    }

    /// A client configured from the process environment and the AWS config file (SDK rules).
    public static func fromEnvironment(endpoint: String? = nil, endpointMode: IMDSEndpointMode? = nil) throws -> IMDSClient {
        IMDSClient(configuration: try .fromProcessEnvironment(endpoint: endpoint, endpointMode: endpointMode))
    }

    // MARK: - Requests

    /// GETs a path and returns the 200 answer; any other final status throws ``IMDSClientError/httpError(status:path:)``.
    /// - Parameter path: any form ``IMDSPath/normalize(_:)`` accepts (`instance-id`, `meta-data/...`, `/latest/...`).
    public func fetch(_ path: String) async throws -> IMDSResult {
        guard !configuration.disabled else { throw IMDSClientError.disabled }
        let path = IMDSPath.normalize(path)
        var attempt = 0
        var retriedAfter401 = false
        var token = try await currentToken()
        while true {
            var headers: [IMDSHeaderField] = []
            if let token { headers.append(IMDSHeaderField("x-aws-ec2-metadata-token", token.value)) }
            let response: IMDSHTTPResponse
            do {
                response = try await send(IMDSHTTPRequest(method: "GET", path: path, headers: headers))
            } catch let e {
                if attempt < configuration.retries {
                    attempt += 1
                    try await backoff(attempt)
                    continue
                }
                throw IMDSClientError.transport(e, path: path)
            }
            switch response.status {
            case 200:
                return IMDSResult(path: path, response: response, usedToken: token != nil)
            case 401 where !retriedAfter401 && !configuration.forceV1:
                // Expired or revoked token, or tokens became required while we were on v1: get a fresh token once.
                retriedAfter401 = true
                state.withLock {
                    $0.token = nil
                    $0.tokenDisabled = false
                }
                token = try await currentToken()
                continue
            case 429 where attempt < configuration.retries, 500..<600 where attempt < configuration.retries:
                attempt += 1
                try await backoff(attempt)
                continue
            default:
                throw IMDSClientError.httpError(status: response.status, path: path)
            }
        }
    }

    /// The body of a path as UTF-8 text.
    public func string(_ path: String) async throws -> String { try await fetch(path).text }

    /// The body of a path as bytes, exactly as served.
    public func bytes(_ path: String) async throws -> [UInt8] { try await fetch(path).body }

    /// The entries of a directory listing (a trailing `/` marks a sub-directory).
    public func list(_ path: String = "meta-data/") async throws -> [String] {
        let text = try await fetch(IMDSPath.directory(path)).text
        return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// The token the client would use now: the cached one, or a freshly fetched one.
    /// Unlike requests, this never falls back to IMDSv1: it throws when no token can be had.
    public func token() async throws -> IMDSToken {
        guard !configuration.disabled else { throw IMDSClientError.disabled }
        if let cached = validCachedToken() { return cached }
        switch try await requestToken() {
        case .token(let t): return t
        case .fallback(let why, _): throw IMDSClientError.tokenUnavailable(why)
        }
    }

    /// Forgets the cached token and the sticky IMDSv1 state.
    public func resetTokenState() { state.withLock { $0 = TokenState() } }

    // MARK: - Tokens

    private func validCachedToken() -> IMDSToken? {
        let now = clock.now()
        let buffer = TimeInterval(configuration.effectiveRefreshBuffer)
        return state.withLock { s in
            guard let t = s.token, t.expiresAt.timeIntervalSince(now) > buffer else { return nil }
            return t
        }
    }

    /// The token for the next request, or nil to send it as IMDSv1.
    private func currentToken() async throws -> IMDSToken? {
        if configuration.forceV1 { return nil }
        if state.withLock({ $0.tokenDisabled }) { return nil }
        if let cached = validCachedToken() { return cached }
        switch try await requestToken() {
        case .token(let t):
            return t
        case .fallback(let why, let sticky):
            if configuration.v1FallbackDisabled { throw IMDSClientError.tokenUnavailable(why) }
            if sticky { state.withLock { $0.tokenDisabled = true } }
            return nil
        }
    }

    enum TokenOutcome {
        case token(IMDSToken)
        /// No token; IMDSv1 may be used (sticky: until a v1 request gets 401).
        case fallback(IMDSClientError, sticky: Bool)
    }

    private func requestToken() async throws -> TokenOutcome {
        let path = "/latest/api/token"
        let request = IMDSHTTPRequest(
            method: "PUT", path: path,
            headers: [IMDSHeaderField("x-aws-ec2-metadata-token-ttl-seconds", String(configuration.tokenTTL))])
        var attempt = 0
        while true {
            let response: IMDSHTTPResponse
            do {
                response = try await send(request)
            } catch let e {
                // A read timeout on the PUT is the hop-limit symptom: fall back at once (botocore, go-v2, JS).
                if e == .readTimeout { return .fallback(.transport(e, path: path), sticky: true) }
                if attempt < configuration.retries {
                    attempt += 1
                    try await backoff(attempt)
                    continue
                }
                return .fallback(.transport(e, path: path), sticky: false)
            }
            switch response.status {
            case 200:
                guard let ttlText = response.header("x-aws-ec2-metadata-token-ttl-seconds"),
                    let ttl = Int(ttlText.trimmingCharacters(in: .whitespaces)), ttl > 0
                else {
                    throw IMDSClientError.invalidResponse("the token response has no valid X-aws-ec2-metadata-token-ttl-seconds header")
                }
                let value = response.bodyText
                guard !value.isEmpty else { throw IMDSClientError.invalidResponse("the token response is empty") }
                let token = IMDSToken(value: value, ttl: ttl, expiresAt: clock.now().addingTimeInterval(TimeInterval(ttl)))
                state.withLock { $0.token = token }
                return .token(token)
            case 400:
                throw IMDSClientError.tokenRequestInvalid
            case 403, 404, 405:
                return .fallback(.httpError(status: response.status, path: path), sticky: true)
            case 429 where attempt < configuration.retries, 500..<600 where attempt < configuration.retries:
                attempt += 1
                try await backoff(attempt)
                continue
            default:
                // 5xx/429 after retries, 401, other statuses: IMDSv1 for this request only (go-v2).
                return .fallback(.httpError(status: response.status, path: path), sticky: false)
            }
        }
    }

    // MARK: - Plumbing

    private func send(_ request: IMDSHTTPRequest) async throws(IMDSTransportError) -> IMDSHTTPResponse {
        do {
            return try await transport.send(request, to: configuration.endpoint, timeouts: configuration.timeouts)
        } catch let e as IMDSTransportError {
            throw e
        } catch {
            throw IMDSTransportError.connectionFailed("\(error)")
        }
    }

    /// Sleeps before retry `attempt` (1-based): exponential, capped, jitter in the upper half.
    private func backoff(_ attempt: Int) async throws {
        let cap = Self.backoffCap(attempt: attempt, base: configuration.baseBackoff, max: configuration.maxBackoff)
        let nanos = NIOLessNanos.of(cap)
        guard nanos > 0 else { return }
        let jittered = Int64.random(in: (nanos / 2)...nanos)
        try await Task.sleep(for: .nanoseconds(jittered))
    }

    static func backoffCap(attempt: Int, base: Duration, max: Duration) -> Duration {
        let factor = 1 << Swift.min(Swift.max(attempt - 1, 0), 20)
        let d = base * factor
        return d > max ? max : d
    }
}

enum NIOLessNanos {
    static func of(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
