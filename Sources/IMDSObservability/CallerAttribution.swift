import Dispatch
import Foundation
import IMDSCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process behind a data-plane connection, read from `/proc` when the connection was accepted.
public struct CallerProcess: Sendable, Hashable, Codable {
    public var pid: Int32
    /// `/proc/PID/exe` (the executable's path), when readable.
    public var executable: String?
    /// `/proc/PID/cmdline`, with tokens and secrets replaced by `[redacted]` (see ``Redaction``).
    public var commandLine: [String]
    public var user: String?
    public var uid: UInt32?
    /// The cgroup path (the unified `0::` line, or the first controller's path).
    public var cgroup: String?
    /// The container id found in the cgroup path (docker, containerd, CRI-O, podman), if any.
    public var containerID: String?
    /// The working directory, when readable (used for the `imds scan` hint).
    public var workingDirectory: String?

    enum CodingKeys: String, CodingKey {
        case pid, executable = "exe", commandLine = "cmdline", user, uid, cgroup, containerID = "container-id"
        case workingDirectory = "cwd"
    }

    public init(
        pid: Int32, executable: String? = nil, commandLine: [String] = [], user: String? = nil, uid: UInt32? = nil,
        cgroup: String? = nil, containerID: String? = nil, workingDirectory: String? = nil
    ) {
        self.pid = pid
        self.executable = executable
        self.commandLine = commandLine
        self.user = user
        self.uid = uid
        self.cgroup = cgroup
        self.containerID = containerID
        self.workingDirectory = workingDirectory
    }
}

/// What attribution found for one connection.
public enum Attribution: Sendable, Equatable {
    /// The process that owns the client socket.
    case process(CallerProcess)
    /// The peer is on this host but its socket or process was not found (it exited, the scan ran
    /// out of time, or `/proc` is not readable); the reason says which.
    case unattributed(String)
    /// The peer is not on this host (attribution only sees this host's sockets).
    case remote
    /// Attribution was not attempted (disabled, or too many pending lookups).
    case skipped(String)

    /// The metric label for this result.
    public var label: String {
        switch self {
        case .process: "process"
        case .unattributed: "unattributed"
        case .remote: "remote"
        case .skipped: "skipped"
        }
    }

    public var process: CallerProcess? {
        if case .process(let p) = self { return p }
        return nil
    }
}

/// Maps a TCP connection to the process on this host that owns the other end, via `/proc`:
/// the client socket's inode comes from `/proc/net/tcp` and `/proc/net/tcp6` (matching the 4-tuple),
/// and the process from a scan of `/proc/*/fd` for `socket:[inode]`.
///
/// Lookups run on a private queue, never on the caller's thread; ``begin(local:remote:)`` returns at
/// once. Processes seen recently are checked first, then the rest newest first (short-lived
/// callers have the highest pids), and a scan stops after ``budget``. Process details are cached by
/// (pid, start time) in a bounded LRU, and at most ``maxPending`` lookups wait at a time (more are
/// skipped), so attribution never holds up the data plane or grows without bound.
public final class CallerAttributor: Sendable {
    let procRoot: String
    /// Longest time one lookup may spend scanning `/proc/*/fd`.
    public let budget: Duration
    /// Lookups allowed to wait at once.
    public let maxPending: Int
    private let queue = DispatchQueue(label: "imds.attribution")
    private let pending = Atomic<Int>(0)
    private let cache: Mutex<LRU<ProcessKey, CallerProcess>>
    private let hot = Mutex<[Int32]>([])
    private let localAddresses = Mutex<(at: ContinuousClock.Instant, set: Set<[UInt8]>)?>(nil)

    struct ProcessKey: Hashable {
        var pid: Int32
        var start: String
    }

    /// - Parameters:
    ///   - procRoot: `/proc` (tests may point elsewhere).
    ///   - cacheSize: processes whose details are kept.
    public init(procRoot: String = "/proc", cacheSize: Int = 256, budget: Duration = .milliseconds(100), maxPending: Int = 256) {
        self.procRoot = procRoot
        self.cache = Mutex(LRU(capacity: cacheSize))
        self.budget = budget
        self.maxPending = maxPending
    }

    /// Whether attribution can work here (`/proc/net/tcp` is readable).
    public var isAvailable: Bool { FileManager.default.isReadableFile(atPath: procRoot + "/net/tcp") }

