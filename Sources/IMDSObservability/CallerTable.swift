import Foundation
import Synchronization

/// What one caller did as one instance: a process (grouped by executable, command line, user and
/// container, so a script that runs `curl` every minute is one caller), or a source address when no
/// process is known; in a fleet, per instance it was answered as (``instanceIDs`` holds that one).
public struct CallerSummary: Codable, Sendable, Equatable {
    /// The process, when attribution found one (the most recent pid's details).
    public var process: CallerProcess?
    /// `process`, `unattributed`, `remote` or `skipped`.
    public var attribution: String
    /// Source IP addresses seen (at most 8).
    public var addresses: [String]
    /// Recent pids (at most 8, newest first).
    public var pids: [Int32]
    /// IMDSv1 requests answered (they break under `HttpTokens=required`).
    public var v1: Int
    /// IMDSv1 requests refused because tokens are required (they are broken already).
    public var v1Rejected: Int
    /// IMDSv2 requests, token PUTs included.
    public var v2: Int
    /// Other requests (endpoint disabled, malformed).
    public var other: Int
    /// Paths requested with their counts (at most ``CallerTable/maxPaths``; then ``pathsTruncated``).
    public var paths: [PathCount]
    public var pathsTruncated: Bool
    public var firstSeen: String
    public var lastSeen: String
    public var instanceIDs: [String]

    public struct PathCount: Codable, Sendable, Equatable {
        public var path: String
        public var v1: Int
        public var v2: Int
        public init(path: String, v1: Int, v2: Int) {
            self.path = path
            self.v1 = v1
            self.v2 = v2
        }
    }

    enum CodingKeys: String, CodingKey {
        case process, attribution, addresses, pids, v1, v1Rejected = "v1-rejected", v2, other, paths
        case pathsTruncated = "paths-truncated", firstSeen = "first-seen", lastSeen = "last-seen", instanceIDs = "instance-ids"
    }

    /// Calls that would fail (or already fail) with `HttpTokens=required`.
    public var breaksUnderRequired: Bool { v1 + v1Rejected > 0 }

    /// A one-line name: `pid 4242 curl -s http://…` or `10.0.0.7 (not attributed)`.
    public var displayName: String {
        if let p = process {
            let cmd = p.commandLine.isEmpty ? (p.executable ?? "?") : p.commandLine.joined(separator: " ")
            return "pid \(p.pid) \(cmd.count > 120 ? String(cmd.prefix(117)) + "..." : cmd)"
        }
        let addr = addresses.joined(separator: ", ")
        switch attribution {
        case "remote": return "\(addr) (remote host: no process attribution)"
        default: return "\(addr.isEmpty ? "unknown address" : addr) (process not attributed)"
        }
    }
}

/// Per-caller aggregates, in memory and bounded (``capacity`` callers; the least recently seen is
/// evicted first). Fed live from the data plane, or from an access log by `imds audit`.
public final class CallerTable: Sendable {
    public static let maxPaths = 32
    public let capacity: Int
    private let state = Mutex<State>(State())

    struct State {
        var callers: [Key: CallerSummary] = [:]
        var evicted = 0
        var totals = Totals()
        /// The last caller recorded and where it is: a caller's requests come in runs, and the
        /// key's equality (its arrays are the same storage) is cheaper than its hash. Cleared when
        /// an entry is added or removed (that moves the others).
        var last: (key: Key, index: Dictionary<Key, CallerSummary>.Index)?
    }

    /// Request counts over every caller, evicted ones included.
    public struct Totals: Codable, Sendable, Equatable {
        public var v1 = 0
        public var v1Rejected = 0
        public var v2 = 0
        public var other = 0
        enum CodingKeys: String, CodingKey { case v1, v1Rejected = "v1-rejected", v2, other }
        public init() {}
    }

    public init(capacity: Int = 1000) { self.capacity = max(1, capacity) }

    private static func add(_ e: AccessLogEntry, _ kind: Kind, ip: String?, to c: inout CallerSummary) {
        if let p = e.caller {
            if c.process != p { c.process = p }
            if c.pids.first != p.pid {
                c.pids.removeAll { $0 == p.pid }
                c.pids.insert(p.pid, at: 0)
                if c.pids.count > 8 { c.pids.removeLast() }
            }
        }
        if let ip, c.addresses.count < 8, !c.addresses.contains(ip) { c.addresses.append(ip) }
        if let i = e.instanceID, c.instanceIDs.count < 8, !c.instanceIDs.contains(i) { c.instanceIDs.append(i) }
        if e.time < c.firstSeen { c.firstSeen = e.time }
        if e.time > c.lastSeen { c.lastSeen = e.time }
        switch kind {
        case .v1: c.v1 += 1
        case .v1Rejected: c.v1Rejected += 1
        case .v2: c.v2 += 1
        case .other: c.other += 1
        }
        let isV1 = kind == .v1 || kind == .v1Rejected
        if let i = c.paths.firstIndex(where: { $0.path == e.path }) {
            if isV1 { c.paths[i].v1 += 1 } else if kind == .v2 { c.paths[i].v2 += 1 }
        } else if c.paths.count < maxPaths {
            c.paths.append(.init(path: e.path, v1: isV1 ? 1 : 0, v2: kind == .v2 ? 1 : 0))
        } else {
            c.pathsTruncated = true
        }
    }

