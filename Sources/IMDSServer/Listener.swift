import IMDSCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Limits that keep a listener standing under abuse; documented in `docs/limits.md`.
public struct ListenerLimits: Sendable {
    /// Connections open at once; more are closed as soon as they are accepted.
    public var maxConnections: Int
    /// A connection must deliver its whole request within this many seconds.
    public var requestTimeoutSeconds: Int64
    /// Largest request body accepted (larger: 413 and close).
    public var maxBodyBytes: Int

    public init(maxConnections: Int = 4096, requestTimeoutSeconds: Int64 = 10, maxBodyBytes: Int = 1 << 20) {
        self.maxConnections = maxConnections
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.maxBodyBytes = maxBodyBytes
    }
}

final class ConnectionCounter: Sendable {
    let open = Atomic<Int>(0)
}

/// Closes a connection that has not finished its request in time (slow clients, slowloris).
final class RequestDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    private let seconds: Int64
    private var task: Scheduled<Void>?
    init(seconds: Int64) { self.seconds = seconds }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        task = context.eventLoop.scheduleTask(in: .seconds(seconds)) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { task?.cancel() }
    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        context.fireChannelInactive()
    }
}

/// One bound socket serving one-request-per-connection HTTP.
public final class HTTPListener: Sendable {
    let channel: any Channel
    /// The address actually bound (with the real port when 0 was asked for).
    public let boundAddress: ListenAddress
    private let counter: ConnectionCounter

    private init(channel: any Channel, boundAddress: ListenAddress, counter: ConnectionCounter) {
        self.channel = channel
        self.boundAddress = boundAddress
        self.counter = counter
    }

    /// Connections open right now.
    public var openConnections: Int { counter.open.load(ordering: .relaxed) }

    static func start(
        _ address: ListenAddress, group: any EventLoopGroup, limits: ListenerLimits,
        makeHandler: @escaping @Sendable () -> OneShotHTTPHandler
    ) async throws -> HTTPListener {
        let counter = ConnectionCounter()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let now = counter.open.wrappingAdd(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in counter.open.wrappingSubtract(1, ordering: .relaxed) }
                if now > limits.maxConnections {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestDeadlineHandler(seconds: limits.requestTimeoutSeconds))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try channel.pipeline.syncOperations.addHandler(makeHandler())
                }
            }
        let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
        let port = channel.localAddress?.port ?? address.port
        return HTTPListener(channel: channel, boundAddress: ListenAddress(host: address.host, port: port), counter: counter)
    }

    /// Stops accepting connections.
    public func close() async {
        try? await channel.close().get()
    }
}
