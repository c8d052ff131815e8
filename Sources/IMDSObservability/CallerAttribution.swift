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

/// Maps a TCP connection to the process on this host that owns the other end.
///
/// The client socket's inode (and uid) come from one netlink `SOCK_DIAG` query for the exact
/// 4-tuple — never from `/proc/net/tcp`, whose length is the host's TIME_WAIT count. The process
/// comes from an index of the processes that called before, kept up to date as connections come
/// and go instead of rescanning `/proc`: each entry holds its `/proc/PID` directory open (so a
/// reused pid can never be mistaken for it) and the fd numbers of its finished connections — a
/// client that closes a connection and opens the next one gets the same fd number back, so one
/// `readlinkat` of `fd/N` usually finds the new socket.
///
/// ``begin(local:remote:)`` runs that fast path on the caller's thread when the connection is
/// accepted (a few syscalls, no file parsed). Only a caller not in the index — a new process, or
/// one whose socket is at an unexpected fd — goes to a background queue, which scans that
/// process's uid's `/proc/*/fd`, pids not seen before first and newest first (short-lived callers
/// have the highest pids), until ``budget`` after the accept. At most ``maxPending`` such scans
/// run or wait at a time (more are skipped), on two serial queues of their own.
public final class CallerAttributor: Sendable {
    let procRoot: String
    /// Longest time one lookup may take, counted from the accept.
    public let budget: Duration
    /// Background scans allowed to run or wait at once.
    public let maxPending: Int
    /// Serial queues get a thread of their own even when the shared pool (where Swift concurrency
    /// runs the control plane) is busy or blocked; two, so that one slow scan never delays the others.
    private let queues = (0..<2).map { DispatchQueue(label: "imds.attribution.\($0)") }
    private let nextQueue = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let index: Mutex<ProcessIndex>
    private let netlink = NetlinkPool()
    private let localAddresses = Mutex<(at: ContinuousClock.Instant, set: Set<IP16>)?>(nil)

    /// - Parameters:
    ///   - procRoot: `/proc` (tests may point elsewhere).
    ///   - cacheSize: processes kept in the index.
    public init(procRoot: String = "/proc", cacheSize: Int = 256, budget: Duration = .milliseconds(100), maxPending: Int = 256) {
        self.procRoot = procRoot
        self.index = Mutex(ProcessIndex(capacity: cacheSize))
        self.budget = budget
        self.maxPending = maxPending
    }

    /// Whether attribution can work here (netlink `SOCK_DIAG` is allowed and `/proc` is readable).
    public var isAvailable: Bool {
        #if canImport(Glibc)
        let fd = SockDiag.open()
        guard fd >= 0 else { return false }
        close(fd)
        return access(procRoot + "/self/fd", R_OK) == 0
        #else
        return false
        #endif
    }

    /// Starts attributing a connection: resolved before it returns when the caller is in the index
    /// (or is remote, or its socket is gone), otherwise on a background queue.
    /// - Parameters:
    ///   - local: this server's end of the connection.
    ///   - remote: the client's end.
    public func begin(local: PeerAddress, remote: PeerAddress) -> PendingAttribution {
        begin([(local, remote)])[0]
    }

    /// Starts attributing the connections of one accept burst, as ``begin(local:remote:)`` does
    /// for each, with one netlink exchange for all of their client sockets.
    /// - Parameter connections: this server's end and the client's end of each connection.
    /// - Returns: one attribution per connection, in order.
    public func begin(_ connections: [(local: PeerAddress, remote: PeerAddress)]) -> [PendingAttribution] {
        let deadline = ContinuousClock.now + budget
        return fastPath(connections).map { result in
            switch result {
            case .done(let a, let claim):
                return PendingAttribution(a, claim: claim)
            case .scan(let socket):
                guard pending.wrappingAdd(1, ordering: .relaxed).newValue <= maxPending else {
                    pending.wrappingSubtract(1, ordering: .relaxed)
                    return PendingAttribution(.skipped("too many pending lookups"))
                }
                let result = PendingAttribution()
                queues[nextQueue.wrappingAdd(1, ordering: .relaxed).oldValue & 1].async {
                    let (a, claim) = self.scan(socket, deadline: deadline)
                    self.pending.wrappingSubtract(1, ordering: .relaxed)
                    result.resolve(a, claim: claim)
                }
                return result
            }
        }
    }

    /// Attributes a connection now, on the calling thread.
    public func lookup(local: PeerAddress, remote: PeerAddress) -> Attribution {
        switch fastPath([(local, remote)])[0] {
        case .done(let a, _): return a
        case .scan(let socket): return scan(socket, deadline: ContinuousClock.now + budget).0
        }
    }

