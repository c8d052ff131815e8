import ArgumentParser
import Crypto
import Dispatch
import Foundation
import IMDSAdmin
import IMDSControlPlane
import IMDSCore
import IMDSCredentials
import IMDSIdentity
import IMDSObservability
import IMDSPostgres
import IMDSServer
import Logging
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve instance metadata (data plane) and the control plane.",
        discussion: """
            With no arguments, serves the embedded default instance on 127.0.0.1:1338 and the control \
            plane on 127.0.0.1:1339. SIGTERM and SIGINT shut down gracefully; SIGHUP reloads --config.
            """)

    @Option(name: .long, help: "Config file describing the instance (.yaml, .yml or .json).")
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Data-plane address HOST:PORT (repeatable; port 0 picks a free port).", valueName: "host:port"))
    var listen: [String] = []

    @Option(name: .long, help: ArgumentHelp("Control-plane address HOST:PORT.", valueName: "host:port"))
    var controlListen: String?

    @Option(name: .long, help: "Directory for state that survives a restart (the token key, changes made through the control plane).")
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp("Keep instance state in PostgreSQL, shared by every imds on the database (docs/postgres.md); the password may come from PGPASSWORD. Default: the embedded store (--state-dir, which then holds only the local cache).", valueName: "postgres://user@host:port/db"))
    var store: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .long, help: "Also serve on the real addresses: add 169.254.169.254/32 (and fd00:ec2::254/128) to --link-local-interface and listen on port 80 there; removed on exit. Needs root or CAP_NET_ADMIN + CAP_NET_BIND_SERVICE.")
    var linkLocal = false

    @Option(name: .long, help: "Interface for --link-local.")
    var linkLocalInterface: String = "lo"

    @Option(name: .long, help: ArgumentHelp("Write a JSON line per data-plane request to FILE (appended), or to standard output with '-'.", valueName: "file|-"))
    var accessLog: String?

    @Flag(name: .long, help: "Do not map on-host callers to their processes through /proc.")
    var noCallerAttribution = false

    @Option(name: .long, help: ArgumentHelp("Longest wait, in milliseconds, of a response to an on-host caller for its process lookup (0: never wait; short-lived callers may then go unattributed).", valueName: "ms"))
    var attributionHoldMs: Int = 100

    func validate() throws {
        for l in listen where ListenAddress(parsing: l) == nil {
            throw ValidationError("--listen '\(l)' is not HOST:PORT (for example 127.0.0.1:1338 or [::1]:1338).")
        }
        if !(0...5000).contains(attributionHoldMs) {
            throw ValidationError("--attribution-hold-ms must be 0 to 5000.")
        }
        if let c = controlListen, ListenAddress(parsing: c) == nil {
            throw ValidationError("--control-listen '\(c)' is not HOST:PORT (for example 127.0.0.1:1339).")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical.")
        }
    }

    func run() async throws {
        Output.lineBuffered()
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "imds")

        let imdsConfig: IMDSConfig
        do {
            imdsConfig = try config.map { try IMDSConfig.load(path: $0) } ?? .embeddedDefault
        } catch let error as ConfigError {
            throw CLIError("config error: \(error)")
        }

        var accessKeys = imdsConfig.controlPlane.accessKeys
        let env = ProcessInfo.processInfo.environment
        if let id = env["IMDS_CONTROL_ACCESS_KEY_ID"], !id.isEmpty {
            guard let secret = env["IMDS_CONTROL_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw CLIError("IMDS_CONTROL_ACCESS_KEY_ID is set but IMDS_CONTROL_SECRET_ACCESS_KEY is not: set both, or neither.")
            }
            accessKeys.removeAll { $0.accessKeyID == id }
            accessKeys.append(ControlPlaneAccessKey(accessKeyID: id, secretAccessKey: secret))
        }

        // Configured secrets never appear in the access log, the caller table or the dashboard.
        let storeURL = store ?? imdsConfig.store
        let storePassword = store.flatMap { URLComponents(string: $0)?.password }.map { [$0] } ?? []
        let startSecrets = imdsConfig.secrets + accessKeys.map(\.secretAccessKey) + storePassword
        Redaction.setConfiguredSecrets(startSecrets)

        // Decided on the resolved address that is bound, not on the name (a name such as
        // "localhost" or "ctl.internal" may resolve to a public address).
        let controlAddress: ListenAddress
        do {
            controlAddress = try (controlListen.flatMap(ListenAddress.init(parsing:)) ?? ListenAddress(host: "127.0.0.1", port: 1339)).resolved()
        } catch {
            throw CLIError("--control-listen: \(error)")
        }
        if !controlAddress.isLoopback && accessKeys.isEmpty {
            throw CLIError(
                "refusing to serve the control plane on \(controlAddress) without access keys: anyone who can reach it could change the instance's metadata options. Bind it to loopback (--control-listen 127.0.0.1:1339), or configure access keys (control-plane.access-keys in --config, or IMDS_CONTROL_ACCESS_KEY_ID and IMDS_CONTROL_SECRET_ACCESS_KEY) so that every request must carry an AWS SigV4 signature.")
        }

        var identity: IdentityKey?
        do {
            // With a shared store, the pair is the database's unless the config names files.
            identity = try IdentityKey.configured(
                keyFile: imdsConfig.identityKeyFile, certificateFile: imdsConfig.identityCertificateFile,
                stateDirectory: storeURL == nil ? stateDir : nil)
            if storeURL == nil, identity == nil { identity = try IdentityKey.generate() }
        } catch {
            throw CLIError("identity signing key: \(error)")
        }

        // The one owner of instance state: PostgreSQL with --store, durable in --state-dir, in
        // memory without either.
        let store: any InstanceStore
        var shared: PostgresInstanceStore?
        if let storeURL {
            let opened = try await SharedStore.open(
                storeURL, config: imdsConfig, configuredIdentity: identity, stateDirectory: stateDir, logger: logger)
            store = opened.store
            shared = opened.store
            identity = opened.signer
        } else if let stateDir {
            let existed = JournalPersistence(directory: stateDir).exists
            do {
                store = try StateDirectory.open(stateDir, config: imdsConfig, signer: identity) { print("imds: \($0)") }
            } catch {
                throw CLIError("state directory \(stateDir): \(error)")
            }
            if existed {
                print("imds: restored the control-plane state from \(JournalPersistence(directory: stateDir).journalPath) (revision \(store.snapshot.revision))")
            }
        } else {
            store = EmbeddedInstanceStore(config: imdsConfig, signer: identity)
            print("imds: no --state-dir: changes made through the control plane are kept in memory only, and tokens do not survive a restart")
        }
        if let why = EC2ControlPlane.launchViolation(imdsConfig, in: store.snapshot) {
            throw CLIError("cannot launch: \(why).")
        }
        let metrics = IMDSMetrics()
        let servedInstance = imdsConfig.instance.instanceID
        let sts = AssumeRoleProvider(observer: { ok, message in
            if ok { logger.info("\(message)") } else { logger.warning("\(message)") }
            metrics.recordSTSCall(instanceID: servedInstance, success: ok, message: message)
        })
        let engine = IMDSEngine(externalCredentials: sts)
        let ec2 = EC2ControlPlane(store: store, accessKeys: accessKeys)
        if !accessKeys.isEmpty {
            print("imds: control plane requires AWS Signature Version 4 (service ec2) by one of \(accessKeys.count) access key(s)")
        }
        // Obtain STS credentials (if the config asks for them) before serving, then keep them fresh.
        await sts.refreshDue(store: store)
        var dataAddresses = listen.isEmpty
            ? [ListenAddress(host: "127.0.0.1", port: 1338), ListenAddress(host: "::1", port: 1338)]
            : listen.compactMap(ListenAddress.init(parsing:))

        var linkLocalAddresses: LinkLocalAddresses?
        if linkLocal {
            if let missing = LinkLocalAddresses.missingPrivileges() {
                throw CLIError(
                    "--link-local needs privileges this process does not have: \(missing). Run as root, or grant the capabilities to the binary once: sudo setcap cap_net_admin,cap_net_bind_service=ep $(command -v imds). Without --link-local, imds serves on 127.0.0.1:1338 and needs no privileges.")
            }
            do {
                linkLocalAddresses = try LinkLocalAddresses.add(interface: linkLocalInterface, ipv6: true)
            } catch {
                throw CLIError("--link-local: \(error)")
            }
            dataAddresses += [ListenAddress(host: LinkLocalAddresses.ipv4, port: 80), ListenAddress(host: LinkLocalAddresses.ipv6, port: 80)]
            if let l = linkLocalAddresses, !l.added.isEmpty {
                print("imds: added \(l.added.joined(separator: ", ")) to \(l.interface) (removed on exit)")
            }
        }
        let admin = AdminAPI(store: store) { line in logger.notice("admin: \(line)") }
        let accessLogWriter: AccessLogWriter?
        do {
            accessLogWriter = try accessLog.map { try AccessLogWriter(destination: $0) }
        } catch {
            linkLocalAddresses?.remove()
            throw CLIError("\(error)")
        }
        // A scan may take as long as a response may wait for it (at least 100 ms).
        let attributor = noCallerAttribution ? nil : CallerAttributor(budget: .milliseconds(max(100, attributionHoldMs)))
        if let attributor, !attributor.isAvailable {
            logger.warning("netlink SOCK_DIAG or /proc is not available: callers will not be attributed to processes")
        }
        let observability = Observability(
            metrics: metrics, accessLog: accessLogWriter, attributor: attributor, holdLimit: .milliseconds(attributionHoldMs))
        let observabilityAPI = ObservabilityAPI(observability: observability)
        let controlPlane = ControlPlaneRouter(
            [observabilityAPI.routes, admin.routes, ec2.routes],
            // With access keys, every control-plane request (admin API too) must be signed.
            gate: accessKeys.isEmpty ? nil : { @Sendable request in ec2.authenticationRefusal(request) },
            // HTTP-level errors in EC2's XML: the EC2 Query API owns the listener's root.
            httpError: { @Sendable status in ec2.httpErrorResponse(status: status) })
        let hooks = DataPlaneHooks(
            accepted: { local, remote in observability.connectionAccepted(local: local, remote: remote) },
            completed: { request, response, seconds, connection in
                observability.requestCompleted(request, response, seconds: seconds, connection: connection as? PendingAttribution)
            },
            hold: { connection, resume in observability.holdResponse(connection as? PendingAttribution, resume: resume) })
        let service = IMDSService(
            dataPlane: DataPlane(engine: engine, store: store), controlPlane: controlPlane,
            configuration: .init(dataListen: dataAddresses, controlListen: [controlAddress]),
            logger: logger, hooks: hooks)
        observability.metrics.setStoreSource { store.health }
        observability.metrics.setConnectionSource { [weak service] in
            guard let open = service?.openConnections else { return [] }
            return [("data", open.data), ("control", open.control)]
        }

        service.onIPv6Change = { address, on in
            print(on ? "imds: data plane listening on \(address.url) (http-protocol-ipv6 enabled)"
                     : "imds: data plane on \(address.url) stopped (http-protocol-ipv6 disabled)")
        }
        // Until the group traps them, these signals are ignored rather than killing the process
        // with link-local addresses still in place.
        for sig in [SIGTERM, SIGINT, SIGHUP] { signal(sig, SIG_IGN) }
        do {
            try await service.start()
        } catch {
            linkLocalAddresses?.remove()
            throw CLIError("cannot listen: \(error). Is another imds (or something else) using the port? Pick another with --listen / --control-listen, or port 0.")
        }
        // The lifecycle: SIGTERM and SIGINT shut the group down gracefully (in reverse order: the
        // announcement, SIGHUP reloads, the STS refresher, then the listeners drain and close).
        let id = imdsConfig.instance.instanceID
        let announce = Announce {
            for a in service.dataAddresses where !a.isIPv6 { print("imds: data plane listening on \(a.url)") }
            for a in service.inactiveIPv6Addresses {
                print("imds: data plane on \(a.url) is off while http-protocol-ipv6 is disabled")
            }
            for a in service.controlAddresses { print("imds: control plane listening on \(a.url)") }
            if let first = service.dataAddresses.first {
                print("""
                    imds: serving instance \(id); try:
                      curl -s \(first.url)/latest/meta-data/instance-id
                      TOKEN=$(curl -s -X PUT \(first.url)/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
                      curl -s -H "X-aws-ec2-metadata-token: $TOKEN" \(first.url)/latest/meta-data/
                    """)
            }
        }
        let group = ServiceGroup(
            services: [
                service, CredentialRefresher(provider: sts, store: store),
                ReloadOnHangup(path: config, controlPlane: ec2, secrets: startSecrets, logger: logger), announce,
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do {
            try await group.run()
        } catch {
            logger.error("service group: \(error)")
            await service.shutdown()
        }
        await shared?.shutdown()
        accessLogWriter?.flush()
        if let l = linkLocalAddresses, !l.added.isEmpty {
            l.remove()
            print("imds: removed \(l.added.joined(separator: ", ")) from \(l.interface)")
        }
        print("imds: stopped")
    }
}

/// A one-paragraph error for the user, printed without a stack trace; exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
