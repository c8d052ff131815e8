import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The default transport: one TCP connection per request over SwiftNIO, plain HTTP/1.1.
///
/// It never uses a proxy: `HTTP_PROXY`, `http_proxy`, `ALL_PROXY` and friends are not read, because
/// IMDS is link-local and a proxy would fetch *its own* host's metadata (or fail). Each request gets a
/// connect timeout and a read timeout (from connection to the end of the response).
public struct NIOIMDSTransport: IMDSTransport {
    let group: any EventLoopGroup
    /// The `User-Agent` sent on every request.
    public var userAgent: String

    /// - Parameter group: the event loops to use; the shared singleton by default.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, userAgent: String = "imds-swift/0.1 api/imds") {
        self.group = group
        self.userAgent = userAgent
    }

    public func send(_ request: IMDSHTTPRequest, to endpoint: IMDSEndpoint, timeouts: IMDSTimeouts) async throws
        -> IMDSHTTPResponse
    {
        guard endpoint.scheme == "http" else { throw IMDSTransportError.unsupportedScheme(endpoint.scheme) }
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: IMDSHTTPResponse.self)
        let readTimeout = TimeAmount.nanoseconds(Self.nanoseconds(timeouts.read))
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method),
                                   uri: endpoint.basePath + request.path)
        head.headers.add(name: "Host", value: endpoint.authority)
        head.headers.add(name: "User-Agent", value: userAgent)
        head.headers.add(name: "Accept", value: "*/*")
        for h in request.headers { head.headers.add(name: h.name, value: h.value) }
        if !request.body.isEmpty || request.method == "PUT" || request.method == "POST" {
            head.headers.add(name: "Content-Length", value: String(request.body.count))
        }
        // The request is written by the channel's own event loop the moment it connects, not by
        // this task once it runs again: a caller whose concurrency pool is busy must not spend its
        // read timeout before the request has even been sent.
        let outgoing = (head: head, body: request.body)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Self.nanoseconds(timeouts.connect)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, readTimeout: readTimeout, request: outgoing))
                }
            }
        let channel: any Channel
        do {
            if let address = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port) {
                channel = try await bootstrap.connect(to: address).get()
            } else {
                channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
            }
        } catch {
            promise.fail(error)
            throw Self.mapConnectError(error)
        }
        do {
            let response = try await promise.futureResult.get()
            channel.close(promise: nil)
            return response
        } catch let e as IMDSTransportError {
            channel.close(promise: nil)
            throw e
        } catch {
            channel.close(promise: nil)
            throw IMDSTransportError.connectionFailed("\(error)")
        }
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    static func mapConnectError(_ error: any Error) -> IMDSTransportError {
        if let e = error as? IMDSTransportError { return e }
        if let e = error as? ChannelError, case .connectTimeout = e { return .connectTimeout }
        if let e = error as? IOError { return mapErrno(e.errnoCode, error) }
        if let e = error as? NIOConnectionError {
            for failure in e.connectionErrors {
                if let c = failure.error as? ChannelError, case .connectTimeout = c { return .connectTimeout }
                if let io = failure.error as? IOError, io.errnoCode == ECONNREFUSED { return .connectionRefused }
            }
            if let first = e.connectionErrors.first?.error as? IOError { return mapErrno(first.errnoCode, first) }
            if e.connectionErrors.isEmpty { return .connectionFailed("cannot resolve host '\(e.host)'") }
            return .connectionFailed("\(e.connectionErrors.first!.error)")
        }
        return .connectionFailed("\(error)")
    }

    static func mapErrno(_ code: CInt, _ error: any Error) -> IMDSTransportError {
        switch code {
        case ECONNREFUSED: .connectionRefused
        case ETIMEDOUT: .connectTimeout
        case ENETUNREACH: .connectionFailed("network unreachable")
        case EHOSTUNREACH: .connectionFailed("host unreachable")
        case EADDRNOTAVAIL: .connectionFailed("address not available on this host")
        case ECONNRESET: .connectionClosed
        default: .connectionFailed("\(error)")
        }
    }
}

/// Sends the request when the channel becomes active, then collects one HTTP response and completes
/// the promise exactly once: with the response, a read timeout, a closed connection or a parse
/// error. Lives on the channel's event loop.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<IMDSHTTPResponse>
    private let readTimeout: TimeAmount
    private let request: (head: HTTPRequestHead, body: [UInt8])
    private var timer: Scheduled<Void>?
    private var status = 0
    private var headers: [IMDSHeaderField] = []
    private var body: [UInt8] = []
    private var done = false

    init(promise: EventLoopPromise<IMDSHTTPResponse>, readTimeout: TimeAmount, request: (head: HTTPRequestHead, body: [UInt8])) {
        self.promise = promise
        self.readTimeout = readTimeout
        self.request = request
    }

    private func finish(_ result: Result<IMDSHTTPResponse, IMDSTransportError>) {
        guard !done else { return }
        done = true
        timer?.cancel()
        switch result {
        case .success(let r): promise.succeed(r)
        case .failure(let e): promise.fail(e)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: readTimeout) { [self] in
            finish(.failure(.readTimeout))
            channel.close(promise: nil)
        }
        context.fireChannelActive()
        channel.write(HTTPClientRequestPart.head(request.head), promise: nil)
        if !request.body.isEmpty {
            var buffer = channel.allocator.buffer(capacity: request.body.count)
            buffer.writeBytes(request.body)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            headers = head.headers.map { IMDSHeaderField($0.name, $0.value) }
        case .body(var buffer):
            if let bytes = buffer.readBytes(length: buffer.readableBytes) { body += bytes }
        case .end:
            finish(.success(IMDSHTTPResponse(status: status, headers: headers, body: body)))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(.connectionClosed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            finish(.failure(.malformedResponse("\(error)")))
        } else if let io = error as? IOError {
            finish(.failure(NIOIMDSTransport.mapErrno(io.errnoCode, io)))
        } else {
            finish(.failure(.connectionFailed("\(error)")))
        }
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(.connectionClosed))
    }
}