    /// Records that a connection attributed by this attributor is finished: its fd number is the
    /// one that process most likely uses for its next connection.
    public func finished(_ connection: PendingAttribution) {
        guard let claim = connection.claim, connection.takeFinish() else { return }
        let now = ContinuousClock.now
        index.withLock { $0.freed(claim, at: now) }
    }

    // MARK: - The fast path

    /// The client's socket, as SOCK_DIAG reported it.
    struct ClientSocket: Sendable {
        var inode: UInt64
        var uid: UInt32
    }

    enum FastResult {
        case done(Attribution, Claim?)
        case scan(ClientSocket)
    }

    /// The fast path for each connection: its client socket (one netlink exchange for all of
    /// them), then the index and the guesses.
    func fastPath(_ connections: [(local: PeerAddress, remote: PeerAddress)]) -> [FastResult] {
        var results = [FastResult?](repeating: nil, count: connections.count)
        var queries: [SockDiag.Query] = []
        var asked: [Int] = []
        for (i, c) in connections.enumerated() {
            guard let remoteIP = IP16(c.remote.ip), let localIP = IP16(c.local.ip) else {
                results[i] = .done(.unattributed("unparsable address"), nil)
                continue
            }
            guard isOnThisHost(remoteIP, localIP: localIP) else {
                results[i] = .done(.remote, nil)
                continue
            }
            #if canImport(Glibc)
            queries.append(SockDiag.Query(client: (remoteIP, c.remote.port), server: (localIP, c.local.port)))
            asked.append(i)
            #else
            results[i] = .done(.unattributed("attribution needs Linux"), nil)
            #endif
        }
        if !queries.isEmpty {
            for (i, found) in zip(asked, netlink.lookup(queries)) { results[i] = fastPath(found) }
        }
        return results.map { $0! }
    }

    /// The fast path once netlink has answered for the client socket.
    private func fastPath(_ found: (inode: UInt64, uid: UInt32)??) -> FastResult {
        #if canImport(Glibc)
        guard let found else {
            return .done(.unattributed("netlink SOCK_DIAG refused: the client socket cannot be found"), nil)
        }
        guard let (inode, uid) = found else { return .done(.unattributed("socket not found (the client closed it already)"), nil) }
        guard inode != 0 else { return .done(.unattributed("the client closed the connection before it was looked up"), nil) }
        let now = ContinuousClock.now
        // The usual case costs one lock and one readlinkat: the socket is where the caller's last
        // connection was (or a scan indexed it already).
        var tried: (pid: Int32, fd: Int32)?
        switch index.withLock({ $0.start(inode: inode, uid: uid, now: now) }) {
        case .claimed(let process, let claim):
            return .done(.process(process), claim)
        case .none:
            return .scan(ClientSocket(inode: inode, uid: uid))
        case .guess(let dir, let fd):
            if case .found(let process) = check(dir, fd: fd, inode: inode) {
                return .done(.process(process), Claim(pid: dir.pid, fd: fd, inode: inode))
            }
            tried = (dir.pid, fd)
        }
        // One readlinkat per guess. A guess that shows another socket is not wasted: that socket
        // is most likely a connection of the same process still in the accept queue, so it goes
        // into the inode index and its lookup will need no syscall at all.
        for candidate in index.withLock({ $0.candidates(uid: uid, now: now) }) {
            for fd in candidate.fds where !(tried?.pid == candidate.dir.pid && tried?.fd == fd) {
                let seen = check(candidate.dir, fd: fd, inode: inode)
                if case .found(let process) = seen {
                    return .done(.process(process), Claim(pid: candidate.dir.pid, fd: fd, inode: inode))
                }
                if case .notIndexed = seen { break }
            }
        }
        return .scan(ClientSocket(inode: inode, uid: uid))
        #else
        return .done(.unattributed("attribution needs Linux"), nil)
        #endif
    }

    enum Check {
        /// The fd holds the socket, and its process is the indexed one.
        case found(CallerProcess)
        /// The fd holds the socket, but the process is not the indexed one (its pid was reused).
        case notIndexed
        /// Not there (a socket seen there instead is indexed for the lookup that will ask for it).
        case elsewhere
    }

    /// Reads one guessed fd (one readlinkat).
    private func check(_ dir: ProcDir, fd: Int32, inode: UInt64) -> Check {
        guard let seen = dir.socketInode(fd: fd) else { return .elsewhere }
        guard seen == inode else {
            index.withLock { $0.record(pid: dir.pid, fd: fd, inode: seen) }
            return .elsewhere
        }
        guard let process = index.withLock({ $0.used(dir, fd: fd) }) else { return .notIndexed }
        return .found(process)
    }

