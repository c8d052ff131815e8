import Crypto
import Foundation
import IMDSCore
import IMDSIdentity
import IMDSRuntime
import IMDSServer

/// An IMDS for your own tests.
///
/// In-process (no sockets):
/// ```swift
/// let imds = try TestIMDS(yaml: "instance:\n  instance-id: i-0123456789abcdef0\n")
/// let response = imds.request("GET", "/latest/meta-data/instance-id")
/// // response.status == 200, response.bodyText == "i-0123456789abcdef0"
/// ```
///
/// On a live port-0 listener:
/// ```swift
/// let imds = try TestIMDS()
/// let server = try await imds.startLive()
/// // point clients at server.dataURL, e.g. AWS_EC2_METADATA_SERVICE_ENDPOINT
/// await server.stop()
/// ```
public final class TestIMDS: Sendable {
    /// The state: change it as the control plane would, e.g. `try await imds.store.apply([...])`.
    public let store: EmbeddedInstanceStore
    public let engine: IMDSEngine
    public let clock: ManualClock?
    /// The engine over the store, as listeners run it (one, so a `throttle:` allowance is shared
    /// by every request).
    public let dataPlane: DataPlane

    /// An IMDS for `config` (the embedded default instance when nil), its state in memory.
    /// - Parameters:
    ///   - manualClock: pass a ``ManualClock`` to control token expiry and rotation.
    ///   - random: decides probabilistic faults.
    public init(config: IMDSConfig = .embeddedDefault, manualClock: ManualClock? = nil,
                accountDefaults: AccountDefaults? = nil, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.clock = manualClock
        let clock: any IMDSClock = manualClock ?? SystemClock()
        var config = config
        if let accountDefaults { config.accountDefaults = accountDefaults }
        self.store = EmbeddedInstanceStore(config: config, clock: clock, signer: TestIMDS.identity)
        self.engine = IMDSEngine(clock: clock, random: random)
        self.dataPlane = DataPlane(engine: engine, store: store)
    }

    /// An IMDS over a store you opened (a durable one, say) and an engine you built.
    public init(store: EmbeddedInstanceStore, engine: IMDSEngine) {
        self.store = store
        self.engine = engine
        self.clock = engine.clock as? ManualClock
        self.dataPlane = DataPlane(engine: engine, store: store)
    }

    /// One identity key for every test server of the process (RSA key generation is slow).
    public static let identity: IdentityKey = {
        do { return try IdentityKey.generate() } catch { fatalError("cannot generate an RSA key: \(error)") }
    }()

    /// An IMDS for a YAML config document (keys absent from it come from the embedded default).
    public convenience init(yaml: String, manualClock: ManualClock? = nil) throws {
        self.init(config: try IMDSConfig.parse(Data(yaml.utf8), isJSON: false), manualClock: manualClock)
    }

    /// The primary instance as it is now.
    public var instance: InstanceRuntime { store.snapshot.primary }

    /// Answers a request directly (no sockets), as a listener would.
    public func respond(to request: IMDSRequest) -> IMDSResponse { dataPlane.respond(to: request) }

    /// Sends a request to the engine directly (no sockets), from source address `from` (which
    /// decides the instance in a fleet).
    public func request(_ method: String, _ target: String, headers: [(String, String)] = [],
                        from: String = "127.0.0.1") -> IMDSResponse {
        respond(to: IMDSRequest(method: method, target: target, headers: headers.map { ($0.0, $0.1) },
                                peer: PeerAddress(ip: from, port: 40000)))
    }

    /// A fresh IMDSv2 token (the body of a token PUT) for the caller at `from`, or nil when the PUT fails.
    public func token(ttl: Int = 21600, from: String = "127.0.0.1") -> String? {
        let r = request("PUT", "/latest/api/token", headers: [(IMDSHeader.tokenTTLRequest, String(ttl))], from: from)
        return r.status == 200 ? r.bodyText : nil
    }

    /// Starts the server `imds serve` runs (the same ``ServerRuntime``: data plane, EC2 and admin
    /// APIs, observability) over this store, on `host` port 0 for both planes, without caller
    /// attribution. Adjust anything else through `configure`.
    public func startLive(
        host: String = "127.0.0.1", configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> LiveIMDS {
        var configuration = ServerConfiguration(
            config: store.snapshot.config, dataListen: [ListenAddress(host: host, port: 0)],
            controlListen: ListenAddress(host: host, port: 0), store: .provided(store), callerAttribution: false,
            identity: TestIMDS.identity, clock: engine.clock, random: engine.random, resolver: engine.resolver)
        configure(&configuration)
        let runtime = try await ServerRuntime.open(configuration)
        try await runtime.start()
        return LiveIMDS(runtime: runtime, running: Task { await runtime.run() })
    }
}

/// A running live test server.
public struct LiveIMDS: Sendable {
    /// The whole server (its store, control plane, observability).
    public let runtime: ServerRuntime
    let running: Task<Void, Never>
    /// The listeners.
    public var service: IMDSService { runtime.service }
    /// `http://127.0.0.1:<port>` of the data plane.
    public var dataURL: String { service.dataAddresses.first!.url }
    public var dataAddress: ListenAddress { service.dataAddresses.first! }
    public var controlURL: String? { service.controlAddresses.first?.url }
    /// Shuts the server down gracefully (requests in flight finish) and waits until it has stopped.
    public func stop() async {
        await runtime.triggerGracefulShutdown()
        await running.value
    }
}
