import Foundation
import IMDSCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Limits that keep a listener standing under abuse; documented in `docs/limits.md`.
public struct ListenerLimits: Sendable {
    /// Connections open at once on the listener. A connection beyond it sheds the oldest idle one
    /// (accepted, request not complete) of the source with the most connections; only when none is
    /// idle is it closed as soon as it is accepted.
    public var maxConnections: Int
    /// Connections open at once from one source (see ``connectionKey``). A connection beyond it sheds
    /// the oldest idle connection of the same source, or is closed at once when none is idle. The
    /// difference to ``maxConnections`` is the reserve no single source can take.
    public var maxConnectionsPerSource: Int
    /// A connection must deliver its whole request within this many seconds.
    public var requestTimeoutSeconds: Int64
    /// Largest request body accepted (larger: 413 and close).
    public var maxBodyBytes: Int
    /// Which connections count together against ``maxConnectionsPerSource``: the client's IP
    /// address by default (a fleet can key by instance instead).
    public var connectionKey: @Sendable (_ local: PeerAddress?, _ remote: PeerAddress?) -> String

    public init(
        maxConnections: Int = 4096, maxConnectionsPerSource: Int = 1024, requestTimeoutSeconds: Int64 = 10,
        maxBodyBytes: Int = 1 << 20,
        connectionKey: @escaping @Sendable (_ local: PeerAddress?, _ remote: PeerAddress?) -> String = { _, remote in remote?.ip ?? "" }
    ) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerSource = maxConnectionsPerSource
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.maxBodyBytes = maxBodyBytes
        self.connectionKey = connectionKey
    }
}

/// One accepted connection, as the listener's ``ConnectionTable`` sees it.
final class ConnectionSlot: Sendable {
    let id: UInt64
    let key: String
    /// Closes the connection (when it is shed, or still open when a drain times out).
    let close: @Sendable () -> Void
    /// Completes when the connection has closed (nil for a table used without sockets).
    let closed: EventLoopFuture<Void>?
    /// 0: idle (no complete request yet), 1: answering, 2: being shed.
    private let state = Atomic<UInt8>(0)

    init(id: UInt64, key: String, closed: EventLoopFuture<Void>?, close: @escaping @Sendable () -> Void) {
        self.id = id
        self.key = key
        self.closed = closed
        self.close = close
    }

    /// The whole request has arrived: from now on the connection is never shed.
    func markAnswering() { _ = state.compareExchange(expected: 0, desired: 1, ordering: .relaxed) }

    /// Claims an idle connection for shedding (only once, and never one that is answering).
    func claimForShedding() -> Bool { state.compareExchange(expected: 0, desired: 2, ordering: .relaxed).exchanged }

    var isIdle: Bool { state.load(ordering: .relaxed) == 0 }
}

/// The open connections of one listener, by source, and the admission rule: at most
/// ``ListenerLimits/maxConnectionsPerSource`` from one source and ``ListenerLimits/maxConnections``
/// in all. A connection that would pass either cap sheds the oldest idle connection (accepted,
/// request not complete) of its own source, or — at the listener's cap — of the source with the
/// most connections; only when none is idle is the new connection refused. So a flood of idle
/// connections, from one address or many, never keeps another caller out.
final class ConnectionTable: Sendable {
    /// Flat: every open connection by id, and a count per source. Nested per-source dictionaries
    /// cost three allocations per connection (a source's dictionary was freed with its last
    /// connection and made again for the next, and Swift's `_modify` accessors on the nested
    /// dictionaries allocated their frames); the per-source scans below only run at a cap.
    private struct State {
        var next: UInt64 = 0
        var slots: [UInt64: ConnectionSlot] = [:]
        var perSource: [String: Int] = [:]
        /// Set by ``ConnectionTable/beginDrain()``: every later connection is refused.
        var draining = false
    }