    // MARK: - The scan (background queue)

    func scan(_ socket: ClientSocket, deadline: ContinuousClock.Instant) -> (Attribution, Claim?) {
        var scanned = 0
        func outOfTime() -> (Attribution, Claim?) {
            (.unattributed("the lookup ran out of time (\(budget) from the accept; \(scanned) processes scanned)"), nil)
        }
        guard ContinuousClock.now < deadline else { return outOfTime() }
        // Another scan may have read the caller's fd table meanwhile (a client opening many
        // connections at once: the first scan indexes them all).
        if let (process, claim) = index.withLock({ $0.claim(inode: socket.inode) }) { return (.process(process), claim) }
        // Processes that called before, whole fd table: a long-running client whose fd moved.
        let known = index.withLock { $0.owners(uid: socket.uid) }
        for dir in known {
            if ContinuousClock.now > deadline { return outOfTime() }
            scanned += 1
            let sockets = dir.sockets()
            index.withLock { $0.record(pid: dir.pid, sockets: sockets) }
            if let (process, claim) = index.withLock({ $0.claim(inode: socket.inode) }) { return (.process(process), claim) }
        }
        // Then every other process of the socket's uid: not seen at the last listing first, newest first.
        let pids = listPIDs()
        let (fresh, seen) = index.withLock { $0.listed(pids) }
        let skip = Set(known.map(\.pid))
        var otherUID: [ProcDir] = []
        for pid in fresh + seen where !skip.contains(pid) {
            if ContinuousClock.now > deadline { return outOfTime() }
            guard let dir = ProcDir(root: procRoot, pid: pid) else { continue }
            if let uid = dir.uid, uid != socket.uid {
                if otherUID.count < 64 { otherUID.append(dir) }  // root may read them; checked last
                continue
            }
            scanned += 1
            if let fd = dir.sockets().first(where: { $0.inode == socket.inode })?.fd { return found(dir, fd: fd, socket: socket) }
        }
        for dir in otherUID {
            if ContinuousClock.now > deadline { return outOfTime() }
            scanned += 1
            if let fd = dir.sockets().first(where: { $0.inode == socket.inode })?.fd { return found(dir, fd: fd, socket: socket) }
        }
        return (.unattributed("no process holds the socket (the client exited; \(scanned) processes scanned)"), nil)
    }

    /// `dir` holds the socket at `fd`; a forked child shares its parent's sockets (until it closes
    /// them or execs with close-on-exec), and newer pids are scanned first: when the parent holds
    /// the socket too, the connection is the parent's.
    private func found(_ dir: ProcDir, fd: Int32, socket: ClientSocket) -> (Attribution, Claim?) {
        var owner = dir
        var ownerFD = fd
        for _ in 0..<8 {
            guard let stat = owner.read("stat", limit: 4096).map({ String(decoding: $0, as: UTF8.self) }),
                let parent = Self.parentPID(stat: stat), parent > 1,
                let parentDir = ProcDir(root: procRoot, pid: parent)
            else { break }
            let parentFD = parentDir.fd(ownerFD, holds: socket.inode) ? ownerFD : parentDir.sockets().first { $0.inode == socket.inode }?.fd
            guard let parentFD else { break }
            owner = parentDir
            ownerFD = parentFD
        }
        if let process = index.withLock({ $0.used(owner, fd: ownerFD) }) {
            return (.process(process), Claim(pid: owner.pid, fd: ownerFD, inode: socket.inode))
        }
        guard let process = details(owner) else { return (.unattributed("process \(owner.pid) exited"), nil) }
        let sockets = owner.sockets()
        index.withLock {
            $0.insert(owner, process: process, uid: socket.uid)
            $0.record(pid: owner.pid, sockets: sockets)
            _ = $0.claim(inode: socket.inode)
        }
        return (.process(process), Claim(pid: owner.pid, fd: ownerFD, inode: socket.inode))
    }

    func listPIDs() -> [Int32] {
        guard let d = opendir(procRoot) else { return [] }
        defer { closedir(d) }
        var pids: [Int32] = []
        while let e = readdir(d) {
            if let pid = ProcDir.number(e) { pids.append(pid) }
        }
        return pids.sorted(by: >)
    }

    // MARK: - Is the peer local?

