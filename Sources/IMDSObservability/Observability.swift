import Dispatch
import Foundation
import IMDSCore
import IMDSWire
import Synchronization

/// Everything the data plane reports to: metrics, the access log, caller attribution, the caller
/// table and the traffic window. Transport-free: the server calls ``connectionAccepted(local:remote:)``
/// when it accepts a connection and ``requestCompleted(_:_:seconds:connection:)`` after each response.
public final class Observability: Sendable {
    public let metrics: IMDSMetrics
    public let callers: CallerTable
    public let traffic: TrafficWindow
    public let accessLog: AccessLogWriter?
    public let attributor: CallerAttributor?
    /// Longest time a response to an on-host caller waits for its attribution (zero: never wait).
    public let holdLimit: Duration
    let now: @Sendable () -> Date

    /// - Parameters:
    ///   - metrics: where counts go (inject your own registry in tests).
    ///   - accessLog: nil for no access log.
    ///   - attributor: nil to skip `/proc` attribution (e.g. where `/proc` is not available).
    ///   - holdLimit: see ``holdResponse(_:resume:)``.
    public init(
        metrics: IMDSMetrics = IMDSMetrics(), accessLog: AccessLogWriter? = nil, attributor: CallerAttributor? = nil,
        holdLimit: Duration = .milliseconds(100),
        callers: CallerTable = CallerTable(), traffic: TrafficWindow = TrafficWindow(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.metrics = metrics
        self.accessLog = accessLog
        self.attributor = attributor
        self.holdLimit = holdLimit
        self.callers = callers
        self.traffic = traffic
        self.now = now
    }

    /// Called when a data-plane connection is accepted, before its request arrives: starts
    /// attributing it (off the caller's thread) while the client process certainly still exists.
    public func connectionAccepted(local: PeerAddress?, remote: PeerAddress?) -> PendingAttribution {
        connectionsAccepted([(local, remote)])[0]
    }

    /// ``connectionAccepted(local:remote:)`` for the connections of one accept burst: their client
    /// sockets are looked up with one netlink exchange.
    public func connectionsAccepted(_ ends: [(local: PeerAddress?, remote: PeerAddress?)]) -> [PendingAttribution] {
        guard let attributor else {
            return ends.map { _ in recorded(PendingAttribution(.skipped("attribution disabled"))) }
        }
        var known: [(local: PeerAddress, remote: PeerAddress)] = []
        for e in ends {
            if let local = e.local, let remote = e.remote { known.append((local, remote)) }
        }
        var begun = attributor.begin(known).makeIterator()
        return ends.map { e in
            guard e.local != nil, e.remote != nil, let pending = begun.next() else {
                return recorded(PendingAttribution(.skipped("addresses unknown")))
            }
            if pending.result == nil { metrics.recordAttributionScan() }
            return recorded(pending)
        }
    }

    /// Counts an attribution's result in the metrics, now or when it is known.
    private func recorded(_ pending: PendingAttribution) -> PendingAttribution {
        if let known = pending.result {
            // Resolved on the fast path (most connections): no closure to allocate.
            metrics.recordAttribution(known.label)
        } else {
            let metrics = self.metrics
            pending.whenResolved { metrics.recordAttribution($0.label) }
        }
        return pending
    }

    /// Whether to hold a response until its connection's attribution is known, and then `resume`.
    ///
    /// A client on this host that gets its answer in well under a millisecond (curl) has often
    /// exited before `/proc` can be scanned. So a response to an on-host caller whose attribution
    /// is still running waits for it, at most ``holdLimit`` (the event loop does not wait; the
    /// response is written later). Remote peers, finished lookups and skipped lookups never wait.
    public func holdResponse(_ connection: PendingAttribution?, resume: @escaping @Sendable () -> Void) -> Bool {
        guard holdLimit > .zero, let connection, connection.result == nil else { return false }
        let once = Atomic<Bool>(false)
        let fire: @Sendable () -> Void = {
            if once.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged { resume() }
        }
        connection.whenResolved { _ in fire() }
        let nanos = holdLimit.components.seconds * 1_000_000_000 + holdLimit.components.attoseconds / 1_000_000_000
        Self.holdTimers.asyncAfter(deadline: .now() + .nanoseconds(Int(nanos))) { fire() }
        return true
    }

    /// Where held responses' time limits fire: a serial queue of its own, which gets a thread even
    /// when the shared pool (Swift concurrency's, which `DispatchQueue.global()` is) is saturated,
    /// so a held response is never kept past ``holdLimit`` by unrelated work.
    private static let holdTimers = DispatchQueue(label: "imds.attribution.hold")

    /// The last command line redacted for a request's token, and the result: a client making
    /// requests in a loop (an SDK, a load generator) has the same command line and token every time,
    /// and the redaction of every argument per request was the largest per-request cost of
    /// attribution.
    private let redactionMemo = Mutex<(input: [String], known: [String], output: [String])?>(nil)

    /// `a` with the process's command line also stripped of this request's token values.
    func redacted(_ a: Attribution, known: [String]) -> Attribution {
        guard case .process(var p) = a, !known.isEmpty else { return a }
        if let m = redactionMemo.withLock({ $0 }), m.known == known, m.input == p.commandLine {
            p.commandLine = m.output
        } else {
            let output = Redaction.redact(arguments: p.commandLine, known: known)
            redactionMemo.withLock { [input = p.commandLine] in $0 = (input, known, output) }
            p.commandLine = output
        }
        return .process(p)
    }

    /// Called just before a response is written: the connection's fd is about to be free, and the
    /// client's next connection most likely gets the same number. Recorded now, before the client
    /// can connect again, so that the next lookup guesses it (recorded only after the write, a
    /// loop's bookkeeping raced the client's reconnect and twice as many lookups needed a scan).
    public func responseWriting(connection: PendingAttribution?) {
        guard let attributor, let connection, connection.result != nil else { return }
        attributor.finished(connection)
    }

    /// Called after each data-plane response: counts it now, and logs it (and adds it to the caller
    /// table) once its connection's attribution is known.
    public func requestCompleted(_ request: IMDSRequest, _ response: IMDSResponse, seconds: Double, connection: PendingAttribution?) {
        metrics.record(request: request, response: response, seconds: seconds)
        let at = now()
        let known = request.headerValues(IMDSHeader.token)
        let entry = AccessLogEntry(request: request, response: response, seconds: seconds, at: at, tokens: known)
        traffic.record(CallerTable.classify(entry), at: at)
        guard let connection else {
            finish(entry, .skipped("no connection information"), known: known)
            return
        }
        if let a = connection.result {
            // Resolved already (the fast path, or a scan that finished first): no closure to allocate.
            attributor?.finished(connection)
            finish(entry, a, known: known)
            return
        }
        // Once both the request and the lookup are done, the connection's fd is about to be free.
        connection.whenResolved { [self] a in
            attributor?.finished(connection)
            finish(entry, a, known: known)
        }
    }

    /// Logs a request (and adds it to the caller table) with its connection's attribution.
    private func finish(_ entry: consuming AccessLogEntry, _ a: Attribution, known: [String]) {
        var e = entry
        e.attribute(redacted(a, known: known))
        callers.record(e)
        accessLog?.write(e)
    }
}

/// The observability endpoints on the control plane: `GET /metrics`, `GET /dashboard`,
/// `GET /admin/v1/callers` (`DELETE` resets the table) and `GET /admin/v1/traffic`.
public struct ObservabilityAPI: AsyncResponder {
    public static let metricsPath = "/metrics"
    public static let dashboardPath = "/dashboard"
    public static let callersPath = AdminPaths.prefix + "/callers"
    public static let trafficPath = AdminPaths.prefix + "/traffic"
    /// Paths this API answers.
    public static let paths = [metricsPath, dashboardPath, callersPath, trafficPath]