    private let state = Mutex(State())
    let maxTotal: Int
    let maxPerSource: Int
    /// Connections shed to admit newer ones, and connections refused (no idle one to shed).
    let shed = Atomic<Int>(0)
    let refused = Atomic<Int>(0)

    init(maxTotal: Int, maxPerSource: Int) {
        self.maxTotal = max(1, maxTotal)
        self.maxPerSource = max(1, min(maxPerSource, maxTotal))
    }

    var open: Int { state.withLock { $0.slots.count } }

    /// Admits a connection from `key`, or returns nil (refused: close it). A shed connection is
    /// closed here (it leaves the table at once). Once draining, every connection is refused.
    func admit(
        key: String, closed: EventLoopFuture<Void>? = nil, close: @escaping @Sendable () -> Void
    ) -> ConnectionSlot? {
        let (slot, victim) = state.withLock { s -> (ConnectionSlot?, ConnectionSlot?) in
            if s.draining { return (nil, nil) }
            var victim: ConnectionSlot?
            if s.perSource[key] ?? 0 >= maxPerSource {
                victim = Self.oldestIdle(of: key, s)
                guard victim != nil else { return (nil, nil) }
            } else if s.slots.count >= maxTotal {
                // The source with the most connections gives one up (the newcomer's own, at worst).
                victim = Self.oldestIdleOfBiggestSource(s)
                guard victim != nil else { return (nil, nil) }
            }
            if let v = victim { Self.take(v, from: &s) }
            s.next += 1
            let slot = ConnectionSlot(id: s.next, key: key, closed: closed, close: close)
            s.slots[slot.id] = slot
            s.perSource.updateValue((s.perSource[key] ?? 0) + 1, forKey: key)
            return (slot, victim)
        }
        if let victim {
            shed.wrappingAdd(1, ordering: .relaxed)
            victim.close()
        }
        if slot == nil { refused.wrappingAdd(1, ordering: .relaxed) }
        return slot
    }

    /// Closes up to `count` idle connections (accepted, request not complete), the oldest of the
    /// source with the most connections first, as the caps do; returns how many. For a listener
    /// out of descriptors: each one closed makes room for a caller waiting to be accepted.
    func shedIdle(count: Int) -> Int {
        let victims = state.withLock { s -> [ConnectionSlot] in
            // One grouping and one sort per call (this runs under a flood): the biggest source's
            // idle connections, oldest first, then the next source's.
            var victims: [ConnectionSlot] = []
            let bySource = Dictionary(grouping: s.slots.values, by: \.key)
            for (_, slots) in bySource.sorted(by: { $0.value.count > $1.value.count }) where victims.count < count {
                for v in slots.sorted(by: { $0.id < $1.id }) where victims.count < count && v.claimForShedding() {
                    Self.take(v, from: &s)
                    victims.append(v)
                }
            }
            return victims
        }
        shed.wrappingAdd(victims.count, ordering: .relaxed)
        for v in victims { v.close() }
        return victims.count
    }

    /// Refuses every connection from now on and returns the ones open now (connections accepted
    /// while the listening socket closes are refused, so none escapes the drain).
    func beginDrain() -> [ConnectionSlot] {
        state.withLock { s in
            s.draining = true
            return Array(s.slots.values)
        }
    }

    /// The connection closed (a shed one has left already).
    func remove(_ slot: ConnectionSlot) {
        state.withLock { s in Self.take(slot, from: &s) }
    }

    /// The oldest idle connection of the source with the most connections that has one, claimed.
    private static func oldestIdleOfBiggestSource(_ s: State) -> ConnectionSlot? {
        for (source, _) in s.perSource.sorted(by: { $0.value > $1.value }) {
            if let v = oldestIdle(of: source, s) { return v }
        }
        return nil
    }