    /// Starts attributing a connection; the returned value resolves on a background queue.
    /// - Parameters:
    ///   - local: this server's end of the connection.
    ///   - remote: the client's end.
    public func begin(local: PeerAddress, remote: PeerAddress) -> PendingAttribution {
        let result = PendingAttribution()
        // Cheap checks now (no file reads), so that remote peers resolve at once and are never held.
        guard let remoteIP = IPBytes.parse(remote.ip), let localIP = IPBytes.parse(local.ip) else {
            result.resolve(.unattributed("unparsable address"))
            return result
        }
        guard isOnThisHost(remoteIP, localIP: localIP) else {
            result.resolve(.remote)
            return result
        }
        guard pending.wrappingAdd(1, ordering: .relaxed).newValue <= maxPending else {
            pending.wrappingSubtract(1, ordering: .relaxed)
            result.resolve(.skipped("too many pending lookups"))
            return result
        }
        queue.async {
            let a = self.lookup(local: local, remote: remote)
            self.pending.wrappingSubtract(1, ordering: .relaxed)
            result.resolve(a)
        }
        return result
    }

    /// Attributes a connection now, on the calling thread (``begin(local:remote:)`` calls it on its queue).
    public func lookup(local: PeerAddress, remote: PeerAddress) -> Attribution {
        guard let remoteIP = IPBytes.parse(remote.ip), let localIP = IPBytes.parse(local.ip) else {
            return .unattributed("unparsable address")
        }
        guard isOnThisHost(remoteIP, localIP: localIP) else { return .remote }
        guard let inode = socketInode(client: (remoteIP, remote.port), server: (localIP, local.port)) else {
            return .unattributed("socket not found (the client closed it already)")
        }
        guard let pid = findProcess(inode: inode) else {
            return .unattributed("no process holds the socket (it exited, or the scan ran out of time)")
        }
        guard let process = details(pid: pid) else { return .unattributed("process \(pid) exited") }
        hot.withLock { h in
            h.removeAll { $0 == pid }
            h.insert(pid, at: 0)
            if h.count > 32 { h.removeLast() }
        }
        return .process(process)
    }

    // MARK: - Is the peer local?

    func isOnThisHost(_ ip: [UInt8], localIP: [UInt8]) -> Bool {
        if IPBytes.isLoopback(ip) || ip == localIP { return true }
        let now = ContinuousClock.now
        let set = localAddresses.withLock { cached -> Set<[UInt8]> in
            if let c = cached, now - c.at < .seconds(30) { return c.set }
            let fresh = Self.interfaceAddresses()
            cached = (now, fresh)
            return fresh
        }
        return set.contains(ip)
    }

