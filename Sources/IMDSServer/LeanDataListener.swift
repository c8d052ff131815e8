import CLinuxEpoll
import Foundation
import IMDSCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The data plane's lean listener: raw non-blocking sockets and epoll, one request per connection,
/// no NIO channel, pipeline or promise per connection (why, with the measurement:
/// `docs/data-plane-loop.md`). It behaves as ``HTTPListener``'s NIO path with ``OneShotHTTPHandler``
/// does for the data plane: the same ``ConnectionTable`` caps, the same request deadline (from
/// accept, closing whatever state the connection is in), ``DataPlaneHooks`` (a held response comes
/// back to its loop through the loop's eventfd), `.hang`, `.reset`, delays, per-response hop limits,
/// the 413 body limit and the 400/431 pages, bytes after the request ignored.
///
/// `loops` threads each wait on one epoll set holding the shared listening socket (with
/// `EPOLLEXCLUSIVE`, so one loop wakes per connection), their own eventfd and the connections they
/// accepted. An accepted connection is read at once (the request is usually there already) and only
/// registered when that read would block. Deadlines are checked by a coarse sweep every
/// ``sweepMilliseconds``, not by a timer per connection.
final class LeanDataListener: Sendable {
    struct Responders: Sendable {
        var respond: @Sendable (IMDSRequest) -> IMDSResponse
        var malformed: @Sendable (Int) -> IMDSResponse
        var observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)?
        var hooks: DataPlaneHooks?
        /// See ``IMDSService/Configuration/dataPlaneSpinMicroseconds``.
        var spinMicroseconds: UInt64 = 0
        /// See ``IMDSService/Configuration/dataPlaneDeferAcceptSeconds``.
        var deferAcceptSeconds: Int = LeanDataListener.deferAcceptSeconds
    }

    struct BindError: Error, CustomStringConvertible {
        var description: String
    }

    static let sweepMilliseconds = 100
    /// How long a loop stops accepting after `accept` failed for want of descriptors (`EMFILE`,
    /// `ENFILE`) or kernel memory: the listening socket stays readable meanwhile, and a
    /// level-triggered loop that kept calling `accept` would spin a core until descriptors are free.
    static let acceptPauseMilliseconds = 100

    /// The listening socket, shared by every loop (with `EPOLLEXCLUSIVE`).
    let listenFD: Int32
    let isIPv6: Bool
    let boundAddress: ListenAddress
    /// This end of every accepted connection, when the socket is bound to one address (not the
    /// wildcard): then no `getsockname` is needed per connection.
    let fixedLocal: PeerAddress?
    let table: ConnectionTable
    let limits: ListenerLimits
    let responders: Responders
    let mailboxes: [LoopMailbox]
    /// Sockets open (accepted and not closed yet, admitted or not).
    let live = Atomic<Int>(0)
    /// Loops that have taken the listening socket out of their epoll set.
    let stoppedLoops = Atomic<Int>(0)
    /// Connections closed at accept because the process (or the system) was out of descriptors and
    /// no idle connection could be shed to make room (see `LeanLoop.descriptorsShort`).
    let descriptorShortages = Atomic<Int>(0)
    /// 0 open, 1 closing (the loops are told), 2 the listening socket is closed.
    private let closing = Atomic<Int>(0)

    private init(
        listenFD: Int32, isIPv6: Bool, boundAddress: ListenAddress, limits: ListenerLimits, responders: Responders,
        loops: Int
    ) {
        self.listenFD = listenFD
        self.isIPv6 = isIPv6
        self.boundAddress = boundAddress
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFD, $0, &length) }
        }
        let local = named == 0 ? LeanDataListener.peerAddress(&storage) : nil
        self.fixedLocal = local.flatMap { $0.ip == "0.0.0.0" || $0.ip == "::" ? nil : $0 }
        self.limits = limits
        self.responders = responders
        self.table = ConnectionTable(maxTotal: limits.maxConnections, maxPerSource: limits.maxConnectionsPerSource)
        self.mailboxes = (0..<loops).map { _ in LoopMailbox() }
        self.sequentialOwner = Mutex(-1)
    }

    /// `IMDS_DATA_PLANE_SPIN_US` (0 to 1000; default 150): see ``IMDSService/Configuration/dataPlaneSpinMicroseconds``.
    static var spinMicroseconds: UInt64 {
        if let text = ProcessInfo.processInfo.environment["IMDS_DATA_PLANE_SPIN_US"], let n = UInt64(text) { return min(n, 1000) }
        return 150
    }

    /// Consecutive wake-ups that each saw at most one connection open (a sequential caller) before a
    /// loop polls (``IMDSService/Configuration/dataPlaneSpinMicroseconds``) and the accept stops
    /// being deferred.
    static let sequentialWakes = 8

    /// The loop serving a sequential caller alone (-1: none). While one does, the other loops take
    /// the listening socket out of their epoll sets (a loop that polls is not waiting in
    /// `epoll_wait`, so `EPOLLEXCLUSIVE` would wake another loop for every connection, only for its
    /// `accept` to find nothing), and the accept is not deferred: deferring saves a wake-up per
    /// connection under concurrent load, but for a sequential caller it only moves the accept, and
    /// caller attribution's lookups, after the request instead of beside it. The first wake-up
    /// that sees two connections open at once gives the listening socket back to every loop.
    private let sequentialOwner: Mutex<Int>

    /// Loop `index` serves a sequential caller: the other loops stop waiting for connections and
    /// the accept is no longer deferred. False if another loop does already.
    func claimSequential(_ index: Int) -> Bool {
        let claimed = sequentialOwner.withLock { owner -> Bool in
            guard owner < 0 else { return false }
            owner = index
            setDeferAccept(false)
            return true
        }
        if claimed { for (i, m) in mailboxes.enumerated() where i != index { m.post(.yieldAccepting) } }
        return claimed
    }

    /// Concurrent traffic again: every loop waits for connections, and the accept is deferred.
    func releaseSequential(_ index: Int) {
        let released = sequentialOwner.withLock { owner -> Bool in
            guard owner == index else { return false }
            owner = -1
            setDeferAccept(true)
            return true
        }
        if released { for (i, m) in mailboxes.enumerated() where i != index { m.post(.resumeAccepting) } }
    }

    /// The listening socket's `TCP_DEFER_ACCEPT` (when configured): a socket option, taken by the
    /// kernel at once.
    private func setDeferAccept(_ on: Bool) {
        guard responders.deferAcceptSeconds > 0 else { return }
        Self.setDeferAccept(listenFD, seconds: on ? responders.deferAcceptSeconds : 0)
    }

    /// `TCP_DEFER_ACCEPT` on a listening socket: the kernel completes the accept only when the
    /// request's first bytes are there (0: at the handshake).
    private static func setDeferAccept(_ fd: Int32, seconds: Int) {
        var value = Int32(clamping: seconds)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The loop serving a sequential caller alone, if one does (tests).
    var sequentialLoop: Int? { sequentialOwner.withLock { $0 < 0 ? nil : $0 } }

    /// `IMDS_DATA_PLANE_DEFER_ACCEPT` (0 to 30 seconds; default 1): see
    /// ``IMDSService/Configuration/dataPlaneDeferAcceptSeconds``.
    static var deferAcceptSeconds: Int {
        if let text = ProcessInfo.processInfo.environment["IMDS_DATA_PLANE_DEFER_ACCEPT"], let n = Int(text) { return min(max(n, 0), 30) }
        return 1
    }

    /// The listening socket's `TCP_DEFER_ACCEPT`, as the kernel reports it (its value is rounded to
    /// SYN-ACK retransmissions); 0 when off.
    var deferAcceptReported: Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(listenFD, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, &value, &length) == 0 else { return 0 }
        return Int(value)
    }

    /// The number of loop threads: `IMDS_DATA_PLANE_LOOPS`, or one per core.
    static var defaultLoops: Int {
        if let text = ProcessInfo.processInfo.environment["IMDS_DATA_PLANE_LOOPS"], let n = Int(text), n > 0 { return min(n, 64) }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    static func start(
        _ address: ListenAddress, limits: ListenerLimits, responders: Responders, loops: Int = defaultLoops
    ) throws -> LeanDataListener {
        let (fd, v6) = try bindSocket(address, deferAccept: responders.deferAcceptSeconds)
        let port = localPort(fd) ?? address.port
        let listener = LeanDataListener(
            listenFD: fd, isIPv6: v6, boundAddress: ListenAddress(host: address.host, port: port), limits: limits,
            responders: responders, loops: loops)
        for (index, mailbox) in listener.mailboxes.enumerated() {
            let thread = Thread { LeanLoop(listener: listener, index: index, mailbox: mailbox).run() }
            thread.name = "imds-data-\(index)"
            thread.start()
        }
        return listener
    }

    /// Stops accepting: every loop drops the listening socket, then it is closed. Bounded (5 s).
    func close() async {
        if closing.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            for m in mailboxes { m.post(.stopAccepting) }
            for _ in 0..<5000 where stoppedLoops.load(ordering: .acquiring) < mailboxes.count {
                try? await Task.sleep(for: .milliseconds(1))
            }
            Glibc.close(listenFD)
            closing.store(2, ordering: .releasing)
        }
        for _ in 0..<5000 where closing.load(ordering: .acquiring) != 2 {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    /// ``HTTPListener/drain(timeout:)``: stop accepting, wait for the open connections (up to
    /// `timeout`), then close what is left.
    func drain(timeout: Duration) async {
        await close()
        _ = table.beginDrain()
        let deadline = ContinuousClock.now + timeout
        while live.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
        }
        guard live.load(ordering: .acquiring) > 0 else { return }
        for m in mailboxes { m.post(.closeAll) }
        for _ in 0..<2500 where live.load(ordering: .acquiring) > 0 {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private static func bindSocket(_ address: ListenAddress, deferAccept: Int) throws -> (Int32, Bool) {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let isV6: Bool
        if inet_pton(AF_INET, address.host, &v4.sin_addr) == 1 {
            isV6 = false
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(truncatingIfNeeded: address.port).bigEndian)
        } else if inet_pton(AF_INET6, address.host, &v6.sin6_addr) == 1 {
            isV6 = true
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(truncatingIfNeeded: address.port).bigEndian)
        } else {
            throw BindError(description: "cannot listen on \(address): not a numeric IPv4 or IPv6 address")
        }
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BindError(description: "socket(): \(Self.text(strerror(errno)))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        // One wake-up, `accept` and a `read` that finds the request, instead of a wake-up at the
        // handshake, a `read` that would block, `epoll_ctl` and a second wake-up.
        if deferAccept > 0 { setDeferAccept(fd, seconds: deferAccept) }
        let rc: Int32 = isV6
            ? withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            : withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 1024) == 0 else {
            let message = Self.text(strerror(errno))
            Glibc.close(fd)
            throw BindError(description: "bind(descriptor: \(fd), address: \(address)): \(message) (errno: \(errno))")
        }
        return (fd, isV6)
    }

    private static func localPort(_ fd: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return peerAddress(&storage)?.port
    }

    private static func text(_ message: UnsafeMutablePointer<CChar>?) -> String {
        guard let message else { return "error" }
        return String(decoding: UnsafeRawBufferPointer(start: message, count: strlen(message)), as: UTF8.self)
    }

    /// A socket address as text, as NIO's `SocketAddress.ipAddress` gives it (`inet_ntop`).
    static func peerAddress(_ storage: inout sockaddr_storage) -> PeerAddress? {
        // Rendered into a buffer on the stack: this runs for both ends of every connection.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN) + 1) { text -> PeerAddress? in
            func string() -> String {
                String(decoding: UnsafeRawBufferPointer(text).prefix { $0 != 0 }, as: UTF8.self)
            }
            switch Int32(storage.ss_family) {
            case AF_INET:
                return withUnsafeBytes(of: &storage) { raw -> PeerAddress? in
                    var a = raw.load(as: sockaddr_in.self)
                    guard inet_ntop(AF_INET, &a.sin_addr, text.baseAddress, socklen_t(text.count)) != nil else { return nil }
                    return PeerAddress(ip: string(), port: Int(UInt16(bigEndian: a.sin_port)))
                }
            case AF_INET6:
                return withUnsafeBytes(of: &storage) { raw -> PeerAddress? in
                    var a = raw.load(as: sockaddr_in6.self)
                    guard inet_ntop(AF_INET6, &a.sin6_addr, text.baseAddress, socklen_t(text.count)) != nil else { return nil }
                    return PeerAddress(ip: string(), port: Int(UInt16(bigEndian: a.sin6_port)))
                }
            default:
                return nil
            }
        }
    }
}