    /// Removes a connection from the table (a shed one is closed by the caller, outside the lock).
    private static func take(_ v: ConnectionSlot, from s: inout State) {
        guard s.slots.removeValue(forKey: v.id) != nil, let n = s.perSource[v.key] else { return }
        if n <= 1 { s.perSource.removeValue(forKey: v.key) } else { s.perSource.updateValue(n - 1, forKey: v.key) }
    }

    /// The oldest idle connection of a source, claimed for shedding.
    private static func oldestIdle(of key: String, _ s: State) -> ConnectionSlot? {
        for slot in s.slots.values.filter({ $0.key == key }).sorted(by: { $0.id < $1.id }) where slot.claimForShedding() {
            return slot
        }
        return nil
    }
}

/// Closes a connection that has not finished its request in time (slow clients, slowloris), and
/// refuses a request line without an HTTP version (HTTP/0.9's `GET /`) as soon as that line is
/// complete: the HTTP parser would otherwise wait for headers until the deadline.
final class RequestDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let seconds: Int64
    private var task: Scheduled<Void>?
    /// The last bytes of the request line seen so far; nil once the line has been checked.
    private var lineTail: [UInt8]? = []
    private var emptyLines = 0
    private var rejected = false

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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if rejected { return }
        if lineTail != nil, !checkRequestLine(unwrapInboundIn(data)) {
            rejected = true
            context.fireErrorCaught(HTTPParserError.invalidVersion)
            return
        }
        context.fireChannelRead(data)
    }

    /// False when the first request line is complete and does not end in ` HTTP/d.d`.
    private func checkRequestLine(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            var start = 0
            while start < bytes.count, var tail = lineTail {
                guard let nl = bytes[start...].firstIndex(of: 0x0A) else {
                    tail.append(contentsOf: bytes[max(start, bytes.count - 10)...])
                    lineTail = Array(tail.suffix(10))
                    return true
                }
                tail.append(contentsOf: bytes[max(start, nl - 10)..<nl])
                if tail.last == 0x0D { tail.removeLast() }
                if tail.isEmpty && emptyLines < 2 {  // empty lines before the request line are ignored
                    emptyLines += 1
                    lineTail = []
                    start = nl + 1
                    continue
                }
                lineTail = nil
                let v = Array(tail.suffix(9))
                return v.count == 9 && v[0] == 0x20 && v[1...5].elementsEqual("HTTP/".utf8)
                    && (48...57).contains(v[6]) && v[7] == 0x2E && (48...57).contains(v[8])
            }
            return true
        }
    }
}

/// Which listener the data plane runs on: SwiftNIO (as the control plane), or the lean epoll loop
/// (``LeanDataListener``, `docs/data-plane-loop.md`, the default). `IMDS_DATA_PLANE=nio|lean`
/// overrides the default, so that a benchmark can run both from one binary.
public enum DataPlaneTransport: String, Sendable {
    case nio
    case lean

    /// `IMDS_DATA_PLANE` from the environment, else ``lean``.
    public static var `default`: DataPlaneTransport {
        ProcessInfo.processInfo.environment["IMDS_DATA_PLANE"].flatMap(DataPlaneTransport.init(rawValue:)) ?? .lean
    }
}

/// One bound socket serving one-request-per-connection HTTP.
public final class HTTPListener: Sendable {
    private enum Backend: Sendable {
        case nio(any Channel)
        case lean(LeanDataListener)
    }

    private let backend: Backend
    /// The address actually bound (with the real port when 0 was asked for).
    public let boundAddress: ListenAddress
    let table: ConnectionTable

    private init(channel: any Channel, boundAddress: ListenAddress, table: ConnectionTable) {
        self.backend = .nio(channel)
        self.boundAddress = boundAddress
        self.table = table
    }

    private init(lean: LeanDataListener) {
        self.backend = .lean(lean)
        self.boundAddress = lean.boundAddress
        self.table = lean.table
    }

    /// A data-plane listener on the lean loop.
    static func startLean(_ address: ListenAddress, limits: ListenerLimits, responders: LeanDataListener.Responders) throws -> HTTPListener {
        HTTPListener(lean: try LeanDataListener.start(address, limits: limits, responders: responders))
    }

