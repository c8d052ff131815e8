import Foundation
import IMDSAdmin
import IMDSControlPlane
import IMDSCore
import IMDSCredentials
import IMDSIdentity
import IMDSObservability
import IMDSServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The composition of one imds server, shared by `imds serve` and `IMDSTesting`: the store, the
/// engine, the EC2 and admin APIs, observability and the listeners, run as one `ServiceGroup`.
///
/// ```swift
/// let runtime = try await ServerRuntime.open(ServerConfiguration(dataListen: [ListenAddress(host: "127.0.0.1", port: 0)]))
/// try await runtime.start()     // binds: a busy port is an error here
/// try await runtime.run()       // serves until graceful shutdown (SIGTERM, or triggerGracefulShutdown())
/// ```
public final class ServerRuntime: Sendable {
    public let configuration: ServerConfiguration
    /// The instances and policies served at start.
    public let config: IMDSConfig
    /// The one owner of instance state.
    public let store: any InstanceStore
    public let engine: IMDSEngine
    /// The EC2 Query API (requests → store changes).
    public let controlPlane: EC2ControlPlane
    public let observability: Observability
    /// The data-plane and control-plane listeners.
    public let service: IMDSService
    /// The link-local addresses and the IPv6 listeners (following `http-protocol-ipv6`).
    public let network: NetworkReconciler
    let group: ServiceGroup
    /// The listeners' event loops: released only after the whole group (and so the network
    /// reconciler, which may still open or close a listener while the others drain) has stopped.
    let eventLoops: MultiThreadedEventLoopGroup
    let sts: AssumeRoleProvider
    let accessLog: AccessLogWriter?
    let logger: Logger
    let report: @Sendable (String) -> Void

