import IMDSCore
import IMDSWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The running service: data-plane listeners answered by a ``DataPlane`` (the engine over the
/// store's snapshot) and control-plane listeners answered by an ``AsyncResponder``. The two never
/// share a listener. Data-plane listeners that come and go while it runs (the IPv6 ones, which the
/// ``NetworkReconciler`` opens only while `http-protocol-ipv6` is enabled) are opened and closed
/// through ``openDataListener(_:)`` and ``closeDataListener(_:)``.
public final class IMDSService: Sendable {
    public struct Configuration: Sendable {
        public var dataListen: [ListenAddress]
        public var controlListen: [ListenAddress]
        public var limits: ListenerLimits
        /// How long a graceful shutdown waits for open connections to finish before closing them.
        public var drainTimeout: Duration
        /// The data plane's listener kind (the control plane always runs on NIO).
        public var dataPlaneTransport: DataPlaneTransport
        /// Microseconds a lean data-plane loop keeps polling, instead of sleeping at once, while it
        /// serves a sequential caller alone (eight wake-ups in a row with at most one connection
        /// open; 0 to 1000; 0 never polls). Polling trades CPU for the wake-up of a sleeping thread,
        /// which is most of a request's time at one connection on a VM; under concurrent load a
        /// wake-up finds several connections, so no loop polls and none takes CPU from the callers
        /// (docs/data-plane-loop.md). Default (nil): `IMDS_DATA_PLANE_SPIN_US`, else 150.
        public var dataPlaneSpinMicroseconds: UInt64
        /// `TCP_DEFER_ACCEPT` on the lean data plane's listening sockets, in seconds (0 to 30; 0
        /// turns it off): the kernel hands a connection over when its request has arrived, which
        /// saves a wake-up and three system calls per connection (docs/data-plane-loop.md). A
        /// connection that sends nothing is handed over after about this long and then has the
        /// usual request timeout. Default (nil): `IMDS_DATA_PLANE_DEFER_ACCEPT`, else 1.
        public var dataPlaneDeferAcceptSeconds: Int

        public init(
            dataListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1338)],
            controlListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1339)],
            limits: ListenerLimits = ListenerLimits(),
            drainTimeout: Duration = .seconds(5),
            dataPlaneTransport: DataPlaneTransport = .default,
            dataPlaneSpinMicroseconds: UInt64? = nil,
            dataPlaneDeferAcceptSeconds: Int? = nil
        ) {
            self.dataPlaneDeferAcceptSeconds = min(max(dataPlaneDeferAcceptSeconds ?? LeanDataListener.deferAcceptSeconds, 0), 30)
            self.dataPlaneTransport = dataPlaneTransport
            self.dataPlaneSpinMicroseconds = min(dataPlaneSpinMicroseconds ?? LeanDataListener.spinMicroseconds, 1000)
            self.dataListen = dataListen
            self.controlListen = controlListen
            self.limits = limits
            self.drainTimeout = drainTimeout
        }
    }

    public let dataPlane: DataPlane
    public let controlPlane: (any AsyncResponder)?
    let configuration: Configuration
    let logger: Logger
    let group: any EventLoopGroup
    private let ownsGroup: Bool
    /// A listener asked for while the service shuts down.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "the server is shutting down" }
    }

    private struct Listeners {
        var data: [HTTPListener] = []
        var control: [HTTPListener] = []
        /// Set by ``shutdown()``: no listener opens after it.
        var stopped = false
    }
    private let listeners = Mutex(Listeners())
    /// Called after every data-plane request (access log, metrics).
    private let observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)?
    /// Accept-time and per-request hooks (caller attribution, access log, metrics).
    private let hooks: DataPlaneHooks?

    public init(
        dataPlane: DataPlane, controlPlane: (any AsyncResponder)?, configuration: Configuration,
        logger: Logger = Logger(label: "imds.server"), group: (any EventLoopGroup)? = nil,
        observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)? = nil,
        hooks: DataPlaneHooks? = nil
    ) {
        self.dataPlane = dataPlane
        self.controlPlane = controlPlane
        self.configuration = configuration
        self.logger = logger
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.ownsGroup = group == nil
        self.observer = observer
        self.hooks = hooks
    }

    /// Binds every listener. Throws (with everything already bound closed again) if one fails.
    public func start() async throws {
        var data: [HTTPListener] = []
        var control: [HTTPListener] = []
        do {
            for address in configuration.dataListen {
                data.append(try await startDataListener(address))
            }
            if let controlPlane {
                for address in configuration.controlListen {
                    control.append(try await startControlListener(address, controlPlane))
                }
            }
        } catch {
            for l in data + control { await l.close() }
            throw error
        }
        let refused = listeners.withLock { l -> Bool in
            guard !l.stopped else { return true }
            l.data += data
            l.control += control
            return false
        }
        if refused {
            for l in data + control { await l.close() }
            throw Stopped()
        }
    }

    /// Binds one more data-plane listener while running; returns the address bound. Throws once
    /// the service is shutting down.
    public func openDataListener(_ address: ListenAddress) async throws -> ListenAddress {
        guard !listeners.withLock({ $0.stopped }) else { throw Stopped() }
        let l = try await startDataListener(address)
        let added = listeners.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.data.append(l)
            return true
        }
        guard added else {
            await l.close()
            throw Stopped()
        }
        return l.boundAddress
    }

    /// Stops the data-plane listener bound at `bound` (from ``openDataListener(_:)``): it accepts no
    /// more connections, and drains the open ones. Nothing happens when none is bound there.
    public func closeDataListener(_ bound: ListenAddress) async {
        let l = listeners.withLock { s -> HTTPListener? in
            guard let i = s.data.firstIndex(where: { $0.boundAddress == bound }) else { return nil }
            return s.data.remove(at: i)
        }
        await l?.drain(timeout: configuration.drainTimeout)
    }

    func startDataListener(_ address: ListenAddress) async throws -> HTTPListener {
        let dataPlane = self.dataPlane
        let observer = self.observer
        let hooks = self.hooks
        // In a fleet, connection caps count per instance (one instance's flood sheds its own).
        let limits = configuration.limits.keyingConnectionsByInstance(of: dataPlane.store)
        if configuration.dataPlaneTransport == .lean {
            return try HTTPListener.startLean(
                address, limits: limits,
                responders: .init(
                    respond: { dataPlane.respond(to: $0) }, malformed: { dataPlane.malformedRequestResponse(status: $0) },
                    observer: observer, hooks: hooks, spinMicroseconds: configuration.dataPlaneSpinMicroseconds,
                    deferAcceptSeconds: configuration.dataPlaneDeferAcceptSeconds))
        }
        return try await HTTPListener.start(address, group: group, limits: limits) {
            OneShotHTTPHandler(
                responder: .sync { dataPlane.respond(to: $0) }, keepBody: false, maxBody: limits.maxBodyBytes,
                malformed: { dataPlane.malformedRequestResponse(status: $0) }, observer: observer, hooks: hooks)
        }
    }

    func startControlListener(_ address: ListenAddress, _ controlPlane: any AsyncResponder) async throws -> HTTPListener {
        let limits = configuration.limits
        return try await HTTPListener.start(address, group: group, limits: limits) {
            OneShotHTTPHandler(
                responder: .async { await controlPlane.respond(to: $0) }, keepBody: true, maxBody: limits.maxBodyBytes,
                malformed: { controlPlane.httpErrorResponse(status: $0) })
        }
    }

    /// The addresses the data plane is bound to (real ports).
    public var dataAddresses: [ListenAddress] { listeners.withLock { $0.data.map(\.boundAddress) } }
    /// Connections open right now on the data-plane and control-plane listeners.
    public var openConnections: (data: Int, control: Int) {
        let (data, control) = listeners.withLock { ($0.data, $0.control) }
        return (data.reduce(0) { $0 + $1.openConnections }, control.reduce(0) { $0 + $1.openConnections })
    }

    /// Connections the listeners closed without serving them, by plane and reason, since start:
    /// `idle-shed` (an idle connection closed to admit a newer one), `refused` (closed at accept:
    /// nothing could be shed), `out-of-descriptors` (closed at accept: `EMFILE`/`ENFILE`).
    public var droppedConnections: [(plane: String, reason: String, count: Int)] {
        let (data, control) = listeners.withLock { ($0.data, $0.control) }
        var out: [(plane: String, reason: String, count: Int)] = []
        for (plane, list) in [("data", data), ("control", control)] {
            out.append((plane, "idle-shed", list.reduce(0) { $0 + $1.shedConnections }))
            out.append((plane, "refused", list.reduce(0) { $0 + $1.refusedConnections }))
            out.append((plane, "out-of-descriptors", list.reduce(0) { $0 + $1.descriptorShortages }))
        }
        return out
    }

    /// The addresses the control plane is bound to (real ports).
    public var controlAddresses: [ListenAddress] { listeners.withLock { $0.control.map(\.boundAddress) } }

    /// Stops accepting, lets in-flight requests finish (each connection carries one request; what
    /// is still open after ``Configuration/drainTimeout`` is closed), and releases the event loops
    /// if this service created them.
    public func shutdown() async {
        let all = listeners.withLock { l -> [HTTPListener] in
            l.stopped = true
            defer { (l.data, l.control) = ([], []) }
            return l.data + l.control
        }
        let timeout = configuration.drainTimeout
        await withTaskGroup(of: Void.self) { drains in
            for l in all { drains.addTask { await l.drain(timeout: timeout) } }
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
