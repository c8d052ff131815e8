import IMDSCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The running service: data-plane listeners answered by an ``IMDSEngine`` and control-plane
/// listeners answered by an ``AsyncResponder``. The two never share a listener.
public final class IMDSService: Sendable {
    public struct Configuration: Sendable {
        public var dataListen: [ListenAddress]
        public var controlListen: [ListenAddress]
        public var limits: ListenerLimits

        public init(
            dataListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1338)],
            controlListen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 1339)],
            limits: ListenerLimits = ListenerLimits()
        ) {
            self.dataListen = dataListen
            self.controlListen = controlListen
            self.limits = limits
        }
    }

    public let engine: IMDSEngine
    public let controlPlane: (any AsyncResponder)?
    let configuration: Configuration
    let logger: Logger
    let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let listeners = Mutex<(data: [HTTPListener], control: [HTTPListener])>(([], []))
    /// Called after every data-plane request (access log, metrics).
    private let observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)?

    public init(
        engine: IMDSEngine, controlPlane: (any AsyncResponder)?, configuration: Configuration,
        logger: Logger = Logger(label: "imds.server"), group: (any EventLoopGroup)? = nil,
        observer: (@Sendable (IMDSRequest, IMDSResponse, Double) -> Void)? = nil
    ) {
        self.engine = engine
        self.controlPlane = controlPlane
        self.configuration = configuration
        self.logger = logger
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.ownsGroup = group == nil
        self.observer = observer
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
        listeners.withLock { $0 = (data, control) }
    }

    func startDataListener(_ address: ListenAddress) async throws -> HTTPListener {
        let engine = self.engine
        let observer = self.observer
        let limits = configuration.limits
        return try await HTTPListener.start(address, group: group, limits: limits) {
            OneShotHTTPHandler(
                responder: .sync { engine.respond(to: $0) }, keepBody: false, maxBody: limits.maxBodyBytes,
                malformed: { engine.malformedRequestResponse(status: $0) }, observer: observer)
        }
    }

    func startControlListener(_ address: ListenAddress, _ controlPlane: any AsyncResponder) async throws -> HTTPListener {
        let limits = configuration.limits
        return try await HTTPListener.start(address, group: group, limits: limits) {
            OneShotHTTPHandler(
                responder: .async { await controlPlane.respond(to: $0) }, keepBody: true, maxBody: limits.maxBodyBytes,
                malformed: { status in
                    let body = Array("{\"error\":\"malformed HTTP request\"}".utf8)
                    return IMDSResponse(
                        status: status, reason: status == 431 ? "Request Header Fields Too Large" : "Bad Request",
                        headers: [("Content-Type", "application/json"), ("Content-Length", String(body.count)),
                                  ("Connection", "close")],
                        body: body)
                })
        }
    }

    /// The addresses the data plane is bound to (real ports).
    public var dataAddresses: [ListenAddress] { listeners.withLock { $0.data.map(\.boundAddress) } }
    /// The addresses the control plane is bound to (real ports).
    public var controlAddresses: [ListenAddress] { listeners.withLock { $0.control.map(\.boundAddress) } }

    /// Stops accepting, lets in-flight requests finish (each connection carries one request), and
    /// releases the event loops if this service created them.
    public func shutdown() async {
        let all = listeners.withLock { l -> [HTTPListener] in
            defer { l = ([], []) }
            return l.data + l.control
        }
        for l in all { await l.close() }
        // Give connections that are mid-response a moment to finish.
        for _ in 0..<50 where all.contains(where: { $0.openConnections > 0 }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
