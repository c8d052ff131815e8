import Foundation
import IMDSClient
import IMDSCore
import IMDSTesting
import Synchronization

/// Sends the client's requests straight to a ``TestIMDS`` engine (no sockets).
struct EngineTransport: IMDSTransport {
    let imds: TestIMDS

    func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws -> IMDSHTTPResponse {
        let r = imds.respond(to: IMDSRequest(
            method: request.method, target: request.path,
            headers: [(name: "Host", value: endpoint.authority)] + request.headers.map { (name: $0.name, value: $0.value) },
            peer: PeerAddress(ip: "127.0.0.1", port: 40000)))
        switch r.action {
        case .hang: throw IMDSTransportError.readTimeout
        case .reset: throw IMDSTransportError.connectionClosed
        case .respondAndClose: break
        }
        return IMDSHTTPResponse(status: r.status, headers: r.headers.map { IMDSHeaderField($0.name, $0.value) },
                                body: r.omitBody ? [] : r.body)
    }
}

/// What a scripted transport does with one request.
enum Step: Sendable {
    case respond(Int, body: String = "", headers: [IMDSHeaderField] = [])
    case fail(IMDSTransportError)

    static func token(_ value: String = "TOKEN-A", ttl: Int = 21600) -> Step {
        .respond(200, body: value, headers: [IMDSHeaderField("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", String(ttl))])
    }
}

/// Answers from a function of the request, and records every request.
final class StubTransport: IMDSTransport {
    private let log = Mutex<[IMDSHTTPRequest]>([])
    private let handler: @Sendable (IMDSHTTPRequest, Int) -> Step

    /// - Parameter handler: gets the request and how many requests with the same method came before it.
    init(_ handler: @escaping @Sendable (IMDSHTTPRequest, Int) -> Step) { self.handler = handler }

    var requests: [IMDSHTTPRequest] { log.withLock { $0 } }
    var puts: Int { requests.filter { $0.method == "PUT" }.count }
    var gets: [IMDSHTTPRequest] { requests.filter { $0.method == "GET" } }

    func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws -> IMDSHTTPResponse {
        let n = log.withLock { l -> Int in
            let n = l.filter { $0.method == request.method }.count
            l.append(request)
            return n
        }
        switch handler(request, n) {
        case .respond(let status, let body, let headers):
            return IMDSHTTPResponse(status: status, headers: headers, body: Array(body.utf8))
        case .fail(let e):
            throw e
        }
    }
}

/// Wraps another transport, recording requests and letting a test break it on demand.
final class SwitchableTransport: IMDSTransport {
    let inner: any IMDSTransport
    private let state = Mutex<(requests: [IMDSHTTPRequest], failure: IMDSTransportError?, override: (@Sendable (IMDSHTTPRequest) -> Step?)?)>(([], nil, nil))

    init(_ inner: any IMDSTransport) { self.inner = inner }

    var requests: [IMDSHTTPRequest] { state.withLock { $0.requests } }
    func fail(with e: IMDSTransportError?) { state.withLock { $0.failure = e } }
    func override(_ f: (@Sendable (IMDSHTTPRequest) -> Step?)?) { state.withLock { $0.override = f } }

    func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws -> IMDSHTTPResponse {
        let (failure, override) = state.withLock { s in
            s.requests.append(request)
            return (s.failure, s.override)
        }
        if let failure { throw failure }
        if let step = override?(request) {
            switch step {
            case .respond(let status, let body, let headers): return IMDSHTTPResponse(status: status, headers: headers, body: Array(body.utf8))
            case .fail(let e): throw e
            }
        }
        return try await inner.send(request, to: endpoint, timeouts: timeouts)
    }
}

/// Lets the client share the server's ``ManualClock``.
struct SharedClock: IMDSClientClock {
    let clock: ManualClock
    func now() -> Date { clock.now() }
}

/// A client configuration for tests: short timeouts and backoff.
func testConfiguration(_ endpoint: IMDSEndpoint = IMDSEndpoint(host: "127.0.0.1", port: 1), retries: Int = 3,
                       timeout: Duration = .milliseconds(200)) -> IMDSClientConfiguration {
    var c = IMDSClientConfiguration(endpoint: endpoint)
    c.timeouts = IMDSTimeouts(connect: timeout, read: timeout)
    c.retries = retries
    c.baseBackoff = .milliseconds(1)
    c.maxBackoff = .milliseconds(5)
    return c
}
