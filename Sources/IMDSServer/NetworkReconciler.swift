import IMDSCore
import Logging
import ServiceLifecycle
import Synchronization

/// What the ``NetworkReconciler`` changes on the host; tests pass a fake.
public protocol NetworkEffects: Sendable {
    /// Puts the IMDS link-local addresses on `interface`; returns the ones it added (CIDR).
    func addLinkLocal(interface: String) throws -> [String]
    /// Removes addresses that ``addLinkLocal(interface:)`` added.
    func removeLinkLocal(_ added: [String], interface: String)
    /// Starts a data-plane listener on `address`; returns the address bound (with its real port).
    func startListener(_ address: ListenAddress) async throws -> ListenAddress
    /// Drains and stops the listener bound at `bound`.
    func stopListener(_ bound: ListenAddress) async
}

/// The host's network as the instances' options want it, as a lifecycle `Service`: the link-local
/// addresses (`--link-local`) for as long as the server runs, and the IPv6 data-plane listeners
/// only while an instance has `http-protocol-ipv6` enabled, following the store's change stream
/// (pushed, never polled). Everything it added it removes exactly once, in ``release()``: at the
/// end of ``run()`` (graceful shutdown) or after a failed start.
///
/// Use: ``prepare()`` (before the listeners bind to the link-local addresses), ``activate()``
/// (the first IPv6 decision, once the other listeners are up), then ``run()`` in the group, first
/// in the list so that it stops last.
public final class NetworkReconciler: Service, Sendable {
    /// One IPv6 data-plane address.
    struct Gated: Equatable {
        var requested: ListenAddress
        /// The port bound the first time (re-enabling serves the same URL).
        var port: Int?
        /// The address bound while serving.
        var bound: ListenAddress?
        var address: ListenAddress { ListenAddress(host: requested.host, port: port ?? requested.port) }
    }

    /// What one reconcile does to the gated listener at `index`.
    enum Action: Equatable {
        case start(index: Int, ListenAddress)
        case stop(index: Int, ListenAddress)
    }

    private struct State {
        var gated: [Gated]
        var linkLocal: [String] = []
        var updates: AsyncStream<StoreUpdate>?
        var released = false
    }

    let store: any InstanceStore
    let effects: any NetworkEffects
    let linkLocalInterface: String?
    let logger: Logger
    /// Receives each sentence for the operator (addresses added, removed; IPv6 on, off).
    let report: @Sendable (String) -> Void
    private let state: Mutex<State>

    /// - Parameters:
    ///   - ipv6: IPv6 data-plane addresses, served only while `http-protocol-ipv6` is enabled.
    ///   - linkLocalInterface: the interface for the link-local addresses (nil: none).
    public init(
        store: any InstanceStore, effects: any NetworkEffects, ipv6: [ListenAddress], linkLocalInterface: String?,
        logger: Logger = Logger(label: "imds.network"), report: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.effects = effects
        self.linkLocalInterface = linkLocalInterface
        self.logger = logger
        self.report = report
        self.state = Mutex(State(gated: ipv6.map { Gated(requested: $0) }))
    }

    /// Adds the link-local addresses (when asked for). On error nothing stays added.
    public func prepare() throws {
        guard let interface = linkLocalInterface else { return }
        let added = try effects.addLinkLocal(interface: interface)
        state.withLock { $0.linkLocal = added }
        if !added.isEmpty { report("added \(added.joined(separator: ", ")) to \(interface) (removed on exit)") }
    }

    /// Subscribes to the store and brings the IPv6 listeners to what its current snapshot wants.
    public func activate() async {
        let (snapshot, updates) = store.subscribe()
        state.withLock { $0.updates = updates }
        await reconcile(snapshot)
    }

    /// Follows the store's changes until graceful shutdown (or cancellation), then ``release()``s.
    public func run() async throws {
        if let updates = state.withLock({ s in defer { s.updates = nil }; return s.updates }) {
            await cancelWhenGracefulShutdown {
                for await update in updates where Self.mayChangeIPv6(update) {
                    await self.reconcile(update.snapshot)
                }
            }
        }
        await release()
    }

    /// Stops the IPv6 listeners and removes the link-local addresses this reconciler added; only
    /// the first call does anything.
    public func release() async {
        let (bound, added) = state.withLock { s -> ([ListenAddress], [String]) in
            guard !s.released else { return ([], []) }
            s.released = true
            defer {
                s.linkLocal = []
                for i in s.gated.indices { s.gated[i].bound = nil }
            }
            return (s.gated.compactMap(\.bound), s.linkLocal)
        }
        for b in bound { await effects.stopListener(b) }
        if let interface = linkLocalInterface, !added.isEmpty {
            effects.removeLinkLocal(added, interface: interface)
            report("removed \(added.joined(separator: ", ")) from \(interface)")
        }
    }

    /// IPv6 data-plane addresses that are configured but off (`http-protocol-ipv6` disabled).
    public var inactiveIPv6Addresses: [ListenAddress] { state.withLock { $0.gated.filter { $0.bound == nil }.map(\.address) } }
    /// IPv6 data-plane addresses serving now.
    public var activeIPv6Addresses: [ListenAddress] { state.withLock { $0.gated.compactMap(\.bound) } }

    /// Whether a batch can change what the IPv6 listeners should do (options, launches, states, a reload).
    static func mayChangeIPv6(_ update: StoreUpdate) -> Bool {
        update.reconfigured || update.changes.contains {
            switch $0 {
            case .setOptions, .launch, .setState: true
            default: false
            }
        }
    }

    /// The decision: start every stopped listener when IPv6 is wanted, stop every running one when not.
    static func plan(wantIPv6: Bool, _ gated: [Gated]) -> [Action] {
        gated.indices.compactMap { i in
            switch (wantIPv6, gated[i].bound) {
            case (true, nil): .start(index: i, gated[i].address)
            case (false, let bound?): .stop(index: i, bound)
            default: nil
            }
        }
    }

    /// Brings the IPv6 listeners to what `snapshot` wants. Calls are serial (activate, then run's loop).
    func reconcile(_ snapshot: StoreSnapshot) async {
        let want = snapshot.allInstances.contains { $0.options.httpProtocolIPv6 == .enabled }
        let actions = state.withLock { $0.released ? [] : Self.plan(wantIPv6: want, $0.gated) }
        for action in actions {
            switch action {
            case .start(let i, let address):
                do {
                    let bound = try await effects.startListener(address)
                    state.withLock { $0.gated[i].bound = bound; $0.gated[i].port = bound.port }
                    report("data plane listening on \(bound.url) (http-protocol-ipv6 enabled)")
                } catch {
                    logger.warning("cannot bind IPv6 data plane \(address): \(error)")
                }
            case .stop(let i, let bound):
                await effects.stopListener(bound)
                state.withLock { $0.gated[i].bound = nil }
                report("data plane on \(bound.url) stopped (http-protocol-ipv6 disabled)")
            }
        }
    }
}

/// The real host: `ip addr` for link-local addresses, listeners of an ``IMDSService``.
public struct HostNetwork: NetworkEffects {
    let service: IMDSService

    public init(service: IMDSService) { self.service = service }

    public func addLinkLocal(interface: String) throws -> [String] {
        try LinkLocalAddresses.add(interface: interface, ipv6: true).added
    }

    public func removeLinkLocal(_ added: [String], interface: String) {
        LinkLocalAddresses.remove(added, interface: interface)
    }

    public func startListener(_ address: ListenAddress) async throws -> ListenAddress {
        try await service.openDataListener(address)
    }

    public func stopListener(_ bound: ListenAddress) async {
        await service.closeDataListener(bound)
    }
}
