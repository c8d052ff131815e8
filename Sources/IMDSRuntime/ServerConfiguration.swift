import Foundation
import IMDSControlPlane
import IMDSCore
import IMDSIdentity
import IMDSServer

/// Where the server keeps its instance state.
public enum StoreLocation: Sendable {
    /// In memory: changes made through the control plane and tokens do not survive a restart.
    case memory
    /// The embedded durable store (journal and snapshot) in this directory (`--state-dir`).
    case stateDirectory(String)
    /// A store opened by the caller (a test's own, or any other ``InstanceStore``).
    case provided(any InstanceStore)
    /// A store opened by `open` once the configuration and identity key are known (a database, say).
    /// `name` says where it is, for messages (no credentials in it).
    case custom(name: String, open: @Sendable (StoreOpening) async throws -> any InstanceStore)
}

/// What a ``StoreLocation/custom(name:open:)`` store is opened with.
public struct StoreOpening: Sendable {
    /// The instances and policies to launch (the config file's).
    public var config: IMDSConfig
    /// The identity-document signing key configured for this process.
    public var identity: IdentityKey
    public var clock: any IMDSClock
    /// Prints a sentence for the operator (`imds: …` on standard output for `imds serve`).
    public var report: @Sendable (String) -> Void
}

/// An imds server as a value: what the flags and the config file say. ``ServerRuntime`` turns it
/// into running listeners and services.
public struct ServerConfiguration: Sendable {
    /// The instances and policies (nil: read ``configPath``, or the embedded default without one).
    public var config: IMDSConfig?
    /// The config file (`--config`), read at start when ``config`` is nil and on every SIGHUP.
    public var configPath: String?
    /// Data-plane addresses (`--listen`; empty: 127.0.0.1:1338 and [::1]:1338). IPv6 addresses serve
    /// only while an instance has `http-protocol-ipv6` enabled.
    public var dataListen: [ListenAddress]
    /// The control-plane address (`--control-listen`).
    public var controlListen: ListenAddress
    public var store: StoreLocation
    /// `--link-local`: the interface that gets 169.254.169.254/32 and fd00:ec2::254/128 (and port-80
    /// listeners on them) for as long as the server runs; nil for none.
    public var linkLocalInterface: String?
    /// `--access-log`: a file, or `-` for standard output; nil for none.
    public var accessLog: String?
    /// Maps on-host callers to their processes (netlink SOCK_DIAG and /proc).
    public var callerAttribution: Bool
    /// Longest wait of a response to an on-host caller for its process lookup.
    public var attributionHold: Duration
    /// Where `IMDS_CONTROL_ACCESS_KEY_ID` / `IMDS_CONTROL_SECRET_ACCESS_KEY` are read from.
    public var environment: [String: String]
    /// The listeners' limits (connection caps, which connections count together, deadlines).
    public var limits: ListenerLimits
    /// How long a graceful shutdown waits for open connections before closing them.
    public var drainTimeout: Duration
    /// The identity signing key (nil: the configured files or the state directory's, else a new one).
    public var identity: IdentityKey?
    /// The process is this server's: it traps SIGTERM, SIGINT (graceful shutdown) and SIGHUP (reload),
    /// announces its addresses and sets the process-wide redaction list. False inside tests.
    public var ownsProcess: Bool
    /// The time the data plane, the store and the control plane answer at.
    public var clock: any IMDSClock
    /// Decides probabilistic faults.
    public var random: @Sendable () -> Double
    /// Which instance each data-plane request is answered as.
    public var resolver: any CallerResolver

    public init(
        config: IMDSConfig? = nil, configPath: String? = nil, dataListen: [ListenAddress] = [],
        controlListen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 1339), store: StoreLocation = .memory,
        linkLocalInterface: String? = nil, accessLog: String? = nil, callerAttribution: Bool = true,
        attributionHold: Duration = .milliseconds(100), environment: [String: String] = [:],
        limits: ListenerLimits = ListenerLimits(), drainTimeout: Duration = .seconds(5), identity: IdentityKey? = nil,
        ownsProcess: Bool = false, clock: any IMDSClock = SystemClock(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        resolver: any CallerResolver = SourceAddressResolver()
    ) {
        self.config = config
        self.configPath = configPath
        self.dataListen = dataListen
        self.controlListen = controlListen
        self.store = store
        self.linkLocalInterface = linkLocalInterface
        self.accessLog = accessLog
        self.callerAttribution = callerAttribution
        self.attributionHold = attributionHold
        self.environment = environment
        self.limits = limits
        self.drainTimeout = drainTimeout
        self.identity = identity
        self.ownsProcess = ownsProcess
        self.clock = clock
        self.random = random
        self.resolver = resolver
    }

    /// The data-plane addresses asked for (the defaults when none), before link-local ones.
    var requestedDataListen: [ListenAddress] {
        dataListen.isEmpty ? [ListenAddress(host: "127.0.0.1", port: 1338), ListenAddress(host: "::1", port: 1338)] : dataListen
    }

    /// The config file's access keys, with the environment's pair (when set) replacing one of the
    /// same id.
    static func accessKeys(_ config: IMDSConfig, environment: [String: String]) throws(RuntimeError) -> [ControlPlaneAccessKey] {
        var keys = config.controlPlane.accessKeys
        if let id = environment["IMDS_CONTROL_ACCESS_KEY_ID"], !id.isEmpty {
            guard let secret = environment["IMDS_CONTROL_SECRET_ACCESS_KEY"], !secret.isEmpty else {
                throw RuntimeError("IMDS_CONTROL_ACCESS_KEY_ID is set but IMDS_CONTROL_SECRET_ACCESS_KEY is not: set both, or neither.")
            }
            keys.removeAll { $0.accessKeyID == id }
            keys.append(ControlPlaneAccessKey(accessKeyID: id, secretAccessKey: secret))
        }
        return keys
    }
}

/// Why a server cannot start: one paragraph for the operator.
public struct RuntimeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ message: String) { description = message }
}
