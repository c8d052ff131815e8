import IMDSCore
import Logging
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// Answers one HTTP/1 request per connection, as IMDS does, then closes.
///
/// The handler collects the request head (and, for listeners that need it, the body), hands an
/// ``IMDSRequest`` to the responder, writes the serialized response and closes the connection.
/// Anything after the first request (pipelined requests) is ignored. Malformed requests get a
/// 400 page (431 for oversized headers) and a close, never a crash.
final class OneShotHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    enum Responder {
        /// Answered synchronously on the event loop (the data plane: the engine is lock-and-go).
        case sync(@Sendable (IMDSRequest) -> IMDSResponse)
        /// Answered asynchronously (the control plane persists state before replying).
        case async(@Sendable (IMDSRequest) async -> IMDSResponse)
    }

    private let responder: Responder
    private let keepBody: Bool
    private let maxBody: Int
    private let malformed: @Sendable (Int) -> IMDSResponse
    private let observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)?
    private let hooks: DataPlaneHooks?
    /// What ``DataPlaneHooks/accepted`` returned for this connection.
    private var connectionContext: (any Sendable)?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyLength = 0
    private var done = false
    private var started: NIODeadline = .now()
    /// This connection in its listener's table (marked answering once the request is complete).
    var slot: ConnectionSlot?
    /// This server's end and the client's end, as text (set by the listener when it accepts).
    var peers: (local: PeerAddress?, remote: PeerAddress?)?

    init(
        responder: Responder, keepBody: Bool, maxBody: Int = 1 << 20,
        malformed: @escaping @Sendable (Int) -> IMDSResponse,
        observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)? = nil,
        hooks: DataPlaneHooks? = nil
    ) {
        self.responder = responder
        self.keepBody = keepBody
        self.maxBody = maxBody
        self.malformed = malformed
        self.observer = observer
        self.hooks = hooks
    }

    func channelActive(context: ChannelHandlerContext) {
        if let hooks {
            let (local, remote) = endpoints(context)
            connectionContext = hooks.accepted(local, remote)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            started = .now()
        case .body(var buf):
            bodyLength += buf.readableBytes
            if bodyLength > maxBody {
                finish(context: context, response: malformed(413))
                return
            }
            if keepBody, let bytes = buf.readBytes(length: buf.readableBytes) { body.append(contentsOf: bytes) }
        case .end:
            guard let head else { return }
            done = true
            slot?.markAnswering()
            let request = IMDSRequest(
                method: head.method.rawValue, target: head.uri,
                headers: head.headers.map { ($0.name, $0.value) },
                peer: endpoints(context).remote,
                bodyLength: bodyLength, body: body)
            switch responder {
            case .sync(let respond):
                deliver(context: context, request: request, response: respond(request))
            case .async(let respond):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let promise = context.eventLoop.makePromise(of: IMDSResponse.self)
                promise.completeWithTask { await respond(request) }
                promise.futureResult.whenSuccess { response in
                    let (handler, ctx) = loopBound.value
                    handler.deliver(context: ctx, request: request, response: response)
                }
            }
        }
    }

    private func endpoints(_ context: ChannelHandlerContext) -> (local: PeerAddress?, remote: PeerAddress?) {
        if let peers { return peers }
        let peer = { (a: SocketAddress?) in a?.peerAddress.map { PeerAddress(ip: $0.ip, port: $0.port) } }
        let found = (peer(context.channel.localAddress), peer(context.channel.remoteAddress))
        peers = found
        return found
    }

    private func deliver(context: ChannelHandlerContext, request: IMDSRequest, response: IMDSResponse) {
        let elapsed = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        observer?(request, response, elapsed)
        hooks?.completed(request, response, elapsed, connectionContext)
        if response.action == .respondAndClose, let hold = hooks?.hold {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let held = hold(connectionContext) {
                eventLoop.execute {
                    let (handler, ctx) = loopBound.value
                    handler.send(context: ctx, response: response)
                }
            }
            if held { return }
        }
        send(context: context, response: response)
    }

    private func send(context: ChannelHandlerContext, response: IMDSResponse) {
        switch response.action {
        case .hang:
            return  // the idle timeout closes it eventually
        case .reset:
            // SO_LINGER 0 makes close() send an RST instead of a FIN.
            if let provider = context.channel as? any SocketOptionProvider {
                let channel = context.channel
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        case .respondAndClose:
            break
        }
        if response.delayMilliseconds > 0 {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(Int64(response.delayMilliseconds))) {
                let (handler, ctx) = loopBound.value
                var r = response
                r.delayMilliseconds = 0
                handler.finish(context: ctx, response: r)
            }
            return
        }
        finish(context: context, response: response)
    }

    private func finish(context: ChannelHandlerContext, response: IMDSResponse) {
        done = true
        if let hops = response.hopLimit { context.channel.setHopLimitSync(hops) }
        let bytes = response.serialized()
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        if bytes.count <= Self.writtenAtOnce {
            // The first write on a fresh socket up to this size always fits its send buffer, so the
            // flush has handed every byte to the kernel before close runs: no promise needed.
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Responses up to this many bytes are written and closed without waiting for the write's
    /// promise (the smallest send buffer Linux gives a TCP socket, `tcp_wmem`'s minimum, is 4096).
    static let writtenAtOnce = 2048

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done else {
            // Bytes after the complete request (a stray byte, a second request) are ignored: the
            // response on its way (held, delayed or still being computed) closes the connection.
            if !(error is HTTPParserError) { context.close(promise: nil) }
            return
        }
        if let parse = error as? HTTPParserError {
            let status: Int
            switch parse {
            case .headerOverflow: status = 431
            default: status = 400
            }
            finish(context: context, response: malformed(status))
        } else {
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

