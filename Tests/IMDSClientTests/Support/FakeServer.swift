import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A request as a fake server saw it.
struct FakeRequest: Sendable {
    var method: String
    var uri: String
    var headers: [(String, String)]
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// What a fake server does with one request.
enum FakeReply: Sendable {
    case respond(status: Int, headers: [(String, String)] = [], body: String = "")
    /// Read the request, never answer, keep the connection open.
    case hang
}

/// A tiny HTTP server on port 0 whose answers a test scripts: statuses IMDS does not produce on
/// demand, PUTs that never get an answer (the hop-limit symptom), wrong `Date` headers.
final class FakeHTTPServer: Sendable {
    final class Box<T: Sendable>: Sendable {
        let value: Mutex<T>
        init(_ v: T) { value = Mutex(v) }
    }

    let channel: any Channel
    let port: Int
    let host: String
    private let children: Box<[any Channel]>
    private let seen: Box<[FakeRequest]>

    private init(channel: any Channel, host: String, children: Box<[any Channel]>, seen: Box<[FakeRequest]>) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.host = host
        self.children = children
        self.seen = seen
    }

    var url: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }
    var requests: [FakeRequest] { seen.value.withLock { $0 } }

    static func start(host: String = "127.0.0.1", _ reply: @escaping @Sendable (FakeRequest) -> FakeReply) async throws -> FakeHTTPServer {
        let children = Box<[any Channel]>([])
        let seen = Box<[FakeRequest]>([])
        let record: @Sendable (FakeRequest) -> FakeReply = { request in
            seen.value.withLock { $0.append(request) }
            return reply(request)
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                children.value.withLock { $0.append(child) }
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try child.pipeline.syncOperations.addHandler(FakeHandler(reply: record))
                }
            }
            .bind(host: host, port: 0).get()
        return FakeHTTPServer(channel: channel, host: host, children: children, seen: seen)
    }

    func stop() async {
        try? await channel.close().get()
        for c in children.value.withLock({ $0 }) { try? await c.close().get() }
    }
}

private final class FakeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let reply: @Sendable (FakeRequest) -> FakeReply
    var head: HTTPRequestHead?

    init(reply: @escaping @Sendable (FakeRequest) -> FakeReply) { self.reply = reply }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            let request = FakeRequest(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) })
            switch reply(request) {
            case .hang:
                break
            case .respond(let status, let headers, let body):
                var h = HTTPHeaders(headers)
                if !headers.contains(where: { $0.0.lowercased() == "content-length" }) { h.add(name: "Content-Length", value: String(body.utf8.count)) }
                h.add(name: "Connection", value: "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: h))), promise: nil)
                var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
                buffer.writeString(body)
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then closed).
func closedPort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close().get()
    return port
}

/// Whether ::1 can be bound here.
func ipv6LoopbackAvailable() async -> Bool {
    guard let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "::1", port: 0).get()
    else { return false }
    try? await channel.close().get()
    return true
}