    static func interfaceAddresses() -> Set<[UInt8]> {
        var result: Set<[UInt8]> = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var p = list
        while let entry = p {
            if let sa = entry.pointee.ifa_addr {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                let len = sa.pointee.sa_family == UInt16(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
                if sa.pointee.sa_family == UInt16(AF_INET) || sa.pointee.sa_family == UInt16(AF_INET6),
                    getnameinfo(sa, socklen_t(len), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0
                {
                    let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if let b = IPBytes.parse(text.split(separator: "%").first.map(String.init) ?? text) { result.insert(b) }
                }
            }
            p = entry.pointee.ifa_next
        }
        return result
    }

    // MARK: - Socket inode

    /// The inode of the socket whose local end is `client` and remote end is `server`.
    func socketInode(client: ([UInt8], Int), server: ([UInt8], Int)) -> UInt64? {
        #if canImport(Glibc)
        // One netlink query for the exact 4-tuple (O(1)); /proc/net/tcp only when netlink is refused
        // (or a test points procRoot elsewhere).
        if procRoot == "/proc", let found = SockDiag.lookup(client: client, server: server) { return found.inode }
        #endif
        for file in ["net/tcp", "net/tcp6"] {
            guard let text = Self.read(procRoot + "/" + file, limit: 16 << 20) else { continue }
            for entry in ProcNetTCP.parse(text)
            where entry.localPort == client.1 && entry.remotePort == server.1 && entry.local == client.0 && entry.remote == server.0
                && entry.inode != 0
            {
                return entry.inode
            }
        }
        return nil
    }

    // MARK: - Process scan

    func findProcess(inode: UInt64) -> Int32? {
        let target = "socket:[\(inode)]"
        let deadline = ContinuousClock.now + budget
        var checked = Set<Int32>()
        for pid in hot.withLock({ $0 }) {
            checked.insert(pid)
            if holds(pid: pid, target: target) { return owner(pid, target: target) }
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return nil }
        let pids = names.compactMap { Int32($0) }.sorted(by: >)
        for pid in pids where !checked.contains(pid) {
            if ContinuousClock.now > deadline { return nil }
            if holds(pid: pid, target: target) { return owner(pid, target: target) }
        }
        return nil
    }

    /// A forked child shares its parent's sockets (until it closes them or execs with close-on-exec),
    /// and newer pids are scanned first: when the parent holds the socket too, the connection is the
    /// parent's.
    func owner(_ pid: Int32, target: String) -> Int32 {
        var current = pid
        for _ in 0..<8 {
            guard let stat = Self.read("\(procRoot)/\(current)/stat", limit: 4096), let parent = Self.parentPID(stat: stat),
                parent > 1, holds(pid: parent, target: target)
            else { break }
            current = parent
        }
        return current
    }

    /// Field 4 of `/proc/PID/stat` (the parent's pid), after the `(comm)` field.
    static func parentPID(stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    private func holds(pid: Int32, target: String) -> Bool {
        let dir = "\(procRoot)/\(pid)/fd"
        guard let d = opendir(dir) else { return false }
        defer { closedir(d) }
        var buffer = [CChar](repeating: 0, count: 64)
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.first == "." { continue }
            let n = readlink(dir + "/" + name, &buffer, buffer.count - 1)
            guard n > 0 else { continue }
            if n == target.utf8.count, String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == target {
                return true
            }
        }
        return false
    }

    // MARK: - Process details

    func details(pid: Int32) -> CallerProcess? {
        let base = "\(procRoot)/\(pid)"
        guard let stat = Self.read(base + "/stat", limit: 4096) else { return nil }
        let key = ProcessKey(pid: pid, start: Self.startTime(stat: stat) ?? "")
        if let cached = cache.withLock({ $0.get(key) }) { return cached }
        let cmdline = Self.readBytes(base + "/cmdline", limit: 64 << 10).map { bytes in
            bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        } ?? []
        let args = cmdline.last == "" ? Array(cmdline.dropLast()) : cmdline
        var p = CallerProcess(pid: pid, commandLine: Redaction.redact(arguments: args.map { String($0.prefix(4096)) }))
        p.executable = Self.link(base + "/exe").map { $0.hasSuffix(" (deleted)") ? String($0.dropLast(10)) : $0 }
        p.workingDirectory = Self.link(base + "/cwd")
        if let status = Self.read(base + "/status", limit: 16 << 10),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            let uid = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({ UInt32($0) })
        {
            p.uid = uid
            p.user = Self.userName(uid)
        }
        if let cg = Self.read(base + "/cgroup", limit: 16 << 10) {
            p.cgroup = Self.cgroupPath(cg)
            p.containerID = Self.containerID(cgroupFile: cg)
        }
        if p.executable == nil && args.isEmpty && p.uid == nil { return nil }
        cache.withLock { $0.put(key, p) }
        return p
    }

    /// Field 22 of `/proc/PID/stat` (start time in clock ticks), after the `(comm)` field.
    static func startTime(stat: String) -> String? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// The unified hierarchy's path (`0::/…`), else the first non-root controller path.
    static func cgroupPath(_ file: String) -> String? {
        let lines = file.split(separator: "\n")
        if let unified = lines.first(where: { $0.hasPrefix("0::") }) {
            let path = String(unified.dropFirst(3))
            if path != "/" || lines.count == 1 { return path }
        }
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[2] != "/" { return String(parts[2]) }
        }
        return lines.isEmpty ? nil : "/"
    }

    /// A 64-hex-digit container id in any cgroup line (`/docker/<id>`, `docker-<id>.scope`,
    /// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, `/kubepods/…/<id>`).
    public static func containerID(cgroupFile: String) -> String? {
        for line in cgroupFile.split(separator: "\n") {
            for piece in line.split(whereSeparator: { $0 == "/" || $0 == ":" }) {
                var s = Substring(piece)
                if s.hasSuffix(".scope") { s = s.dropLast(6) }
                if let dash = s.lastIndex(of: "-") { s = s[s.index(after: dash)...] }
                if s.utf8.count == 64, s.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
                    return String(s)
                }
            }
        }
        return nil
    }