    let observability: Observability

    public init(observability: Observability) { self.observability = observability }

    /// The routes, for the control plane's ``ControlPlaneRouter``; `/metrics` and `/dashboard` are this API's own paths.
    public var routes: RouteGroup {
        let observability = self.observability
        let metrics: @Sendable (RoutedRequest) async -> IMDSResponse = { r in
            .controlPlane(200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                          body: Array(observability.metrics.exposition().utf8), omitBody: r.method == "HEAD")
        }
        let dashboard: @Sendable (RoutedRequest) async -> IMDSResponse = { r in
            .controlPlane(200, contentType: "text/html; charset=utf-8", body: Array(Dashboard.html.utf8), omitBody: r.method == "HEAD")
        }
        return RouteGroup(
            name: "observability",
            routes: [
                Route("GET", Self.metricsPath, metrics),
                Route("HEAD", Self.metricsPath, metrics),
                Route("GET", Self.dashboardPath, dashboard),
                Route("HEAD", Self.dashboardPath, dashboard),
                Route("GET", Self.callersPath) { _ in .json(200, observability.callers.document()) },
                Route("DELETE", Self.callersPath) { _ in
                    observability.callers.reset()
                    return .json(200, ["reset": true])
                },
                Route("GET", Self.trafficPath) { _ in
                    let now = observability.now()
                    return .json(200, TrafficDocument(seconds: TrafficWindow.seconds, series: observability.traffic.series(now: now),
                                                      now: Timestamp.iso8601Milliseconds(now)))
                },
            ],
            prefixes: [Self.metricsPath, Self.dashboardPath])
    }

    /// Answers with these routes alone (tests).
    public func respond(to request: IMDSRequest) async -> IMDSResponse {
        await ControlPlaneRouter([routes]).respond(to: request)
    }

    struct TrafficDocument: Encodable {
        var seconds: Int
        var series: [TrafficWindow.Bucket]
        var now: String
    }
}