    /// Adds one request (an access-log entry with its attribution).
    public func record(_ e: AccessLogEntry) {
        let kind = Self.classify(e)
        let ip = e.clientIP
        let key: Key =
            if let p = e.caller {
                .process(container: p.containerID, user: p.user, executable: p.executable, commandLine: p.commandLine,
                         instance: e.instanceID)
            } else {
                .address(attribution: e.attribution, ip: ip, instance: e.instanceID)
            }
        state.withLock { s in
            switch kind {
            case .v1: s.totals.v1 += 1
            case .v1Rejected: s.totals.v1Rejected += 1
            case .v2: s.totals.v2 += 1
            case .other: s.totals.other += 1
            }
            if let last = s.last, last.key == key {
                Self.add(e, kind, ip: ip, to: &s.callers.values[last.index])
                return
            }
            if s.callers[key] == nil {
                s.last = nil
                if s.callers.count >= capacity, let oldest = s.callers.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key {
                    s.callers.removeValue(forKey: oldest)
                    s.evicted += 1
                }
                s.callers[key] = CallerSummary(
                    process: e.caller, attribution: e.attribution ?? "skipped", addresses: [], pids: [], v1: 0, v1Rejected: 0,
                    v2: 0, other: 0, paths: [], pathsTruncated: false, firstSeen: e.time, lastSeen: e.time, instanceIDs: [])
            }
            // Updated in place: a copy out of the dictionary and back would copy every array in it.
            guard let index = s.callers.index(forKey: key) else { return }
            Self.add(e, kind, ip: ip, to: &s.callers.values[index])
            s.last = (key, index)
        }
    }

    enum Kind { case v1, v1Rejected, v2, other }

    /// What makes two requests one caller's (hashed as it is, never joined into a string per request).
    /// One caller **as one instance**: in a fleet, a process (or address) that is answered as two
    /// instances is two entries, so each instance's callers and verdict are its own.
    enum Key: Hashable {
        case process(container: String?, user: String?, executable: String?, commandLine: [String], instance: String?)
        case address(attribution: String?, ip: String?, instance: String?)
    }

    static func classify(_ e: AccessLogEntry) -> Kind {
        switch e.version {
        case "v1": return e.status == 401 && e.tokenRejection == "missing" ? .v1Rejected : .v1
        case "v2": return .v2
        default: return e.category == "token" && e.method == "PUT" ? .v2 : .other
        }
    }

    /// Every caller: those with IMDSv1 calls first, then by most recently seen.
    public func snapshot() -> [CallerSummary] {
        state.withLock { Array($0.callers.values) }.sorted {
            if $0.breaksUnderRequired != $1.breaksUnderRequired { return $0.breaksUnderRequired }
            return $0.lastSeen > $1.lastSeen
        }
    }

    public var totals: Totals { state.withLock { $0.totals } }
    /// Callers dropped to stay within ``capacity``.
    public var evicted: Int { state.withLock { $0.evicted } }

    /// Forgets everything.
    public func reset() { state.withLock { $0 = State() } }

    /// The document `GET /admin/v1/callers` returns (and `imds audit` reads).
    public func document() -> CallersDocument {
        CallersDocument(callers: snapshot(), totals: totals, evicted: evicted, capacity: capacity)
    }
}

/// `GET /admin/v1/callers`.
public struct CallersDocument: Codable, Sendable {
    public var callers: [CallerSummary]
    public var totals: CallerTable.Totals
    public var evicted: Int
    public var capacity: Int
    public init(callers: [CallerSummary], totals: CallerTable.Totals, evicted: Int, capacity: Int) {
        self.callers = callers
        self.totals = totals
        self.evicted = evicted
        self.capacity = capacity
    }
}

/// Request counts per second over the last two minutes, for the dashboard's rates.
public final class TrafficWindow: Sendable {
    public static let seconds = 120
    private let state = Mutex<(second: Int, buckets: [Bucket])>((0, Array(repeating: Bucket(), count: TrafficWindow.seconds)))

    public struct Bucket: Codable, Sendable, Equatable {
        public var v1 = 0
        public var v1Rejected = 0
        public var v2 = 0
        enum CodingKeys: String, CodingKey { case v1, v1Rejected = "v1-rejected", v2 }
        public init() {}
    }

    public init() {}

    func record(_ kind: CallerTable.Kind, at date: Date) {
        let second = Int(date.timeIntervalSince1970)
        state.withLock { s in
            advance(&s, to: second)
            let i = second % Self.seconds
            switch kind {
            case .v1: s.buckets[i].v1 += 1
            case .v1Rejected: s.buckets[i].v1Rejected += 1
            case .v2: s.buckets[i].v2 += 1
            case .other: break
            }
        }
    }

    private func advance(_ s: inout (second: Int, buckets: [Bucket]), to second: Int) {
        guard second > s.second else { return }
        if second - s.second >= Self.seconds {
            s.buckets = Array(repeating: Bucket(), count: Self.seconds)
        } else {
            for t in (s.second + 1)...second { s.buckets[t % Self.seconds] = Bucket() }
        }
        s.second = second
    }

    /// The last `TrafficWindow.seconds` seconds, oldest first (the current, partial second last).
    public func series(now: Date) -> [Bucket] {
        let second = Int(now.timeIntervalSince1970)
        return state.withLock { s in
            advance(&s, to: second)
            return (0..<Self.seconds).map { s.buckets[(second - Self.seconds + 1 + $0 + Self.seconds * 2) % Self.seconds] }
        }
    }
}