    static func userName(_ uid: UInt32) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil, let name = pwd.pw_name else { return nil }
        return String(cString: name)
    }

    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buffer, 4096)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readBytes(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    static func read(_ path: String, limit: Int) -> String? {
        readBytes(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// An attribution that may still be running: callers register what to do with the result.
public final class PendingAttribution: Sendable {
    private let state = Mutex<(result: Attribution?, waiters: [@Sendable (Attribution) -> Void])>((nil, []))

    public init() {}

    /// An already resolved attribution.
    public convenience init(_ result: Attribution) {
        self.init()
        resolve(result)
    }

    func resolve(_ a: Attribution) {
        let waiters = state.withLock { s -> [@Sendable (Attribution) -> Void] in
            guard s.result == nil else { return [] }
            s.result = a
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w(a) }
    }

    /// The result, if known.
    public var result: Attribution? { state.withLock { $0.result } }

    /// Runs `body` with the result: now if it is known, otherwise when it arrives (on the lookup queue).
    public func whenResolved(_ body: @escaping @Sendable (Attribution) -> Void) {
        let now = state.withLock { s -> Attribution? in
            if let r = s.result { return r }
            s.waiters.append(body)
            return nil
        }
        if let now { body(now) }
    }

    /// Waits for the result (tests, the CLI).
    public func value() async -> Attribution {
        await withCheckedContinuation { c in whenResolved { c.resume(returning: $0) } }
    }
}

/// IP addresses as 16 bytes (IPv4 as v4-mapped `::ffff:a.b.c.d`), so that an IPv4 peer seen by a
/// dual-stack socket matches its IPv4 entry in `/proc/net/tcp`.
enum IPBytes {
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return mapped(withUnsafeBytes(of: v4.s_addr) { Array($0) })
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: v6) { Array($0) }
        }
        return nil
    }

    static func mapped(_ v4: [UInt8]) -> [UInt8] { [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + v4 }

    static func isLoopback(_ b: [UInt8]) -> Bool {
        if b == [UInt8](repeating: 0, count: 15) + [1] { return true }
        return b.prefix(12) == ArraySlice(mapped([0, 0, 0, 0]).prefix(12)) && b[12] == 127
    }
}

/// Lines of `/proc/net/tcp` and `/proc/net/tcp6`.
enum ProcNetTCP {
    struct Entry: Equatable {
        var local: [UInt8]
        var localPort: Int
        var remote: [UInt8]
        var remotePort: Int
        var uid: UInt32
        var inode: UInt64
    }

    /// Parses the table; addresses are hex words in host byte order (little endian here), ports
    /// big-endian hex.
    static func parse(_ text: String) -> [Entry] {
        var out: [Entry] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 10, let (la, lp) = address(f[1]), let (ra, rp) = address(f[2]),
                let uid = UInt32(f[7]), let inode = UInt64(f[9])
            else { continue }
            out.append(Entry(local: la, localPort: lp, remote: ra, remotePort: rp, uid: uid, inode: inode))
        }
        return out
    }

    static func address(_ field: Substring) -> ([UInt8], Int)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        guard hex.count == 8 || hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 8)
            guard let word = UInt32(hex[i..<j], radix: 16) else { return nil }
            // The kernel prints each 32-bit word of the network-order address as a host-order integer.
            let w = word.littleEndian
            bytes += [UInt8(w & 0xff), UInt8((w >> 8) & 0xff), UInt8((w >> 16) & 0xff), UInt8(w >> 24)]
            i = j
        }
        return (bytes.count == 4 ? IPBytes.mapped(bytes) : bytes, port)
    }
}

/// A small least-recently-used map.
struct LRU<Key: Hashable, Value> {
    let capacity: Int
    private var values: [Key: Value] = [:]
    private var order: [Key] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    mutating func get(_ key: Key) -> Value? {
        guard let v = values[key] else { return nil }
        if let i = order.firstIndex(of: key) { order.remove(at: i) }
        order.append(key)
        return v
    }

    mutating func put(_ key: Key, _ value: Value) {
        if values[key] != nil, let i = order.firstIndex(of: key) { order.remove(at: i) }
        values[key] = value
        order.append(key)
        while order.count > capacity { values.removeValue(forKey: order.removeFirst()) }
    }

    var count: Int { values.count }
}