    /// Connections open right now.
    public var openConnections: Int { table.open }
    /// The lean loop serving a sequential caller alone, if one does (nil on NIO).
    var sequentialLoop: Int? {
        if case .lean(let lean) = backend { return lean.sequentialLoop }
        return nil
    }
    /// The listening socket's `TCP_DEFER_ACCEPT` as the kernel reports it (0: off, or NIO).
    var deferAccept: Int {
        if case .lean(let lean) = backend { return lean.deferAcceptReported }
        return 0
    }
    /// Idle connections closed so far to admit newer ones (per-source and listener caps).
    public var shedConnections: Int { table.shed.load(ordering: .relaxed) }
    /// Connections closed at accept so far because nothing could be shed.
    public var refusedConnections: Int { table.refused.load(ordering: .relaxed) }
    /// Connections closed at accept because the process was out of descriptors (the lean loop
    /// closes those waiting and pauses accepting for 100 ms; NIO's accept backoff only pauses).
    public var descriptorShortages: Int {
        if case .lean(let lean) = backend { return lean.descriptorShortages.load(ordering: .relaxed) }
        return 0
    }

    static func start(
        _ address: ListenAddress, group: any EventLoopGroup, limits: ListenerLimits,
        makeHandler: @escaping @Sendable () -> OneShotHTTPHandler
    ) async throws -> HTTPListener {
        let table = ConnectionTable(maxTotal: limits.maxConnections, maxPerSource: limits.maxConnectionsPerSource)
        let key = limits.connectionKey
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // No child channel options: applying them (through futures, one setsockopt each) was 5 %
            // of the server's time per connection, and neither matters here: SO_REUSEADDR means
            // nothing on an accepted socket, and TCP_NODELAY nothing for a response written once
            // and followed by close (Nagle never holds the first segment).
            .childChannelInitializer { channel in
                // Both ends as text, once per connection (the handler and its hooks reuse them).
                let peer = { (a: SocketAddress?) in a?.peerAddress.map { PeerAddress(ip: $0.ip, port: $0.port) } }
                let local = peer(channel.localAddress)
                let remote = peer(channel.remoteAddress)
                let source = key(local, remote)
                guard let slot = table.admit(key: source, closed: channel.closeFuture, close: { channel.close(promise: nil) }) else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in table.remove(slot) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestDeadlineHandler(seconds: limits.requestTimeoutSeconds))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    let handler = makeHandler()
                    handler.slot = slot
                    handler.peers = (local, remote)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
        let port = channel.localAddress?.port ?? address.port
        return HTTPListener(channel: channel, boundAddress: ListenAddress(host: address.host, port: port), table: table)
    }

    /// Stops accepting connections; the open ones carry on until they finish (see ``drain(timeout:)``).
    public func close() async {
        switch backend {
        case .nio(let channel): try? await channel.close().get()
        case .lean(let lean): await lean.close()
        }
    }

    /// Graceful stop: stops accepting, then waits until every connection still open has closed
    /// (each closes after answering its one request). Connections still open after `timeout` (one
    /// that never sends its request, say) are closed then. Returns once every connection is closed.
    public func drain(timeout: Duration) async {
        let channel: any Channel
        switch backend {
        case .nio(let c): channel = c
        case .lean(let lean):
            await lean.drain(timeout: timeout)
            return
        }
        try? await channel.close().get()
        let open = table.beginDrain()
        let futures = open.compactMap(\.closed)
        guard !futures.isEmpty else { return }
        let loop = channel.eventLoop
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let deadline = loop.scheduleTask(in: .nanoseconds(max(0, nanoseconds))) {
            for slot in open { slot.close() }
        }
        _ = try? await EventLoopFuture.andAllComplete(futures, on: loop).get()
        deadline.cancel()
    }
}
