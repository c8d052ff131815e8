import ArgumentParser
import Foundation
import IMDSCore
import IMDSPostgres
import IMDSRuntime
import IMDSServer
import Logging

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

    @Option(name: .long, help: ArgumentHelp("Keep instance state in PostgreSQL, shared by every imds on the database (docs/postgres.md); the password may come from PGPASSWORD. Overrides the config file's store:. Default: the embedded store (--state-dir then holds only the local cache of the last snapshot).", valueName: "postgres://user@host:port/db"))
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
        // The store is chosen at start (a SIGHUP does not move it): --store, else the file's store:.
        let storeURL = store ?? config.flatMap { try? IMDSConfig.load(path: $0) }?.store
        let location: StoreLocation = try storeURL.map { try SharedStore.location($0, stateDirectory: stateDir) }
            ?? stateDir.map { .stateDirectory($0) } ?? .memory
        if let password = store.flatMap({ URLComponents(string: $0)?.password }), !password.isEmpty {
            print("imds: warning: the --store password is visible to every local user (ps); set PGPASSWORD or store: in the config file instead")
        }
        let configuration = ServerConfiguration(
            configPath: config, dataListen: listen.compactMap(ListenAddress.init(parsing:)),
            controlListen: controlListen.flatMap(ListenAddress.init(parsing:)) ?? ListenAddress(host: "127.0.0.1", port: 1339),
            store: location, linkLocalInterface: linkLocal ? linkLocalInterface : nil,
            accessLog: accessLog, callerAttribution: !noCallerAttribution, attributionHold: .milliseconds(attributionHoldMs),
            environment: ProcessInfo.processInfo.environment, ownsProcess: true)
        do {
            let runtime = try await ServerRuntime.open(configuration, logger: Logger(label: "imds")) { print("imds: \($0)") }
            try await runtime.start()
            await runtime.run()
            if let shared = runtime.store as? PostgresInstanceStore { await shared.shutdown() }
        } catch {
            throw CLIError(error.description)
        }
    }
}