    func isOnThisHost(_ ip: IP16, localIP: IP16) -> Bool {
        if ip.isLoopback || ip == localIP { return true }
        let now = ContinuousClock.now
        let set = localAddresses.withLock { cached -> Set<IP16> in
            if let c = cached, now - c.at < .seconds(30) { return c.set }
            let fresh = Self.interfaceAddresses()
            cached = (now, fresh)
            return fresh
        }
        return set.contains(ip)
    }

    static func interfaceAddresses() -> Set<IP16> {
        var result: Set<IP16> = []
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
                    if let b = IP16(text.split(separator: "%").first.map(String.init) ?? text) { result.insert(b) }
                }
            }
            p = entry.pointee.ifa_next
        }
        return result
    }

    /// Field 4 of `/proc/PID/stat` (the parent's pid), after the `(comm)` field.
    static func parentPID(stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    // MARK: - Process details

    /// Read through the process's own directory, so a pid reused meanwhile reads nothing.
    func details(_ dir: ProcDir) -> CallerProcess? {
        let cmdline = dir.read("cmdline", limit: 64 << 10).map { bytes in
            bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        } ?? []
        let args = cmdline.last == "" ? Array(cmdline.dropLast()) : cmdline
        var p = CallerProcess(pid: dir.pid, commandLine: Redaction.redact(arguments: args.map { String($0.prefix(4096)) }))
        p.executable = dir.link("exe").map { $0.hasSuffix(" (deleted)") ? String($0.dropLast(10)) : $0 }
        p.workingDirectory = dir.link("cwd")
        if let status = dir.read("status", limit: 16 << 10).map({ String(decoding: $0, as: UTF8.self) }),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
            let uid = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap({ UInt32($0) })
        {
            p.uid = uid
            p.user = Self.userName(uid)
        }
        if let cg = dir.read("cgroup", limit: 16 << 10).map({ String(decoding: $0, as: UTF8.self) }) {
            p.cgroup = Self.cgroupPath(cg)
            p.containerID = Self.containerID(cgroupFile: cg)
        }
        if p.executable == nil && args.isEmpty && p.uid == nil { return nil }
        return p
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
}

/// Which process fd an attributed connection occupies (to learn where the next one will be).
struct Claim: Sendable, Equatable {
    var pid: Int32
    var fd: Int32
    /// The connection's client socket.
    var inode: UInt64
}

/// A `/proc/PID` directory held open. Everything read through it belongs to that one process and
/// fails once it has exited, even if its pid has been reused since.
final class ProcDir: Sendable {
    let pid: Int32
    let fd: Int32
    /// `fd/` of the directory, opened the first time a single fd is checked (processes that call
    /// again are checked once per connection; one path component less each time).
    private let fdDirectory = Atomic<Int32>(-1)

    init?(root: String, pid: Int32) {
        let fd = open("\(root)/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        self.pid = pid
        self.fd = fd
    }

    deinit {
        close(fd)
        let d = fdDirectory.load(ordering: .acquiring)
        if d >= 0 { close(d) }
    }

    private var fdDir: Int32 {
        let d = fdDirectory.load(ordering: .acquiring)
        if d >= 0 { return d }
        let opened = openat(fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard opened >= 0 else { return -1 }
        let (exchanged, original) = fdDirectory.compareExchange(expected: -1, desired: opened, ordering: .acquiringAndReleasing)
        if exchanged { return opened }
        close(opened)
        return original
    }

    /// The inode of the socket `name` (an fd number) in the fd directory `dir` refers to, from the
    /// link's text (`socket:[inode]`). Never `stat` through the link: that reaches the file's own
    /// filesystem, and a FUSE file of a local user's (or a hung NFS mount) would block the event loop.
    static func socketInode(in dir: Int32, name: UnsafePointer<CChar>) -> UInt64? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buf in
            let len = readlinkat(dir, name, UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), 64)
            return socketInode(UnsafeBufferPointer(rebasing: buf[0..<max(0, len)]))
        }
    }

    /// Parses `socket:[digits]`.
    static func socketInode(_ link: UnsafeBufferPointer<UInt8>) -> UInt64? {
        let len = link.count
        guard len > 9, len <= 30, link[0] == 0x73, link[6] == 0x3A, link[7] == 0x5B, link[len - 1] == 0x5D else { return nil }
        var inode: UInt64 = 0
        for i in 8..<(len - 1) {
            let c = link[i]
            guard c >= 48 && c <= 57 else { return nil }
            let (times10, o1) = inode.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(UInt64(c - 48))
            guard !o1, !o2 else { return nil }
            inode = next
        }
        return inode == 0 ? nil : inode
    }

    /// The process's effective uid (the owner of its `/proc` directory).
    var uid: UInt32? {
        var st = stat()
        return fstat(fd, &st) == 0 ? st.st_uid : nil
    }

    /// Whether the process is still running (not merely its pid).
    var isAlive: Bool { faccessat(fd, "stat", F_OK, 0) == 0 }

    /// Whether the process's fd `n` is the socket `inode`.
    func fd(_ n: Int32, holds inode: UInt64) -> Bool { socketInode(fd: n) == inode }

    /// The inode of the socket at the process's fd `n` (nil: no such fd, or not a socket).
    func socketInode(fd n: Int32) -> UInt64? {
        let dir = fdDir
        guard dir >= 0, n >= 0 else { return nil }
        // The fd number in decimal, on the stack.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 12) { name -> UInt64? in
            var digits = 0
            var v = n
            repeat {
                name[digits] = CChar(48 + v % 10)
                v /= 10
                digits += 1
            } while v > 0
            name[digits] = 0
            var i = 0
            var j = digits - 1
            while i < j { name.swapAt(i, j); i += 1; j -= 1 }
            return Self.socketInode(in: dir, name: UnsafePointer(name.baseAddress!))
        }
    }

    /// Every socket in the process's fd table (at most 65,536), as (fd, inode).
    func sockets() -> [(fd: Int32, inode: UInt64)] {
        let dfd = openat(fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return [] }
        guard let d = fdopendir(dfd) else {
            close(dfd)
            return []
        }
        defer { closedir(d) }
        var out: [(fd: Int32, inode: UInt64)] = []
        while out.count < 65536, let e = readdir(d) {
            guard let n = Self.number(e) else { continue }
            let inode = withUnsafePointer(to: &e.pointee.d_name) { name in
                name.withMemoryRebound(to: CChar.self, capacity: 256) { Self.socketInode(in: dfd, name: $0) }
            }
            if let inode { out.append((n, inode)) }
        }
        return out
    }

    /// A directory entry whose name is a decimal number (a pid or an fd).
    static func number(_ e: UnsafeMutablePointer<dirent>) -> Int32? {
        withUnsafeBytes(of: e.pointee.d_name) { name -> Int32? in
            var value: Int32 = 0
            var digits = 0
            for c in name {
                if c == 0 { break }
                guard c >= 48 && c <= 57, digits < 9 else { return nil }
                value = value * 10 + Int32(c - 48)
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }

    /// A file of the process's directory (`cmdline`, `status`, …), at most `limit` bytes.
    func read(_ name: String, limit: Int) -> [UInt8]? {
        let file = openat(fd, name, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// A symbolic link of the process's directory (`exe`, `cwd`).
    func link(_ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBufferPointer { b in
            readlinkat(fd, name, UnsafeMutableRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self), 4096)
        }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

/// The processes that called before, most recent first, each with the fd numbers of its finished
/// connections. Only map operations under its lock; no file is read while it is held.
struct ProcessIndex {
    /// A class: the fast path reads an owner's uid and dir for every connection, and reading a
    /// struct out of the dictionary copied it whole (its strings and its `freed` array).
    final class Owner {
        let dir: ProcDir
        let process: CallerProcess
        let uid: UInt32
        /// Fd numbers of finished connections whose successor has not been seen yet, oldest first:
        /// a client reconnects right after each response and the kernel's accept queue is first in,
        /// first out, so the connection accepted next most likely sits at the oldest freed fd.
        /// Each with the socket that held it: the client may not have closed that one yet (a
        /// connection is finished when its response is handed over, before the client reads it).
        var freed: [(fd: Int32, inode: UInt64, at: ContinuousClock.Instant)] = []

        init(dir: ProcDir, process: CallerProcess, uid: UInt32) {
            self.dir = dir
            self.process = process
            self.uid = uid
        }
    }

    /// A freed fd not reused within this time is forgotten (its process closed it for good).
    static let freedLifetime: Duration = .seconds(1)
    /// At most this many `readlinkat` calls per connection on the fast path.
    static let maxGuesses = 32

    let capacity: Int
    private var owners: [Int32: Owner] = [:]
    /// Pids of `owners`, most recently used first.
    private var order: [Int32] = []
    /// The pids of the last `/proc` listing.
    private var seen: Set<Int32> = []
    /// Socket inode → where it was seen (owners' fd tables, read by scans), in two generations so
    /// that the map stays bounded: inodes are never reused soon, so an entry is only ever stale,
    /// never wrong.
    private var sockets: [UInt64: Claim] = [:]
    private var olderSockets: [UInt64: Claim] = [:]
    static let socketGeneration = 8192

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// ``record(pid:sockets:)`` for the one socket a guess showed (every few connections under
    /// load): the same result without building a set or an array.
    mutating func record(pid: Int32, fd: Int32, inode: UInt64) {
        guard let owner = owners[pid] else { return }
        if let i = owner.freed.firstIndex(where: { $0.fd == fd }) {
            if owner.freed[i].inode == inode {
                // The finished connection's socket, still open: guess the other freed fds first.
                let entry = owner.freed.remove(at: i)
                owner.freed.append(entry)
                return
            }
            owner.freed.remove(at: i)  // a new socket took the fd
        }
        if olderSockets[inode] == nil { sockets[inode] = Claim(pid: pid, fd: fd, inode: inode) }
        rotateSockets()
    }

    /// Records sockets seen in an owner's fd table; their fds are no longer free.
    mutating func record(pid: Int32, sockets found: some Collection<(fd: Int32, inode: UInt64)>) {
        guard let owner = owners[pid] else { return }
        // A finished connection's socket still at its fd (the client has not read the response
        // yet) neither takes the fd nor needs indexing: no lookup will ask for it again.
        var live: [(fd: Int32, inode: UInt64)] = []
        if owner.freed.isEmpty {
            live = Array(found)
        } else if found.count <= 8 {
            for f in found {
                guard let i = owner.freed.firstIndex(where: { $0.fd == f.fd && $0.inode == f.inode }) else {
                    live.append(f)
                    continue
                }
                // Still closing: guess the other freed fds first next time.
                let entry = owner.freed.remove(at: i)
                owner.freed.append(entry)
            }
        } else {
            let closing = Set(owner.freed.map(\.inode))
            live = found.filter { !closing.contains($0.inode) }
        }
        for (fd, inode) in live where olderSockets[inode] == nil {
            sockets[inode] = Claim(pid: pid, fd: fd, inode: inode)
        }
        if !owner.freed.isEmpty, !live.isEmpty {
            let taken = Set(live.map(\.fd))
            owner.freed.removeAll { taken.contains($0.fd) }
        }
        rotateSockets()
    }

    private mutating func rotateSockets() {
        if sockets.count > Self.socketGeneration {
            // The two maps trade places and keep their storage: building a new map each time
            // allocated and freed megabyte-sized buffers under load, which glibc's malloc (its mmap
            // threshold rises after each such free) left as fragments, and RSS crept up.
            swap(&olderSockets, &sockets)
            sockets.removeAll(keepingCapacity: true)
        }
    }

    /// The owner of a socket seen in a scan, if it is still indexed (the entry is used up).
    mutating func claim(inode: UInt64) -> (CallerProcess, Claim)? {
        guard let claim = sockets.removeValue(forKey: inode) ?? olderSockets.removeValue(forKey: inode),
            let owner = owners[claim.pid]
        else { return nil }
        if let i = owner.freed.firstIndex(where: { $0.fd == claim.fd }) { owner.freed.remove(at: i) }
        touch(claim.pid)
        return (owner.process, claim)
    }

    enum Start {
        /// A scan saw the socket already.
        case claimed(CallerProcess, Claim)
        /// The first place to look: the most recent such owner's oldest freed fd.
        case guess(ProcDir, Int32)
        /// No owner with this uid has a freed fd: only a scan can find the socket.
        case none
    }

    /// The fast path's first step, in one lock: the socket indexed already, or the first guess
    /// (``candidates(uid:now:)`` has the others).
    mutating func start(inode: UInt64, uid: UInt32, now: ContinuousClock.Instant) -> Start {
        if let (process, claim) = claim(inode: inode) { return .claimed(process, claim) }
        for pid in order {
            guard let owner = owners[pid], owner.uid == uid, Self.dropStale(owner, now: now) else { continue }
            return .guess(owner.dir, owner.freed[0].fd)
        }
        return .none
    }

    /// Drops an owner's freed fds not reused within ``freedLifetime``; whether any are left.
    private static func dropStale(_ owner: Owner, now: ContinuousClock.Instant) -> Bool {
        guard !owner.freed.isEmpty else { return false }
        guard let keep = owner.freed.firstIndex(where: { now - $0.at < freedLifetime }) else {
            owner.freed.removeAll()
            return false
        }
        if keep > 0 { owner.freed.removeFirst(keep) }
        return true
    }

    /// Where the fast path looks: the most recent owners with this uid and their freed fds (stale
    /// ones are dropped here).
    mutating func candidates(uid: UInt32, now: ContinuousClock.Instant) -> [(dir: ProcDir, fds: [Int32])] {
        var out: [(dir: ProcDir, fds: [Int32])] = []
        var budget = Self.maxGuesses
        for pid in order where budget > 0 {
            guard let owner = owners[pid], owner.uid == uid, Self.dropStale(owner, now: now) else { continue }
            let fds = owner.freed.prefix(budget).map(\.fd)
            budget -= fds.count
            out.append((owner.dir, fds))
            if out.count == 4 { break }
        }
        return out
    }

    /// The owners with this uid, most recent first (for a full fd-table scan).
    func owners(uid: UInt32) -> [ProcDir] {
        order.prefix(16).compactMap { owners[$0] }.filter { $0.uid == uid }.map(\.dir)
    }

    /// `dir` holds a new connection at `fd`: its details if it is in the index (same process).
    mutating func used(_ dir: ProcDir, fd: Int32) -> CallerProcess? {
        guard let owner = owners[dir.pid], owner.dir === dir || (owner.dir.isAlive && owner.process.pid == dir.pid) else {
            return nil
        }
        if let i = owner.freed.firstIndex(where: { $0.fd == fd }) { owner.freed.remove(at: i) }
        touch(dir.pid)
        return owner.process
    }

    mutating func insert(_ dir: ProcDir, process: CallerProcess, uid: UInt32) {
        owners[dir.pid] = Owner(dir: dir, process: process, uid: uid)
        touch(dir.pid)
        while order.count > capacity { owners.removeValue(forKey: order.removeLast()) }
    }

    mutating func freed(_ claim: Claim, at now: ContinuousClock.Instant) {
        guard let owner = owners[claim.pid] else { return }
        if let i = owner.freed.firstIndex(where: { $0.fd == claim.fd }) { owner.freed.remove(at: i) }
        owner.freed.append((claim.fd, claim.inode, now))
        if owner.freed.count > 1024 { owner.freed.removeFirst() }
    }

    /// Records a `/proc` listing (newest first): returns the pids not seen at the last one, then the
    /// others; owners that are gone leave the index.
    mutating func listed(_ pids: [Int32]) -> (fresh: [Int32], seen: [Int32]) {
        let previous = seen
        seen = Set(pids)
        for pid in order where !seen.contains(pid) { owners.removeValue(forKey: pid) }
        order.removeAll { owners[$0] == nil }
        var fresh: [Int32] = []
        var old: [Int32] = []
        for pid in pids {
            if previous.contains(pid) { old.append(pid) } else { fresh.append(pid) }
        }
        return (fresh, old)
    }

    private mutating func touch(_ pid: Int32) {
        if order.first == pid { return }
        order.removeAll { $0 == pid }
        order.insert(pid, at: 0)
    }
}

/// Netlink `SOCK_DIAG` sockets, reused across lookups.
final class NetlinkPool: Sendable {
    private let idle = Mutex<[Int32]>([])

    deinit {
        for fd in idle.withLock({ $0 }) { close(fd) }
    }

    /// Per query, in order: nil: netlink refused (or the answer was not understood); `.some(nil)`:
    /// no such socket; else the client socket's inode and uid. One exchange for all of them
    /// (``SockDiag/lookup(fd:_:)``).
    func lookup(_ queries: [SockDiag.Query]) -> [(inode: UInt64, uid: UInt32)??] {
        #if canImport(Glibc)
        var fd = idle.withLock { $0.popLast() } ?? -1
        if fd < 0 { fd = SockDiag.open() }
        guard fd >= 0 else { return Array(repeating: nil, count: queries.count) }
        var failed = false
        let out = SockDiag.lookup(fd: fd, queries).map { result -> (inode: UInt64, uid: UInt32)?? in
            switch result {
            case .failed:
                failed = true
                return nil
            case .notFound: return .some(nil)
            case .found(let inode, let uid): return .some((inode, uid))
            }
        }
        // A socket that failed may hold a late answer: it is not reused.
        if failed { close(fd) } else { giveBack(fd) }
        return out
        #else
        return Array(repeating: nil, count: queries.count)
        #endif
    }

    private func giveBack(_ fd: Int32) {
        let keep = idle.withLock { list -> Bool in
            guard list.count < 8 else { return false }
            list.append(fd)
            return true
        }
        if !keep { close(fd) }
    }
}

/// An attribution that may still be running: callers register what to do with the result.
public final class PendingAttribution: Sendable {
    /// The result when it was known at creation (the fast path: most connections), read without a
    /// lock — each connection asks for it four or five times.
    private let early: Attribution?
    private let earlyClaim: Claim?
    private let state: Mutex<State>
    private let finishReported = Atomic<Bool>(false)

    struct State {
        var result: Attribution?
        var claim: Claim?
        var waiters: [@Sendable (Attribution) -> Void] = []
    }

    public init() {
        early = nil
        earlyClaim = nil
        state = Mutex(State())
    }

    /// True the first time only: the connection's end is reported to the attributor once, by
    /// whichever comes first (the listener just before its write, or the request's bookkeeping).
    func takeFinish() -> Bool {
        !finishReported.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// An already resolved attribution.
    public init(_ result: Attribution) {
        early = result
        earlyClaim = nil
        state = Mutex(State())
    }

    /// Resolved at once, with the fd it was found at (the fast path: no waiter can exist yet).
    init(_ result: Attribution, claim: Claim?) {
        early = result
        earlyClaim = claim
        state = Mutex(State())
    }

    func resolve(_ a: Attribution, claim: Claim? = nil) {
        guard early == nil else { return }
        let waiters = state.withLock { s -> [@Sendable (Attribution) -> Void] in
            guard s.result == nil else { return [] }
            s.result = a
            s.claim = claim
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w(a) }
    }

    /// The process fd the connection was found at.
    var claim: Claim? {
        if early != nil { return earlyClaim }
        return state.withLock { $0.claim }
    }

    /// The result, if known.
    public var result: Attribution? {
        if let early { return early }
        return state.withLock { $0.result }
    }

    /// Runs `body` with the result: now if it is known, otherwise when it arrives (on the lookup queue).
    public func whenResolved(_ body: @escaping @Sendable (Attribution) -> Void) {
        if let early {
            body(early)
            return
        }
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

/// An IP address as 16 bytes (IPv4 as v4-mapped `::ffff:a.b.c.d`), so that an IPv4 peer seen by a
/// dual-stack socket compares equal to the same peer seen by an IPv4 socket. A value of two words:
/// this is parsed for both ends of every on-host connection, and an array per address was one
/// allocation each.
struct IP16: Hashable, Sendable {
    /// Bytes 0–7 and 8–15, in network order (byte 0 is the most significant of `high`).
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From 16 bytes, or 4 (IPv4, mapped).
    init?(_ b: some Collection<UInt8>) {
        let bytes = Array(b)
        if bytes.count == 4 {
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(bytes[0]) << 24 | UInt64(bytes[1]) << 16 | UInt64(bytes[2]) << 8 | UInt64(bytes[3]))
            return
        }
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        self.init(high: h, low: l)
    }

    /// Text form: dotted IPv4 parsed here (no C string, no allocation), IPv6 by `inet_pton`.
    init?(_ text: String) {
        if let v4 = Self.dotted(text.utf8) {
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(v4))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self.init(withUnsafeBytes(of: v6) { Array($0) })
    }

    /// `a.b.c.d` exactly as glibc's `inet_pton(AF_INET)` accepts it: four decimal parts, each at
    /// most 255 and without a leading zero (`0` itself is fine), nothing else.
    static func dotted(_ text: String.UTF8View) -> UInt32? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        for c in text {
            if c == 0x2E {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else if c >= 0x30 && c <= 0x39 {
                guard digits == 0 || part != 0 else { return nil }  // "01", "00"
                part = part * 10 + UInt32(c - 0x30)
                guard part <= 255 else { return nil }
                digits += 1
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }

    var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// `::ffff:a.b.c.d`.
    var isMapped: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// The IPv4 address inside a v4-mapped one, as a host-order number.
    var v4: UInt32? { isMapped ? UInt32(truncatingIfNeeded: low) : nil }

    var isLoopback: Bool {
        (high == 0 && low == 1) || (isMapped && (low >> 24) & 0xFF == 127)
    }
}

/// The byte-array form of ``IP16`` (tests, diagnostics).
enum IPBytes {
    static func parse(_ text: String) -> [UInt8]? { IP16(text)?.bytes }

    /// The IPv4 address inside a v4-mapped one.
    static func unmapped(_ b: [UInt8]) -> [UInt8]? {
        guard let ip = IP16(b), let v4 = ip.v4 else { return nil }
        return [UInt8(v4 >> 24), UInt8(truncatingIfNeeded: v4 >> 16), UInt8(truncatingIfNeeded: v4 >> 8), UInt8(truncatingIfNeeded: v4)]
    }

    static func isLoopback(_ b: [UInt8]) -> Bool { IP16(b)?.isLoopback ?? false }
}