/// Work handed to a loop from another thread (a shed connection, a held response resumed, a stop),
/// with a write to the loop's eventfd to wake it.
final class LoopMailbox: Sendable {
    enum Command: Sendable {
        case close(fd: Int32, generation: UInt32)
        case resume(fd: Int32, generation: UInt32)
        case stopAccepting
        case closeAll
        /// Another loop serves a sequential caller: stop waiting for connections.
        case yieldAccepting
        /// Concurrent traffic: wait for connections again.
        case resumeAccepting
    }

    private struct State {
        var commands: [Command] = []
        var shut = false
    }

    private let state = Mutex(State())
    let eventFD: Int32

    init() { eventFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC)) }

    func post(_ command: Command) {
        let fd = eventFD
        state.withLock { s in
            guard !s.shut else { return }
            s.commands.append(command)
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
    }

    func take() -> [Command] {
        var count: UInt64 = 0
        _ = read(eventFD, &count, 8)
        return state.withLock { s in
            defer { s.commands.removeAll(keepingCapacity: true) }
            return s.commands
        }
    }

    /// The loop has ended: later posts are dropped, the eventfd is closed.
    func shut() {
        let fd = eventFD
        state.withLock { s in
            s.shut = true
            Glibc.close(fd)
        }
    }
}

/// One loop thread's state; lives and dies on that thread.
private final class LeanLoop {
    /// A class: an optional struct in `connections` was copied whole (the parser's buffers, the
    /// pending response) by most reads and writes through `connections[fd]?.field`, about 2 µs a
    /// request (perf); a reference costs one allocation per connection instead.
    private final class Connection {
        enum Phase {
            case reading
            /// Answered or answering: reads are discarded (held, delayed, hanging).
            case waiting
            /// Response partly written (larger than the send buffer took at once).
            case writing(bytes: [UInt8], offset: Int)
        }

