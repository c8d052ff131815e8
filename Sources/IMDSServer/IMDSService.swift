import IMDSCore
import IMDSWire
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The running service: data-plane listeners answered by a ``DataPlane`` (the engine over the
/// store's snapshot) and control-plane listeners answered by an ``AsyncResponder``. The two never
/// share a listener. IPv6 data-plane listeners follow `http-protocol-ipv6` through the store's
/// change stream (pushed, never polled).
public final class IMDSService: Sendable {
    public struct Configuration: Sendable {
        public var dataListen: [ListenAddress]
        public var controlListen: [ListenAddress]
        public var limits: ListenerLimits
        /// How long a graceful shutdown waits for open connections to finish before closing them.
        public var drainTimeout: Duration

        public init(
            dataListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1338)],
            controlListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1339)],
            limits: ListenerLimits = ListenerLimits(),
            drainTimeout: Duration = .seconds(5)
        ) {
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
    private let listeners = Mutex<(data: [HTTPListener], control: [HTTPListener])>(([], []))
    /// IPv6 data-plane addresses: bound only while the instance's `http-protocol-ipv6` is enabled.
    private let gated = Mutex<[GatedListener]>([])
    private let watcher = Mutex<Task<Void, Never>?>(nil)
    private let stopped = Mutex(false)

    struct GatedListener {
        var requested: ListenAddress
        /// The port actually used the first time (kept so that re-enabling serves the same URL).
        var port: Int?
        var listener: HTTPListener?
    }
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
            for address in configuration.dataListen where !address.isIPv6 {
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
        listeners.withLock { $0 = (data, control) }
        gated.withLock { $0 = configuration.dataListen.filter(\.isIPv6).map { GatedListener(requested: $0) } }
        let (current, updates) = dataPlane.store.subscribe()
        await reconcileIPv6(current)
        // Every option change and reload reaches the IPv6 listeners as it is committed.
        let task = Task { [weak self] in
            for await update in updates {
                guard let self, !Task.isCancelled else { return }
                let optionsChanged = update.reconfigured || update.changes.contains {
                    if case .setOptions = $0 { true } else { false }
                }
                if optionsChanged { await self.reconcileIPv6(update.snapshot) }
            }
        }
        watcher.withLock { $0 = task }
    }

    /// Binds or closes the IPv6 data-plane listeners to match `http-protocol-ipv6` in `snapshot`
    /// (the store's current one when nil). Called for every committed option change.
    public func reconcileIPv6(_ snapshot: StoreSnapshot? = nil) async {
        guard !stopped.withLock({ $0 }) else { return }
        let snapshot = snapshot ?? dataPlane.store.snapshot
        let enabled = snapshot.allInstances.contains { $0.options.httpProtocolIPv6 == .enabled }
        let current = gated.withLock { $0 }
        for (index, g) in current.enumerated() {
            if enabled, g.listener == nil {
                let address = ListenAddress(host: g.requested.host, port: g.port ?? g.requested.port)
                do {
                    let l = try await startDataListener(address)
                    gated.withLock { $0[index].listener = l; $0[index].port = l.boundAddress.port }
                    onIPv6Change?(l.boundAddress, true)
                } catch {
                    logger.warning("cannot bind IPv6 data plane \(address): \(error)")
                }
            } else if !enabled, let l = g.listener {
                await l.close()
                gated.withLock { $0[index].listener = nil }
                onIPv6Change?(l.boundAddress, false)
            }
        }
    }

    /// Called when an IPv6 listener starts (`true`) or stops (`false`) serving.
    public var onIPv6Change: (@Sendable (ListenAddress, Bool) -> Void)? {
        get { ipv6Callback.withLock { $0 } }
        set { ipv6Callback.withLock { $0 = newValue } }
    }
    private let ipv6Callback = Mutex<(@Sendable (ListenAddress, Bool) -> Void)?>(nil)

    /// IPv6 data-plane addresses that are configured but off (`http-protocol-ipv6` disabled).
    public var inactiveIPv6Addresses: [ListenAddress] {
        gated.withLock { $0.filter { $0.listener == nil }.map { ListenAddress(host: $0.requested.host, port: $0.port ?? $0.requested.port) } }
    }

    func startDataListener(_ address: ListenAddress) async throws -> HTTPListener {
        let dataPlane = self.dataPlane
        let observer = self.observer
        let hooks = self.hooks
        // In a fleet, connection caps count per instance (one instance's flood sheds its own).
        let limits = configuration.limits.keyingConnectionsByInstance(of: dataPlane.store)
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
    public var dataAddresses: [ListenAddress] {
        listeners.withLock { $0.data.map(\.boundAddress) } + gated.withLock { $0.compactMap { $0.listener?.boundAddress } }
    }
    /// Connections open right now on the data-plane and control-plane listeners.
    public var openConnections: (data: Int, control: Int) {
        let (data, control) = listeners.withLock { ($0.data, $0.control) }
        let gatedOpen = gated.withLock { $0.compactMap(\.listener) }.reduce(0) { $0 + $1.openConnections }
        return (data.reduce(0) { $0 + $1.openConnections } + gatedOpen, control.reduce(0) { $0 + $1.openConnections })
    }

    /// The addresses the control plane is bound to (real ports).
    public var controlAddresses: [ListenAddress] { listeners.withLock { $0.control.map(\.boundAddress) } }

    /// Stops accepting, lets in-flight requests finish (each connection carries one request; what
    /// is still open after ``Configuration/drainTimeout`` is closed), and releases the event loops
    /// if this service created them.
    public func shutdown() async {
        stopped.withLock { $0 = true }
        let task = watcher.withLock { t -> Task<Void, Never>? in
            defer { t = nil }
            return t
        }
        task?.cancel()
        await task?.value  // no reconcile may bind on the event loops once they shut down
        let all = listeners.withLock { l -> [HTTPListener] in
            defer { l = ([], []) }
            return l.data + l.control
        } + gated.withLock { g -> [HTTPListener] in
            defer { for i in g.indices { g[i].listener = nil } }
            return g.compactMap(\.listener)
        }
        let timeout = configuration.drainTimeout
        await withTaskGroup(of: Void.self) { drains in
            for l in all { drains.addTask { await l.drain(timeout: timeout) } }
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
