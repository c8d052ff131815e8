import CoreMetrics
import Foundation
import IMDSCore
import Prometheus
import Synchronization

/// The service's metrics, recorded through swift-metrics into a Prometheus registry this object
/// owns (nothing is bootstrapped globally, so several servers and tests can run in one process).
///
/// Names, labels and their CloudWatch counterparts are listed in `docs/observability.md`. Every label
/// takes values from a bounded set, so a misbehaving client cannot grow the registry.
public final class IMDSMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// A swift-metrics factory over ``registry``: other code can record its own metrics through it.
    public let factory: PrometheusMetricsFactory
    private let instances = BoundedLabel(capacity: 64)
    private let stsCodes = BoundedLabel(capacity: 16)
    private let credentialState = Mutex<[String: ServedCredentials]>([:])
    /// The swift-metrics handles made so far, by metric and label values: building a handle goes
    /// through the registry (name and label validation, a family lookup under its lock), which cost
    /// more than the rest of a request's bookkeeping. Bounded like the registry itself: every label
    /// takes values from a bounded set.
    private let counters = HandleCache<CoreMetrics.Counter>()
    private let timers = HandleCache<CoreMetrics.Timer>()
    private let connectionSource = Mutex<(@Sendable () -> [(plane: String, open: Int)])?>(nil)
    private let storeSource = Mutex<(@Sendable () -> StoreHealth)?>(nil)
    private let droppedSource = Mutex<(@Sendable () -> [(plane: String, reason: String, count: Int)])?>(nil)
    /// What ``droppedSource`` said at the last scrape (its counts only grow while listeners live;
    /// a listener closed and reopened restarts its count, which the counter never goes back for).
    private let droppedSeen = Mutex<[String: Int]>([:])

    struct ServedCredentials {
        var lastUpdated: String
        var code: String
    }

    /// Latency buckets, in seconds: the data plane answers in well under a millisecond unless a
    /// fault adds latency.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// One line of help per metric family (the swift-metrics API has no help text; it is added to
    /// the exposition).
    public static let help: [String: String] = [
        "imds_store_up": "1 while the instance store takes writes; 0 while it is unreachable (the data plane serves the last snapshot, writes fail with 503).",
        "imds_store_unreachable_since_seconds": "Unix time since which the instance store is unreachable; 0 while it is reachable.",
        "imds_store_applied_revision": "The store revision of the snapshot served (every batch up to it applied once, in order).",
        "imds_metadata_no_token_total": "IMDSv1 requests answered successfully (CloudWatch MetadataNoToken).",
        "imds_metadata_no_token_rejected_total": "IMDSv1 requests refused with 401 because HttpTokens is required (CloudWatch MetadataNoTokenRejected).",
        "imds_requests_total": "Data-plane requests by instance, version (v1, v2, none), status and category.",
        "imds_request_duration_seconds": "Time from the request head to the response being handed to the socket.",
        "imds_tokens_issued_total": "IMDSv2 session tokens issued (successful PUT /latest/api/token).",
        "imds_tokens_rejected_total": "Requests refused for their token, by reason (missing, malformed, bad_signature, expired).",
        "imds_active_connections": "Connections open right now, by plane (data, control).",
        "imds_connections_dropped_total": "Connections closed without being served, by plane and reason (idle-shed, refused, out-of-descriptors).",
        "imds_credential_rotations_total": "Role credentials rotated (the served LastUpdated changed).",
        "imds_sts_failures_total": "Failed STS calls for role credentials (AssumeRole), by error code.",
        "imds_sts_requests_total": "STS calls for role credentials (AssumeRole), by result.",
        "imds_credential_errors_total": "Served role credentials turning into an error document (what clients see when EC2 cannot get credentials), by code.",
        "imds_unknown_caller_requests_total": "Data-plane requests from a source address that is no instance's (answered 404).",
        "imds_caller_attributions_total": "Data-plane connections by attribution result (process, unattributed, remote, skipped).",
        "imds_caller_scans_total": "Data-plane connections whose caller was not in the process index and needed a /proc scan.",
    ]

    /// - Parameter registry: the registry to record into (a fresh one by default).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["imds_request_duration_seconds"] = Self.latencyBuckets
        self.factory = factory
    }

    /// Supplies the open-connection counts, read each time the metrics are rendered.
    /// Where `imds_store_up`, `imds_store_unreachable_since_seconds` and
    /// `imds_store_applied_revision` are read at each scrape (the store's ``InstanceStore/health``).
    public func setStoreSource(_ source: @escaping @Sendable () -> StoreHealth) {
        storeSource.withLock { $0 = source }
    }

    public func setConnectionSource(_ source: @escaping @Sendable () -> [(plane: String, open: Int)]) {
        connectionSource.withLock { $0 = source }
    }

    /// Where `imds_connections_dropped_total` comes from at scrape time (the listeners' counts).
    public func setDroppedConnectionSource(_ source: @escaping @Sendable () -> [(plane: String, reason: String, count: Int)]) {
        droppedSource.withLock { $0 = source }
    }

    // MARK: - Recording

    /// Records one data-plane request from the engine's outcome.
    public func record(request: IMDSRequest, response: IMDSResponse, seconds: Double) {
        let o = response.outcome
        // Requests with the same outcome move the same handles: found with one hash and one lock,
        // instead of a label array, a handle lookup and a lock per metric.
        let signature = OutcomeSignature(o, status: response.status, action: response.action)
        let bundle = bundles.withLock { $0[signature] } ?? makeBundle(signature, o, response)
        for c in bundle.counters { c.increment() }
        bundle.duration.recordNanoseconds(Int64(max(0, min(seconds, 1e9)) * 1e9))
        if response.status == 200, let role = Self.credentialsRole(request.target) {
            observeCredentials(instanceID: o.instanceID ?? "none", role: role, document: response.body)
        }
    }

    /// What decides which counters a request moves.
    struct OutcomeSignature: Hashable {
        var instanceID: String?
        var unknownCaller: Bool
        var version: RequestOutcome.Version?
        var status: Int
        var action: TransportAction
        var category: String
        var tokenIssued: Bool
        var tokenRejection: String?
        init(_ o: RequestOutcome, status: Int, action: TransportAction) {
            instanceID = o.instanceID
            unknownCaller = o.unknownCaller
            version = o.version
            self.status = status
            self.action = action
            category = o.category
            tokenIssued = o.tokenIssued
            tokenRejection = o.tokenRejection
        }
    }

    /// The handles one outcome moves.
    struct Bundle: Sendable {
        var counters: [CoreMetrics.Counter]
        var duration: CoreMetrics.Timer
    }

    /// Bundles by outcome: bounded (instance ids come from the store, the rest from small sets);
    /// past ``maxBundles`` outcomes the handles are looked up per request, as before.
    private let bundles = Mutex<[OutcomeSignature: Bundle]>([:])
    static let maxBundles = 4096

    private func makeBundle(_ signature: OutcomeSignature, _ o: RequestOutcome, _ response: IMDSResponse) -> Bundle {
        var counters: [CoreMetrics.Counter] = []
        func counter(_ name: String, _ dimensions: [(String, String)]) {
            counters.append(self.counters.handle(name, dimensions) { CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory) })
        }
        let instance = o.unknownCaller ? "unknown" : instances.value(o.instanceID ?? "none")
        if o.unknownCaller { counter("imds_unknown_caller_requests_total", []) }
        let version = o.version?.rawValue ?? "none"
        let status = Self.statusLabel(response)
        let category = Self.categoryLabel(o.category)
        counter("imds_requests_total", [("instance_id", instance), ("version", version), ("status", status), ("category", category)])
        if o.version == .v1 {
            if response.status == 401 && o.tokenRejection == "missing" {
                counter("imds_metadata_no_token_rejected_total", [("instance_id", instance)])
            } else if (200..<400).contains(response.status) && response.action == .respondAndClose {
                counter("imds_metadata_no_token_total", [("instance_id", instance)])
            }
        }
        if o.tokenIssued { counter("imds_tokens_issued_total", [("instance_id", instance)]) }
        if let why = o.tokenRejection {
            counter("imds_tokens_rejected_total", [("instance_id", instance), ("reason", Self.rejectionLabel(why))])
        }
        let dimensions = [("version", version), ("category", category)]
        let duration = timers.handle("imds_request_duration_seconds", dimensions) {
            CoreMetrics.Timer(label: "imds_request_duration_seconds", dimensions: dimensions, factory: factory)
        }
        let bundle = Bundle(counters: counters, duration: duration)
        bundles.withLock { if $0.count < Self.maxBundles { $0[signature] = bundle } }
        return bundle
    }

    /// Counts a credential rotation (the hook for the credentials code; ``record(request:response:seconds:)``
    /// also detects rotations from the documents it sees served).
    public func recordCredentialRotation(instanceID: String) {
        counter("imds_credential_rotations_total", [("instance_id", instances.value(instanceID))])
    }

    /// Counts a failure to obtain credentials from STS, by error code (the hook for the credentials code).
    public func recordSTSFailure(instanceID: String, code: String) {
        counter("imds_sts_failures_total", [("instance_id", instances.value(instanceID)), ("code", stsCodes.value(Self.sanitize(code)))])
    }

    /// The hook for an STS client (`AssumeRoleProvider`'s observer): counts the call by result and,
    /// for a failure, ``recordSTSFailure(instanceID:code:)`` with the error code read from `message`
    /// (`… failed: 403 AccessDenied: …` gives `AccessDenied`; an unreachable endpoint `Unreachable`).
    public func recordSTSCall(instanceID: String, success: Bool, message: String) {
        counter("imds_sts_requests_total", [("result", success ? "success" : "failure")])
        guard !success else { return }
        recordSTSFailure(instanceID: instanceID, code: Self.stsErrorCode(message))
    }

    static func stsErrorCode(_ message: String) -> String {
        guard let r = message.range(of: "failed: ") else { return "Other" }
        let detail = message[r.upperBound...]
        if detail.hasPrefix("cannot reach") { return "Unreachable" }
        let words = detail.split(separator: " ", maxSplits: 2)
        if words.count >= 2, Int(words[0]) != nil {
            let code = words[1].hasSuffix(":") ? words[1].dropLast() : words[1]
            if !code.isEmpty { return String(code) }
        }
        return "Other"
    }

    /// Counts how a data-plane connection was attributed (`process`, `unattributed`, `remote`, `skipped`).
    public func recordAttribution(_ result: String) {
        // One per on-host connection: the handle is kept for the last result seen on this path
        // instead of a label array and a handle lookup each time.
        if let c = lastAttribution.withLock({ $0?.result == result ? $0?.counter : nil }) {
            c.increment()
            return
        }
        let dimensions = [("result", result)]
        let c = counters.handle("imds_caller_attributions_total", dimensions) {
            CoreMetrics.Counter(label: "imds_caller_attributions_total", dimensions: dimensions, factory: factory)
        }
        lastAttribution.withLock { $0 = (result, c) }
        c.increment()
    }

    private let lastAttribution = Mutex<(result: String, counter: CoreMetrics.Counter)?>(nil)

    /// Counts a connection whose caller needed a `/proc` scan (not found through the process index).
    public func recordAttributionScan() {
        counter("imds_caller_scans_total", [])
    }

    /// Detects rotations and credential errors from a served credentials document: a new `LastUpdated`
    /// with `Code: Success` is a rotation; a switch to another `Code` is a credential error. Only
    /// those two fields are read; nothing of the document is kept.
    func observeCredentials(instanceID: String, role: String, document: [UInt8]) {
        guard let code = Self.jsonStringField("Code", in: document), let updated = Self.jsonStringField("LastUpdated", in: document)
        else { return }
        let key = instanceID + "\u{0}" + role
        let (rotated, failed) = credentialState.withLock { state -> (Bool, Bool) in
            let previous = state[key]
            if previous == nil && state.count >= 256 { state.removeAll() }
            state[key] = ServedCredentials(lastUpdated: updated, code: code)
            guard let previous else { return (false, code != "Success") }
            let rotated = code == "Success" && previous.code == "Success" && previous.lastUpdated != updated
            let failed = code != "Success" && previous.code == "Success"
            return (rotated, failed)
        }
        if rotated { recordCredentialRotation(instanceID: instanceID) }
        if failed {
            counter("imds_credential_errors_total", [("instance_id", instances.value(instanceID)), ("code", stsCodes.value(Self.sanitize(code)))])
        }
    }

    private func counter(_ name: String, _ dimensions: [(String, String)]) {
        counters.handle(name, dimensions) { CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory) }.increment()
    }

    // MARK: - Rendering

    /// The Prometheus text exposition (version 0.0.4), with `# HELP` lines.
    public func exposition() -> String {
        if let source = connectionSource.withLock({ $0 }) {
            for (plane, open) in source() {
                CoreMetrics.Gauge(label: "imds_active_connections", dimensions: [("plane", plane)], factory: factory).record(open)
            }
        }
        if let source = droppedSource.withLock({ $0 }) {
            for (plane, reason, count) in source() {
                let key = plane + " " + reason
                let delta = droppedSeen.withLock { seen -> Int in
                    defer { seen[key] = count }
                    return max(0, count - (seen[key] ?? 0))
                }
                // Created at the first scrape even at zero, so that the series exists for alerts.
                let c = CoreMetrics.Counter(label: "imds_connections_dropped_total", dimensions: [("plane", plane), ("reason", reason)], factory: factory)
                if delta > 0 { c.increment(by: delta) }
            }
        }
        if let source = storeSource.withLock({ $0 }) {
            let h = source()
            let kind = [("kind", h.kind)]
            CoreMetrics.Gauge(label: "imds_store_up", dimensions: kind, factory: factory).record(h.reachable ? 1 : 0)
            CoreMetrics.Gauge(label: "imds_store_unreachable_since_seconds", dimensions: kind, factory: factory)
                .record(h.unreachableSince?.timeIntervalSince1970.rounded(.down) ?? 0)
            CoreMetrics.Gauge(label: "imds_store_applied_revision", dimensions: kind, factory: factory).record(Double(h.appliedRevision))
        }
        let raw = registry.emitToString()
        var out = ""
        out.reserveCapacity(raw.utf8.count + 2048)
        for line in raw.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).split(separator: " ").first.map(String.init) ?? ""
                if let help = Self.help[name] { out += "# HELP \(name) \(help)\n" }
            }
            out += line
            out += "\n"
        }
        while out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }

    // MARK: - Bounded labels

    static let knownStatuses: Set<Int> = [200, 301, 304, 400, 401, 403, 404, 405, 413, 429, 431, 500, 503]

    static func statusLabel(_ response: IMDSResponse) -> String {
        switch response.action {
        case .hang: return "hang"
        case .reset: return "reset"
        case .respondAndClose: return knownStatuses.contains(response.status) ? String(response.status) : "other"
        }
    }

    static let knownCategories: Set<String> = ["unknown-caller", "token", "meta-data", "user-data", "dynamic", "versions", "version-root", "other"]

    static func categoryLabel(_ category: String) -> String { knownCategories.contains(category) ? category : "other" }

    static func rejectionLabel(_ reason: String) -> String {
        ["missing", "malformed", "bad_signature", "expired"].contains(reason) ? reason : "other"
    }

    /// The role name when `target` is a role's credentials document
    /// (`/<version>/meta-data/iam/security-credentials/<role>`).
    static func credentialsRole(_ target: String) -> String? {
        // Most requests are not for credentials: look for the one component they all have first.
        guard firstIndex(of: securityCredentials, in: target.utf8) != nil else { return nil }
        let path = target.split(separator: "?", maxSplits: 1).first ?? ""
        let parts = path.split(separator: "/")
        guard parts.count == 5, parts[1] == "meta-data", parts[2] == "iam", parts[3] == "security-credentials" else { return nil }
        return String(parts[4])
    }

    /// Keeps a label value printable and short.
    static func sanitize(_ s: String) -> String {
        let kept = s.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || ".-_".unicodeScalars.contains($0)) }
        return String(String.UnicodeScalarView(kept.prefix(64)))
    }

    /// The string value of a top-level `"name" : "value"` field in a small JSON document, without
    /// decoding the rest (the credentials document also holds secrets, which are never copied).
    static func jsonStringField(_ name: String, in document: [UInt8]) -> String? {
        let key = Array("\"\(name)\"".utf8)
        guard document.count >= key.count, let start = firstIndex(of: key, in: document) else { return nil }
        var i = start + key.count
        while i < document.count, document[i] == 32 || document[i] == 9 || document[i] == 10 || document[i] == 13 { i += 1 }
        guard i < document.count, document[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        while i < document.count, document[i] == 32 || document[i] == 9 { i += 1 }
        guard i < document.count, document[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        var end = i
        while end < document.count, document[end] != UInt8(ascii: "\""), end - i < 128 { end += 1 }
        guard end < document.count, document[end] == UInt8(ascii: "\"") else { return nil }
        return String(decoding: document[i..<end], as: UTF8.self)
    }

    static let securityCredentials = Array("/security-credentials/".utf8)

    private static func firstIndex(of needle: [UInt8], in haystack: String.UTF8View) -> Int? {
        haystack.withContiguousStorageIfAvailable { ByteSearch.firstIndex(of: needle, in: $0) }
            ?? ByteSearch.firstIndex(of: needle, in: Array(haystack))
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        ByteSearch.firstIndex(of: needle, in: haystack)
    }
}

/// Metric handles by name and label values, made once. Label names are fixed per metric, so the
/// values alone tell two series of one metric apart.
final class HandleCache<Handle: Sendable>: Sendable {
    struct Key: Hashable {
        var name: String
        var values: [String]
    }

    private let handles = Mutex<[Key: Handle]>([:])

    func handle(_ name: String, _ dimensions: [(String, String)], make: () -> Handle) -> Handle {
        let key = Key(name: name, values: dimensions.map(\.1))
        if let h = handles.withLock({ $0[key] }) { return h }
        let made = make()
        return handles.withLock { d in
            if let h = d[key] { return h }
            d[key] = made
            return made
        }
    }
}

/// A label whose values are capped: the first `capacity` distinct values are kept, later ones
/// become `other`.
final class BoundedLabel: Sendable {
    private let seen = Mutex<Set<String>>([])
    let capacity: Int
    init(capacity: Int) { self.capacity = capacity }

    func value(_ v: String) -> String {
        seen.withLock { s in
            if s.contains(v) { return v }
            guard s.count < capacity else { return "other" }
            s.insert(v)
            return v
        }
    }
}