        var generation: UInt32
        var slot: ConnectionSlot
        var context: (any Sendable)?
        var remote: PeerAddress?
        var deadline: UInt64
        var started: UInt64 = 0
        var parser: HTTPRequestParser
        var phase = Phase.reading
        var registered = false
        /// A response held by the hook or delayed, sent on resume or when its delay is over.
        var pending: IMDSResponse?
        /// The client sent one whole request and nothing after it: the response goes out with the
        /// FIN in one segment (see ``LeanLoop/continueWriting(_:)``).
        var oneRequest = false

        init(generation: UInt32, slot: ConnectionSlot, context: (any Sendable)?, remote: PeerAddress?, deadline: UInt64,
             parser: HTTPRequestParser) {
            self.generation = generation
            self.slot = slot
            self.context = context
            self.remote = remote
            self.deadline = deadline
            self.parser = parser
        }
    }

    private static let listenTag = UInt64.max
    private static let mailboxTag = UInt64.max - 1

    private let listener: LeanDataListener
    private let index: Int
    private let mailbox: LoopMailbox
    /// This loop serves a sequential caller alone (``LeanDataListener/claimSequential(_:)``).
    private var owning = false
    /// Another loop does: the listening socket is out of this loop's epoll set.
    private var yielded = false
    private let epoll: Int32
    private var connections: [Connection?] = []
    private var open = 0
    /// The most connections open at once while handling the current wake-up's events (for the
    /// choice of polling and of deferred accepts).
    private var peakThisWake = 0
    private var accepting = true
    private var generation: UInt32 = 0
    private var delayed: [(fd: Int32, generation: UInt32, at: UInt64)] = []
    private var nextSweep: UInt64 = 0
    /// While descriptors are short: when to take the listening socket back into the epoll set.
    private var acceptPausedUntil: UInt64?
    /// A descriptor kept in reserve (`/dev/null`): when `accept` fails with `EMFILE`, it is closed
    /// so that the waiting connections can be accepted and closed at once (their clients see the
    /// connection closed, and an SDK retries) instead of waiting in the queue for their timeout.
    private var reserveFD: Int32 = -1
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    private let timeoutNanoseconds: UInt64
    /// The listener's responders and hooks, each held on its own: reading them through
    /// `listener.responders` copied the whole struct (every closure retained) several times a
    /// request.
    private let respond: @Sendable (IMDSRequest) -> IMDSResponse
    private let malformed: @Sendable (Int) -> IMDSResponse
    private let observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)?
    private let onAccepted: (@Sendable (PeerAddress?, PeerAddress?) -> (any Sendable)?)?
    private let onAcceptedBatch: (@Sendable ([(local: PeerAddress?, remote: PeerAddress?)]) -> [(any Sendable)?])?
    private let onCompleted: (@Sendable (IMDSRequest, IMDSResponse, Double, (any Sendable)?) -> Void)?
    private let onHold: (@Sendable ((any Sendable)?, @escaping @Sendable () -> Void) -> Bool)?
    private let onWriting: (@Sendable ((any Sendable)?) -> Void)?

    init(listener: LeanDataListener, index: Int, mailbox: LoopMailbox) {
        let r = listener.responders
        respond = r.respond
        malformed = r.malformed
        observer = r.observer
        onAccepted = r.hooks?.accepted
        onAcceptedBatch = r.hooks?.acceptedBatch
        onCompleted = r.hooks?.completed
        onHold = r.hooks?.hold
        onWriting = r.hooks?.writing
        self.listener = listener
        self.index = index
        self.mailbox = mailbox
        self.epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        // Saturating: ListenerLimits is public, and Int64.max seconds must mean "never", not a trap.
        let (nanoseconds, overflow) = UInt64(max(0, listener.limits.requestTimeoutSeconds)).multipliedReportingOverflow(by: 1_000_000_000)
        self.timeoutNanoseconds = overflow ? .max : nanoseconds
        add(listener.listenFD, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, tag: Self.listenTag)
        add(mailbox.eventFD, events: EPOLLIN.rawValue, tag: Self.mailboxTag)
        reserveFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    deinit {
        buffer.deallocate()
        if reserveFD >= 0 { Glibc.close(reserveFD) }
    }

    /// A new connection's deadline (saturating: a timeout of "never" stays never).
    private var deadlineFromNow: UInt64 {
        let (deadline, overflow) = Self.now().addingReportingOverflow(timeoutNanoseconds)
        return overflow ? .max : deadline
    }

    private func add(_ fd: Int32, events: UInt32, tag: UInt64) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = tag
        _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    private func modify(_ fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(fd)
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        // Polling a little after work, instead of sleeping at once, saves a sleeping thread's wake-up
        // (on a VM, an idle vCPU's, with cold caches) for a caller that comes back within the window.
        // Only for a sequential caller: wake-ups that each see at most one connection open. Under
        // concurrent load a wake-up finds several connections and the loop seldom sleeps, so polling
        // would only take CPU from the callers (measured: docs/data-plane-loop.md).
        let spin = listener.responders.spinMicroseconds * 1000  // at most 1000 µs (the configuration's bound)
        var spinUntil: UInt64 = 0
        var sequential = 0
        while accepting || open > 0 {
            var n: Int32
            if spin > 0 && spinUntil > 0 {
                n = epoll_wait(epoll, &events, Int32(events.count), 0)
                if n == 0 {
                    if Self.now() < spinUntil {
                        timers()
                        continue
                    }
                    spinUntil = 0
                    n = epoll_wait(epoll, &events, Int32(events.count), waitMilliseconds())
                }
            } else {
                n = epoll_wait(epoll, &events, Int32(events.count), waitMilliseconds())
            }
            if n < 0 && errno != EINTR { break }
            peakThisWake = open
            for i in 0..<max(0, Int(n)) {
                let tag = events[i].data.u64
                let flags = events[i].events
                switch tag {
                case Self.listenTag: acceptAll()
                case Self.mailboxTag: handleCommands()
                default: handle(Int32(truncatingIfNeeded: tag), flags: flags)
                }
            }
            timers()
            if n > 0 {
                // A wake-up that saw two connections open at once is concurrent traffic; one that saw
                // one is a sequential caller's (a wake-up for nothing, another loop's, says nothing).
                if peakThisWake >= 2 {
                    sequential = 0
                } else if peakThisWake == 1 {
                    sequential = min(sequential + 1, LeanDataListener.sequentialWakes)
                }
                let isSequential = sequential >= LeanDataListener.sequentialWakes
                if isSequential && !owning && accepting && !yielded {
                    owning = listener.claimSequential(index)
                } else if !isSequential && owning {
                    listener.releaseSequential(index)
                    owning = false
                }
                // Only the loop that serves the caller alone polls (one that yielded the listening
                // socket has nothing to poll for).
                if spin > 0 && owning { spinUntil = Self.now() + spin }
            }
        }
        mailbox.shut()
        Glibc.close(epoll)
    }

    /// Until the next delayed response is due, or the next deadline sweep while connections are open.
    private func waitMilliseconds() -> Int32 {
        guard open > 0 || acceptPausedUntil != nil else { return -1 }
        var wait = UInt64(LeanDataListener.sweepMilliseconds) * 1_000_000
        if !delayed.isEmpty || acceptPausedUntil != nil {
            let now = Self.now()
            for d in delayed { wait = min(wait, d.at > now ? d.at - now : 0) }
            if let until = acceptPausedUntil { wait = min(wait, until > now ? until - now : 0) }
        }
        return Int32((wait + 999_999) / 1_000_000)
    }

    private func timers() {
        if let until = acceptPausedUntil, Self.now() >= until {
            acceptPausedUntil = nil
            if reserveFD < 0 { reserveFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC) }
            if accepting && !yielded { add(listener.listenFD, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, tag: Self.listenTag) }
        }
        guard open > 0 else { return }
        let now = Self.now()
        if !delayed.isEmpty {
            let due = delayed.filter { $0.at <= now }
            delayed.removeAll { $0.at <= now }
            for d in due where connections[Int(d.fd)]?.generation == d.generation {
                guard let response = connections[Int(d.fd)]?.pending else { continue }
                connections[Int(d.fd)]?.pending = nil
                write(d.fd, response)
            }
        }
        guard now >= nextSweep else { return }
        nextSweep = now + UInt64(LeanDataListener.sweepMilliseconds) * 1_000_000
        for fd in connections.indices {
            if let deadline = connections[fd]?.deadline, deadline <= now { closeConnection(Int32(fd)) }
        }
    }

    private func handleCommands() {
        for command in mailbox.take() {
            switch command {
            case .close(let fd, let gen):
                if connection(fd, gen) { closeConnection(fd) }
            case .resume(let fd, let gen):
                guard connection(fd, gen), let response = connections[Int(fd)]?.pending else { continue }
                connections[Int(fd)]?.pending = nil
                send(fd, response)
            case .yieldAccepting:
                guard accepting, !yielded else { continue }
                yielded = true
                if acceptPausedUntil == nil { _ = epoll_ctl(epoll, EPOLL_CTL_DEL, listener.listenFD, nil) }
            case .resumeAccepting:
                guard yielded else { continue }
                yielded = false
                if accepting && acceptPausedUntil == nil {
                    add(listener.listenFD, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, tag: Self.listenTag)
                }
            case .stopAccepting:
                if owning {
                    listener.releaseSequential(index)
                    owning = false
                }
                if accepting {
                    accepting = false
                    if acceptPausedUntil == nil && !yielded { _ = epoll_ctl(epoll, EPOLL_CTL_DEL, listener.listenFD, nil) }
                    acceptPausedUntil = nil
                    listener.stoppedLoops.wrappingAdd(1, ordering: .releasing)
                }
            case .closeAll:
                for fd in connections.indices where connections[fd] != nil { closeConnection(Int32(fd)) }
            }
        }
    }

    private func connection(_ fd: Int32, _ gen: UInt32) -> Bool {
        Int(fd) < connections.count && connections[Int(fd)]?.generation == gen
    }

    /// A connection accepted and admitted, waiting for the rest of its burst to be accepted.
    private struct Accepted {
        var fd: Int32
        var generation: UInt32
        var slot: ConnectionSlot
        var local: PeerAddress?
        var remote: PeerAddress?
    }

    /// The burst being accepted (kept: its storage is reused by every burst).
    private var burst: [Accepted] = []

    /// Accepts what is queued (at most 64), hands the burst to the `accepted` hook at once (caller
    /// attribution looks all of it up with one netlink exchange), then reads and answers each.
    private func acceptAll() {
        let key = listener.limits.connectionKey
        burst.removeAll(keepingCapacity: true)
        accepting: for _ in 0..<64 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    clinux_accept4(listener.listenFD, $0, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                }
            }
            guard fd >= 0 else {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO: continue  // that connection is gone; the next may be there
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: descriptorsShort()
                default: break  // EAGAIN: another loop took it, or the queue is empty
                }
                break accepting
            }
            listener.live.wrappingAdd(1, ordering: .relaxed)
            let remote = LeanDataListener.peerAddress(&storage)
            let local = listener.fixedLocal ?? Self.localAddress(fd)
            generation &+= 1
            let gen = generation
            let mailbox = self.mailbox
            guard let slot = listener.table.admit(key: key(local, remote), close: { mailbox.post(.close(fd: fd, generation: gen)) }) else {
                Glibc.close(fd)
                listener.live.wrappingAdd(-1, ordering: .relaxed)
                continue
            }
            burst.append(Accepted(fd: fd, generation: gen, slot: slot, local: local, remote: remote))
        }
        guard !burst.isEmpty else { return }
        // The whole burst is open at once (and whatever was open before it).
        peakThisWake = max(peakThisWake, open + burst.count)
        let contexts: [(any Sendable)?]
        if let many = onAcceptedBatch {
            contexts = many(burst.map { ($0.local, $0.remote) })
        } else if let one = onAccepted {
            contexts = burst.map { one($0.local, $0.remote) }
        } else {
            contexts = []
        }
        for (i, a) in burst.enumerated() {
            let fd = a.fd
            if Int(fd) >= connections.count {
                connections.append(contentsOf: repeatElement(nil, count: max(Int(fd) + 1 - connections.count, connections.count)))
            }
            connections[Int(fd)] = Connection(
                generation: a.generation, slot: a.slot, context: i < contexts.count ? contexts[i] : nil, remote: a.remote,
                deadline: deadlineFromNow, parser: HTTPRequestParser(maxBody: listener.limits.maxBodyBytes))
            open += 1
            readable(fd)
            if connections[Int(fd)]?.generation == a.generation, connections[Int(fd)]?.registered == false {
                connections[Int(fd)]?.registered = true
                let out: UInt32
                if case .writing = connections[Int(fd)]?.phase { out = EPOLLOUT.rawValue } else { out = 0 }
                add(fd, events: EPOLLIN.rawValue | out, tag: UInt64(fd))
            }
        }
        burst.removeAll(keepingCapacity: true)
    }

    /// `accept` failed for want of descriptors. Idle connections (the likely cause: a flood that
    /// sends nothing) are shed to make room, as the caps do, and accepting resumes in a few
    /// milliseconds; with none idle, the waiting connections are closed with the reserve
    /// descriptor's help. Either way this loop stops accepting for a moment (``timers()`` resumes
    /// it) instead of calling `accept` again on a listening socket that stays readable.
    private func descriptorsShort() {
        let shed = listener.table.shedIdle(count: 16)
        if shed == 0, reserveFD >= 0 {
            Glibc.close(reserveFD)
            reserveFD = -1
            // Every connection waiting now (a bounded number): none can be served until descriptors
            // are free, and each would otherwise wait for its client's timeout.
            for _ in 0..<64 {
                let waiting = clinux_accept4(listener.listenFD, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
                guard waiting >= 0 else { break }
                Glibc.close(waiting)
                listener.descriptorShortages.wrappingAdd(1, ordering: .relaxed)
            }
            reserveFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        }
        guard acceptPausedUntil == nil else { return }
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, listener.listenFD, nil)
        // Shed connections are closed by their loops at once: room is coming.
        let pause = shed > 0 ? 5 : LeanDataListener.acceptPauseMilliseconds
        acceptPausedUntil = Self.now() + UInt64(pause) * 1_000_000
    }

    private static func localAddress(_ fd: Int32) -> PeerAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return named == 0 ? LeanDataListener.peerAddress(&storage) : nil
    }

    private func handle(_ fd: Int32, flags: UInt32) {
        guard Int(fd) < connections.count, let c = connections[Int(fd)] else { return }
        if case .writing = c.phase {
            if flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { closeConnection(fd); return }
            continueWriting(fd)
            return
        }
        readable(fd)
    }

    /// Reads what has arrived (a few reads at most; epoll is level-triggered and calls again).
    private func readable(_ fd: Int32) {
        let gen = connections[Int(fd)]?.generation
        for _ in 0..<4 {
            guard let c = connections[Int(fd)], c.generation == gen else { return }
            if case .writing = c.phase { return }
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n == 0 { closeConnection(fd); return }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                closeConnection(fd)
                return
            }
            guard case .reading = c.phase else { continue }  // after the request: ignored
            if c.started == 0 { c.started = Self.now() }
            let outcome = c.parser.feed(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            switch outcome {
            case .needMore: continue
            case .error(let status):
                c.phase = .waiting
                write(fd, malformed(status))
            case .complete:
                c.phase = .waiting
                c.oneRequest = c.parser.excess == 0
                answer(fd)
            }
        }
    }

    private func answer(_ fd: Int32) {
        guard let c = connections[Int(fd)] else { return }
        c.slot.markAnswering()
        let head = c.parser.head
        let request = IMDSRequest(
            method: head.method, target: head.target, headers: head.headers, peer: c.remote, bodyLength: c.parser.bodyLength)
        let context = c.context
        let response = respond(request)
        let elapsed = Double(Self.now() - c.started) / 1e9
        if response.action == .respondAndClose, let hold = onHold {
            let mailbox = self.mailbox
            let gen = c.generation
            c.pending = response
            if hold(context, { mailbox.post(.resume(fd: fd, generation: gen)) }) {
                report(request, response, elapsed, context)
                return
            }
            c.pending = nil
        }
        send(fd, response)
        // After the write: the client has its answer while the bookkeeping runs (at one connection
        // this is the difference between the two overlapping and adding up).
        report(request, response, elapsed, context)
    }

    private func report(_ request: IMDSRequest, _ response: IMDSResponse, _ elapsed: Double, _ context: (any Sendable)?) {
        observer?(request, response, elapsed)
        onCompleted?(request, response, elapsed, context)
    }

    private func send(_ fd: Int32, _ response: IMDSResponse) {
        switch response.action {
        case .hang:
            return  // the request deadline closes it
        case .reset:
            var l = linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            closeConnection(fd)
            return
        case .respondAndClose:
            break
        }
        if response.delayMilliseconds > 0, let gen = connections[Int(fd)]?.generation {
            var r = response
            r.delayMilliseconds = 0
            connections[Int(fd)]?.pending = r
            delayed.append((fd, gen, Self.now() + UInt64(response.delayMilliseconds) * 1_000_000))
            return
        }
        write(fd, response)
    }

    /// Writes the response with one `write`, then closes (or waits for room for the rest).
    private func write(_ fd: Int32, _ response: IMDSResponse) {
        if let onWriting, let c = connections[Int(fd)] { onWriting(c.context) }
        if let hops = response.hopLimit {
            var value = Int32(hops)
            let size = socklen_t(MemoryLayout<Int32>.size)
            if listener.isIPv6 { _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_UNICAST_HOPS, &value, size) }
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_TTL, &value, size)
        }
        connections[Int(fd)]?.phase = .writing(bytes: response.serialized(), offset: 0)
        continueWriting(fd)
    }

    /// Writes what is left of the response; closes once it is all written.
    ///
    /// After one whole request and nothing else from the client, the bytes are sent with
    /// `MSG_MORE`: the kernel holds the last partial segment, and the `close` right after tacks the
    /// FIN onto it (`tcp_send_fin`), so the answer and the end of the connection travel in one
    /// segment instead of two (one fewer packet, and one fewer ACK, per request: measured in
    /// docs/benchmarks.md, 17.8). Not after a malformed or pipelined request: bytes the client
    /// sent that were never read make `close` reset the connection, and a reset drops unsent data.
    private func continueWriting(_ fd: Int32) {
        guard let c = connections[Int(fd)], case .writing(let bytes, let offset) = c.phase else { return }
        let flags = Int32(MSG_NOSIGNAL) | (c.oneRequest ? Int32(MSG_MORE) : 0)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, flags) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { wantWritable(fd); return }
            closeConnection(fd)
            return
        }
        if offset + n >= bytes.count { closeConnection(fd); return }
        connections[Int(fd)]?.phase = .writing(bytes: bytes, offset: offset + n)
        wantWritable(fd)
    }

    private func wantWritable(_ fd: Int32) {
        // Not registered yet: the accept path registers it with EPOLLOUT after the first read.
        if connections[Int(fd)]?.registered == true { modify(fd, events: EPOLLOUT.rawValue) }
    }

    private func closeConnection(_ fd: Int32) {
        guard Int(fd) < connections.count, let c = connections[Int(fd)] else { return }
        connections[Int(fd)] = nil
        listener.table.remove(c.slot)
        Glibc.close(fd)  // also leaves the epoll set (the descriptor is never duplicated)
        open -= 1
        listener.live.wrappingAdd(-1, ordering: .releasing)
    }
}