    /// Opens the store and builds every part; binds nothing yet (see ``start()``).
    /// - Parameter report: receives each sentence for the operator (`imds serve` prints `imds: …`).
    public static func open(
        _ configuration: ServerConfiguration, logger: Logger = Logger(label: "imds"),
        report: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws(RuntimeError) -> ServerRuntime {
        let c = configuration
        let config: IMDSConfig
        do {
            config = try c.config ?? c.configPath.map { try IMDSConfig.load(path: $0) } ?? .embeddedDefault
        } catch {
            throw RuntimeError("config error: \(error)")
        }
        let accessKeys = try ServerConfiguration.accessKeys(config, environment: c.environment)
        // Configured secrets never appear in the access log, the caller table or the dashboard.
        let secrets = config.secrets + accessKeys.map(\.secretAccessKey)
        if c.ownsProcess { Redaction.setConfiguredSecrets(secrets) }

        // Decided on the resolved address that is bound, not on the name (a name such as
        // "localhost" or "ctl.internal" may resolve to a public address).
        let controlAddress: ListenAddress
        do { controlAddress = try c.controlListen.resolved() } catch { throw RuntimeError("--control-listen: \(error)") }
        if !controlAddress.isLoopback && accessKeys.isEmpty {
            throw RuntimeError(
                "refusing to serve the control plane on \(controlAddress) without access keys: anyone who can reach it could change the instance's metadata options. Bind it to loopback (--control-listen 127.0.0.1:1339), or configure access keys (control-plane.access-keys in --config, or IMDS_CONTROL_ACCESS_KEY_ID and IMDS_CONTROL_SECRET_ACCESS_KEY) so that every request must carry an AWS SigV4 signature.")
        }
        if c.linkLocalInterface != nil, let missing = LinkLocalAddresses.missingPrivileges() {
            throw RuntimeError(
                "--link-local needs privileges this process does not have: \(missing). Run as root, or grant the capabilities to the binary once: sudo setcap cap_net_admin,cap_net_bind_service=ep $(command -v imds). Without --link-local, imds serves on 127.0.0.1:1338 and needs no privileges.")
        }
        let identity: IdentityKey
        do {
            let stateDirectory: String? = if case .stateDirectory(let d) = c.store { d } else { nil }
            identity = try c.identity
                ?? IdentityKey.configured(keyFile: config.identityKeyFile, certificateFile: config.identityCertificateFile, stateDirectory: stateDirectory)
                ?? IdentityKey.generate()
        } catch {
            throw RuntimeError("identity signing key: \(error)")
        }
        let store = try await openStore(c.store, config: config, identity: identity, clock: c.clock, report: report)
        if let why = EC2ControlPlane.launchViolation(config, in: store.snapshot) {
            throw RuntimeError("cannot launch: \(why).")
        }
        let accessLog: AccessLogWriter?
        do { accessLog = try c.accessLog.map { try AccessLogWriter(destination: $0) } } catch { throw RuntimeError("\(error)") }
        return ServerRuntime(
            configuration: c, config: config, store: store, accessKeys: accessKeys, controlAddress: controlAddress,
            secrets: secrets, accessLog: accessLog, identityCertificate: identity.certificatePEM, logger: logger, report: report)
    }

    static func openStore(
        _ location: StoreLocation, config: IMDSConfig, identity: IdentityKey, clock: any IMDSClock,
        report: @escaping @Sendable (String) -> Void
    ) async throws(RuntimeError) -> any InstanceStore {
        switch location {
        case .memory:
            report("no --state-dir: changes made through the control plane are kept in memory only, and tokens do not survive a restart")
            return EmbeddedInstanceStore(config: config, clock: clock, signer: identity)
        case .stateDirectory(let directory):
            let existed = JournalPersistence(directory: directory).exists
            let store: EmbeddedInstanceStore
            do {
                store = try StateDirectory.open(directory, config: config, clock: clock, signer: identity, note: report)
            } catch {
                throw RuntimeError("state directory \(directory): \(error)")
            }
            if existed {
                report("restored the control-plane state from \(JournalPersistence(directory: directory).journalPath) (revision \(store.snapshot.revision))")
            }
            return store
        case .provided(let store):
            return store
        case .custom(let name, let open):
            do { return try await open(StoreOpening(config: config, identity: identity, clock: clock, report: report)) } catch {
                throw RuntimeError("store \(name): \(error)")
            }
        }
    }

    private init(
        configuration c: ServerConfiguration, config: IMDSConfig, store: any InstanceStore,
        accessKeys: [ControlPlaneAccessKey], controlAddress: ListenAddress, secrets: [String],
        accessLog: AccessLogWriter?, identityCertificate: String, logger: Logger, report: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = c
        self.config = config
        self.store = store
        self.accessLog = accessLog
        self.logger = logger
        self.report = report
        let metrics = IMDSMetrics()
        let servedInstance = config.instance.instanceID
        let sts = AssumeRoleProvider(observer: { ok, message in
            if ok { logger.info("\(message)") } else { logger.warning("\(message)") }
            metrics.recordSTSCall(instanceID: servedInstance, success: ok, message: message)
        })
        self.sts = sts
        // forwarding-proxy: a trusted proxy's signed X-Instance-ID, then the configured resolver.
        let resolver: any CallerResolver = config.forwardingProxy.map { SignedProxyResolver($0, fallback: c.resolver) } ?? c.resolver
        engine = IMDSEngine(clock: c.clock, random: c.random, externalCredentials: sts, resolver: resolver)
        let ec2 = EC2ControlPlane(store: store, accessKeys: accessKeys, clock: c.clock)
        controlPlane = ec2
        if !accessKeys.isEmpty {
            report("control plane requires AWS Signature Version 4 (service ec2) by one of \(accessKeys.count) access key(s)")
        }
        let admin = AdminAPI(store: store, clock: c.clock, identityCertificate: identityCertificate) { line in
            logger.notice("admin: \(line)")
        }
        // A scan may take as long as a response may wait for it (at least 100 ms).
        let attributor = c.callerAttribution ? CallerAttributor(budget: max(.milliseconds(100), c.attributionHold)) : nil
        if let attributor, !attributor.isAvailable {
            logger.warning("netlink SOCK_DIAG or /proc is not available: callers will not be attributed to processes")
        }
        let observability = Observability(metrics: metrics, accessLog: accessLog, attributor: attributor, holdLimit: c.attributionHold)
        self.observability = observability
        let router = ControlPlaneRouter(
            [ObservabilityAPI(observability: observability).routes, admin.routes, ec2.routes],
            // With access keys, every control-plane request (admin API too) must be signed.
            gate: accessKeys.isEmpty ? nil : { @Sendable request in ec2.authenticationRefusal(request) },
            // HTTP-level errors in EC2's XML: the EC2 Query API owns the listener's root.
            httpError: { @Sendable status in ec2.httpErrorResponse(status: status) })
        let hooks = DataPlaneHooks(
            accepted: { local, remote in observability.connectionAccepted(local: local, remote: remote) },
            completed: { request, response, seconds, connection in
                observability.requestCompleted(request, response, seconds: seconds, connection: connection as? PendingAttribution)
            },
            hold: { connection, resume in observability.holdResponse(connection as? PendingAttribution, resume: resume) },
            writing: { connection in observability.responseWriting(connection: connection as? PendingAttribution) },
            acceptedBatch: { ends in
                // Element by element: converting the array as a whole went through the runtime's
                // dynamic cast for every element (0.6 µs a connection, perf).
                let pending = observability.connectionsAccepted(ends)
                var contexts: [(any Sendable)?] = []
                contexts.reserveCapacity(pending.count)
                for p in pending { contexts.append(p) }
                return contexts
            })
        var dataListen = c.requestedDataListen
        if c.linkLocalInterface != nil {
            dataListen += [ListenAddress(host: LinkLocalAddresses.ipv4, port: 80), ListenAddress(host: LinkLocalAddresses.ipv6, port: 80)]
        }
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.eventLoops = eventLoops
        let service = IMDSService(
            dataPlane: DataPlane(engine: engine, store: store), controlPlane: router,
            configuration: .init(
                dataListen: dataListen.filter { !$0.isIPv6 }, controlListen: [controlAddress], limits: c.limits,
                drainTimeout: c.drainTimeout),
            logger: logger, group: eventLoops, hooks: hooks)
        self.service = service
        let network = NetworkReconciler(
            store: store, effects: HostNetwork(service: service), ipv6: dataListen.filter(\.isIPv6),
            linkLocalInterface: c.linkLocalInterface, logger: logger, report: report)
        self.network = network
        metrics.setStoreSource { store.health }
        metrics.setConnectionSource { [weak service] in
            guard let open = service?.openConnections else { return [] }
            return [("data", open.data), ("control", open.control)]
        }
        metrics.setDroppedConnectionSource { [weak service] in service?.droppedConnections ?? [] }
        // Shut down gracefully in reverse order: the announcement, SIGHUP reloads, the STS
        // refresher, the listeners (drained), then the network (IPv6 listeners, link-local addresses).
        var services: [any Service] = [network, service, CredentialRefresher(provider: sts, store: store)]
        if c.ownsProcess {
            services.append(ReloadOnHangup(path: c.configPath, controlPlane: ec2, secrets: secrets, logger: logger))
            let id = config.instance.instanceID
            services.append(Announce { Self.announce(service, network, instanceID: id, report: report) })
        }
        group = ServiceGroup(services: services, gracefulShutdownSignals: c.ownsProcess ? [.sigterm, .sigint] : [], logger: logger)
    }

    /// Obtains STS credentials (when configured), adds the link-local addresses, binds every
    /// listener and brings up the IPv6 ones when enabled. Throws, with everything it did undone,
    /// when one cannot be bound.
    public func start() async throws(RuntimeError) {
        await sts.refreshDue(store: store)
        do { try network.prepare() } catch { throw RuntimeError("--link-local: \(error)") }
        // Until the group traps them, these signals are ignored rather than killing the process
        // with link-local addresses still in place.
        if configuration.ownsProcess { for sig in [SIGTERM, SIGINT, SIGHUP] { signal(sig, SIG_IGN) } }
        if configuration.ownsProcess, let soft = DescriptorLimit.raiseToHardLimit() {
            let needed = DescriptorLimit.needed(dataListeners: configuration.requestedDataListen.count + (configuration.linkLocalInterface == nil ? 0 : 2), limits: configuration.limits)
            if soft < needed {
                logger.warning("""
                    the descriptor limit (\(soft), the hard limit) is below what the connection caps hold (\(needed)): \
                    an idle-connection flood would run out of descriptors before the caps shed it; raise it \
                    (systemd LimitNOFILE=, ulimit -Hn)
                    """)
            }
        }
        do {
            try await service.start()
        } catch {
            await network.release()
            try? await eventLoops.shutdownGracefully()
            throw RuntimeError("cannot listen: \(error). Is another imds (or something else) using the port? Pick another with --listen / --control-listen, or port 0.")
        }
        await network.activate()
    }

    /// Serves until the group shuts down gracefully (SIGTERM or SIGINT when the process is this
    /// server's, or ``triggerGracefulShutdown()``): the listeners drain, the network reconciler
    /// removes what it added, and the access log is flushed. Call ``start()`` first.
    public func run() async {
        do {
            try await group.run()
        } catch {
            logger.error("service group: \(error)")
            await service.shutdown()
            await network.release()
        }
        try? await eventLoops.shutdownGracefully()
        accessLog?.flush()
        report("stopped")
    }

    /// Begins the graceful shutdown of ``run()``.
    public func triggerGracefulShutdown() async { await group.triggerGracefulShutdown() }

    /// The addresses the data plane is bound to (real ports).
    public var dataAddresses: [ListenAddress] { service.dataAddresses }
    /// The addresses the control plane is bound to (real ports).
    public var controlAddresses: [ListenAddress] { service.controlAddresses }

    static func announce(_ service: IMDSService, _ network: NetworkReconciler, instanceID id: String, report: (String) -> Void) {
        for a in service.dataAddresses where !a.isIPv6 { report("data plane listening on \(a.url)") }
        for a in network.inactiveIPv6Addresses { report("data plane on \(a.url) is off while http-protocol-ipv6 is disabled") }
        for a in service.controlAddresses { report("control plane listening on \(a.url)") }
        if let first = service.dataAddresses.first {
            report("""
                serving instance \(id); try:
                  curl -s \(first.url)/latest/meta-data/instance-id
                  TOKEN=$(curl -s -X PUT \(first.url)/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
                  curl -s -H "X-aws-ec2-metadata-token: $TOKEN" \(first.url)/latest/meta-data/
                """)
        }
    }
}
