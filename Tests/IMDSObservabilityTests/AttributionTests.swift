import Foundation
import IMDSCore
import IMDSServer
import IMDSTesting
import Synchronization
import Testing

@testable import IMDSObservability

@Suite("Caller attribution (/proc)")
struct AttributionTests {
    /// The lean loop reports a connection's end just before its write (so the client's next
    /// connection finds its fd among the guesses); the request's bookkeeping after the write must
    /// not report it a second time, and a lookup still running is not reported before the write.
    @Test("a connection's end is reported once, before the write when its lookup is done")
    func endReportedOnceBeforeTheWrite() {
        let obs = Observability(attributor: CallerAttributor())
        let done = PendingAttribution()
        done.resolve(.remote, claim: Claim(pid: 1, fd: 7, inode: 42))
        obs.responseWriting(connection: done)
        #expect(!done.takeFinish(), "reported by responseWriting")
        let running = PendingAttribution()
        obs.responseWriting(connection: running)
        running.resolve(.remote, claim: Claim(pid: 1, fd: 8, inode: 43))
        #expect(running.takeFinish(), "not reported while its lookup was running")
        #expect(!running.takeFinish())
    }

    @Test("addresses are 16 bytes, IPv4 as v4-mapped; loopback is recognised")
    func addresses() throws {
        #expect(IPBytes.parse("127.0.0.1") == IPBytes.parse("::ffff:127.0.0.1"))
        #expect(IPBytes.unmapped(try #require(IPBytes.parse("10.1.2.3"))) == [10, 1, 2, 3])
        #expect(IPBytes.unmapped(try #require(IPBytes.parse("::1"))) == nil)
        #expect(IPBytes.isLoopback(IPBytes.parse("127.3.4.5")!))
        #expect(IPBytes.isLoopback(IPBytes.parse("::1")!))
        #expect(!IPBytes.isLoopback(IPBytes.parse("10.0.0.1")!))
    }

    /// The fast path parses both ends of every on-host connection itself (no C string, no
    /// allocation); it must accept and reject exactly what glibc's `inet_pton` does.
    @Test("dotted IPv4 is parsed as inet_pton parses it")
    func dottedMatchesInetPton() {
        func pton(_ text: String) -> UInt32? {
            var a = in_addr()
            return inet_pton(AF_INET, text, &a) == 1 ? UInt32(bigEndian: a.s_addr) : nil
        }
        var cases = ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.1.2.3", "1.2.3.4", "256.1.1.1", "1.2.3.256",
                     "01.2.3.4", "1.2.3.04", "00.0.0.0", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "", ".",
                     "1.2.3.4 ", " 1.2.3.4", "+1.2.3.4", "0x1.2.3.4", "1.2.3.-4", "999.1.1.1", "1000.1.1.1",
                     "4294967296.1.1.1", "::1", "::ffff:1.2.3.4", "1.2.3.4%lo", "١.٢.٣.٤"]
        // Every short string over the characters that matter, and random addresses.
        let alphabet: [Character] = ["0", "1", "2", "5", "9", "."]
        var short = [""]
        for _ in 0..<5 { short = short.flatMap { s in alphabet.map { s + String($0) } } }
        cases += short.filter { $0.count == 5 }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            cases.append((0..<4).map { _ in String(Int.random(in: 0...300, using: &rng)) }.joined(separator: "."))
        }
        for text in cases {
            #expect(IP16.dotted(text.utf8) == pton(text), "\(text)")
        }
        // The one intended difference: a C string ends at NUL, this text does not.
        #expect(IP16.dotted("1.2.3.4\u{0}".utf8) == nil)
    }

    @Test("IPv6 text and bytes round-trip through the two-word form")
    func ip16() throws {
        let v6 = try #require(IP16("2001:db8::1:2"))
        #expect(v6.bytes == [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2])
        #expect(IP16(v6.bytes) == v6)
        #expect(!v6.isMapped && !v6.isLoopback && v6.v4 == nil)
        let mapped = try #require(IP16("10.1.2.3"))
        #expect(mapped.isMapped && mapped.v4 == 0x0A01_0203)
        #expect(IP16([10, 1, 2, 3]) == mapped)
        #expect(IP16([1, 2, 3]) == nil)
        #expect(IP16("fe80::1%eth0") == nil)
        #expect(IP16("not an address") == nil)
    }

    @Test("container ids are found in cgroup paths", arguments: [
        ("0::/system.slice/docker-\(String(repeating: "ab12", count: 16)).scope", String(repeating: "ab12", count: 16)),
        ("12:memory:/docker/\(String(repeating: "0f", count: 32))", String(repeating: "0f", count: 32)),
        ("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-\(String(repeating: "9", count: 64)).scope", String(repeating: "9", count: 64)),
        ("0::/user.slice/user-1000.slice/session-3.scope", nil),
        ("4:memory:/process_api/7d9d11a72b509fd97648776a99c1938a", nil),
    ] as [(String, String?)])
    func containerIDs(_ cgroup: String, _ expected: String?) {
        #expect(CallerAttributor.containerID(cgroupFile: cgroup) == expected)
    }

    @Test("fd links: only socket:[digits] is a socket, without overflow")
    func socketLinks() {
        func inode(_ text: String) -> UInt64? {
            Array(text.utf8).withUnsafeBufferPointer { ProcDir.socketInode($0) }
        }
        #expect(inode("socket:[4026532]") == 4_026_532)
        #expect(inode("socket:[18446744073709551615]") == UInt64.max)
        #expect(inode("socket:[18446744073709551616]") == nil)
        for bad in ["socket:[]", "socket:[0]", "pipe:[4026532]", "socket:[12a]", "socket:[12", "/dev/null", "",
                    "socket:[" + String(repeating: "9", count: 40) + "]"] {
            #expect(inode(bad) == nil, "\(bad)")
        }
    }

    @Test("peers on other hosts are not looked up")
    func remote() {
        let a = CallerAttributor()
        #expect(a.lookup(local: PeerAddress(ip: "127.0.0.1", port: 80), remote: PeerAddress(ip: "192.0.2.77", port: 4000)) == .remote)
    }

    /// A live server with observability hooks; curl (a child process) is attributed by pid and command line.
    @Test("a curl child process is attributed by pid and command line", arguments: ["127.0.0.1", "::1"])
    func curlIsAttributed(host: String) async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else {
            Issue.record("/usr/bin/curl is needed for this test")
            return
        }
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-protocol-ipv6: enabled\n")
        // The response waits for the lookup (at most 10 s here, for a heavily loaded machine), as `imds serve` does.
        let observability = Observability(attributor: CallerAttributor(budget: .seconds(10)), holdLimit: .seconds(10))
        let hooks = DataPlaneHooks(
            accepted: { observability.connectionAccepted(local: $0, remote: $1) },
            completed: { observability.requestCompleted($0, $1, seconds: $2, connection: $3 as? PendingAttribution) },
            hold: { observability.holdResponse($0 as? PendingAttribution, resume: $1) })
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [ListenAddress(host: host, port: 0)]), hooks: hooks)
        try await service.start()
        guard let address = service.dataAddresses.first else {
            await service.shutdown()
            Issue.record("could not listen on \(host)")
            return
        }
        let url = "\(address.url)/latest/meta-data/instance-id"
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "-o", "/dev/null", "--max-time", "30", url]
        try curl.run()
        let pid = curl.processIdentifier
        let child = UncheckedSendable(curl)
        await onOwnThread { child.value.waitUntilExit() }
        #expect(curl.terminationStatus == 0)

        // The table fills once the attribution started at accept time has finished (bounded wait).
        var found: CallerSummary?
        for _ in 0..<2000 {
            found = observability.callers.snapshot().first { $0.v1 > 0 }
            if found != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        await service.shutdown()
        let caller = try #require(found)
        #expect(caller.attribution == "process", "\(caller)")
        #expect(caller.process?.pid == pid)
        #expect(caller.process?.executable == "/usr/bin/curl")
        #expect(caller.process?.commandLine == ["/usr/bin/curl", "-s", "-o", "/dev/null", "--max-time", "30", url])
        #expect(caller.process?.uid == getuid())
        #expect(caller.addresses == [host])
        #expect(caller.paths.map(\.path) == ["/latest/meta-data/instance-id"])
        #expect(sample(observability.metrics.exposition(), "imds_caller_attributions_total", ["result": "process"]) == 1)
    }

    /// The path nearly every connection takes: a process that called before reconnects, and its new
    /// socket is found at the fd its last connection freed, without a `/proc` scan. A client in a
    /// process of its own (as real callers are) makes sequential v1 requests, each on a new
    /// connection; only the first may need a scan.
    @Test("a process's repeated connections are attributed through the index, not by scans", arguments: ["127.0.0.1", "::1"])
    func repeatedConnectionsUseTheIndex(host: String) async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-protocol-ipv6: enabled\n")
        let observability = Observability(attributor: CallerAttributor(budget: .seconds(10)), holdLimit: .seconds(10))
        // The hooks `imds serve` installs, the report just before the write included.
        let hooks = DataPlaneHooks(
            accepted: { observability.connectionAccepted(local: $0, remote: $1) },
            completed: { observability.requestCompleted($0, $1, seconds: $2, connection: $3 as? PendingAttribution) },
            hold: { observability.holdResponse($0 as? PendingAttribution, resume: $1) },
            writing: { observability.responseWriting(connection: $0 as? PendingAttribution) })
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [ListenAddress(host: host, port: 0)]), hooks: hooks)
        try await service.start()
        guard let port = service.dataAddresses.first?.port else {
            await service.shutdown()
            Issue.record("could not listen on \(host)")
            return
        }
        let connections = 30
        let script = """
            import socket, sys
            for _ in range(\(connections)):
                s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
                s.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\\r\\nHost: imds\\r\\n\\r\\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk: break
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200"), data
                s.close()
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", script, host, String(port)]
        try python.run()
        let pid = python.processIdentifier
        let child = UncheckedSendable(python)
        await onOwnThread { child.value.waitUntilExit() }
        #expect(python.terminationStatus == 0)
        var found: CallerSummary?
        for _ in 0..<2000 {
            found = observability.callers.snapshot().first { $0.v1 == connections }
            if found != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        await service.shutdown()
        let caller = try #require(found, "\(observability.callers.snapshot())")
        #expect(caller.attribution == "process")
        #expect(caller.pids == [pid])
        let metrics = observability.metrics.exposition()
        #expect(sample(metrics, "imds_caller_attributions_total", ["result": "process"]) == Double(connections))
        // One scan finds the new process; its later connections are found through the index.
        #expect(sample(metrics, "imds_caller_scans_total") <= 2)
    }

    @Test("an in-process client's connection is attributed to this process (IPv4 and IPv6)", arguments: ["127.0.0.1", "::1"])
    func selfAttributed(host: String) async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-protocol-ipv6: enabled\n")
        // The caller is this test process, whose fd table the scan reads whole: with suites running
        // in parallel (the fairness flood holds thousands of sockets) that takes longer than the
        // server's 100 ms bound on a loaded machine. What is checked here is who is found.
        let attributor = CallerAttributor(budget: .seconds(5))
        let seen = PendingBox()
        let hooks = DataPlaneHooks(
            accepted: { local, remote in
                let p = attributor.begin(local: local!, remote: remote!)
                seen.set(p)
                return p
            },
            completed: { _, _, _, _ in })
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil, configuration: .init(dataListen: [ListenAddress(host: host, port: 0)]), hooks: hooks)
        try await service.start()
        let port = try #require(service.dataAddresses.first?.port)
        // Connect and hold the socket open (no request yet): the lookup runs while we wait.
        let fd = try connectTCP(host: host, port: port)
        defer { close(fd) }
        var pending: PendingAttribution?
        for _ in 0..<200 {
            pending = seen.get()
            if pending != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = await (try #require(pending)).value()
        await service.shutdown()
        #expect(result.process?.pid == getpid(), "\(result)")
    }
}

@Suite("Caller attribution: forked children")
struct ForkAttributionTests {
    /// A process connects, then forks a child that keeps the socket: the connection is the parent's.
    @Test func inheritedSocketIsAttributedToTheParent() async throws {
        let imds = TestIMDS()
        let attributor = CallerAttributor(budget: .seconds(5))  // see selfAttributed
        let seen = PendingBox()
        let hooks = DataPlaneHooks(
            accepted: { local, remote in
                let p = attributor.begin(local: local!, remote: remote!)
                seen.set(p)
                return p
            },
            completed: { _, _, _, _ in })
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil, configuration: .init(dataListen: [ListenAddress(host: "127.0.0.1", port: 0)]), hooks: hooks)
        try await service.start()
        let port = try #require(service.dataAddresses.first?.port)
        let script = """
            import os, socket, sys, time
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
            child = os.fork()
            if child == 0:
                time.sleep(3); os._exit(0)
            print(os.getpid(), child, flush=True)
            time.sleep(3)
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", script, String(port)]
        let out = Pipe()
        python.standardOutput = out
        try python.run()
        let handle = UncheckedSendable(out.fileHandleForReading)
        let line = await onOwnThread { () -> String in
            var line = ""
            for _ in 0..<100 where !line.contains("\n") {
                let chunk = handle.value.availableData
                if chunk.isEmpty { break }
                line += String(decoding: chunk, as: UTF8.self)
            }
            return line
        }
        let pids = line.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        var pending: PendingAttribution?
        for _ in 0..<300 {
            pending = seen.get()
            if pending != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let result = await (try #require(pending)).value()
        python.terminate()
        await service.shutdown()
        try #require(pids.count == 2, "python printed \(line.debugDescription)")
        #expect(result.process?.pid == pids[0], "\(result); parent \(pids[0]), child \(pids[1])")
    }

    @Test func parentPIDField() {
        #expect(CallerAttributor.parentPID(stat: "1234 (my (odd) name) S 77 1234 1234 0 -1") == 77)
    }
}

final class PendingBox: Sendable {
    private let value = Mutex<PendingAttribution?>(nil)
    func set(_ p: PendingAttribution) { value.withLock { $0 = p } }
    func get() -> PendingAttribution? { value.withLock { $0 } }
}



/// A blocking TCP connect (the test's own client socket).
func connectTCP(host: String, port: Int) throws -> Int32 {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var res: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else { throw CLIError("cannot resolve \(host)") }
    defer { freeaddrinfo(res) }
    // Close-on-exec: child processes other tests spawn meanwhile must not inherit the socket.
    let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
    guard fd >= 0, connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { throw CLIError("cannot connect to \(host):\(port)") }
    return fd
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

@Suite("Attribution hold")
struct HoldTests {
    @Test("a response waits only for an unfinished on-host lookup, and never longer than the limit")
    func hold() async throws {
        let obs = Observability(holdLimit: .milliseconds(20))
        let nothing: @Sendable () -> Void = {}
        let heldNil = obs.holdResponse(nil, resume: nothing)
        let heldRemote = obs.holdResponse(PendingAttribution(.remote), resume: nothing)
        let heldZero = Observability(holdLimit: .zero).holdResponse(PendingAttribution(), resume: nothing)
        #expect(!heldNil && !heldRemote && !heldZero)

        // Never resolved: the limit releases it, exactly once.
        let count = Atomic<Int>(0)
        let held = obs.holdResponse(PendingAttribution(), resume: { count.wrappingAdd(1, ordering: .relaxed) })
        #expect(held)
        for _ in 0..<500 where count.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(count.load(ordering: .relaxed) == 1)

        // Resolved before the limit: released by the result, still exactly once.
        let long = Observability(holdLimit: .seconds(30))
        let pending = PendingAttribution()
        let released = Atomic<Int>(0)
        let heldLong = long.holdResponse(pending, resume: { released.wrappingAdd(1, ordering: .relaxed) })
        #expect(heldLong)
        #expect(released.load(ordering: .relaxed) == 0)
        pending.resolveForTesting(.unattributed("test"))
        #expect(released.load(ordering: .relaxed) == 1)
    }
}

extension PendingAttribution {
    func resolveForTesting(_ a: Attribution) { resolve(a) }
}

@Suite("Attribution: per-request redaction")
struct RequestRedactionTests {
    @Test("the request's token is stripped from the caller's command line, every time, for each command line")
    func tokenStripped() {
        let obs = Observability()
        let token = "AQAEAHexampleexampleexampleexampleexampleexampleexampleQ=="
        let a = CallerProcess(pid: 1, commandLine: ["curl", "-H", "X-aws-ec2-metadata-token: \(token)", "http://x/"])
        let b = CallerProcess(pid: 2, commandLine: ["sh", "-c", "echo \(token)"])
        for p in [a, a, b, a] {
            let out = obs.redacted(.process(p), known: [token]).process?.commandLine ?? []
            #expect(out.count == p.commandLine.count)
            #expect(!out.joined(separator: " ").contains(token), "\(out)")
            #expect(out.first == p.commandLine.first)
        }
        #expect(obs.redacted(.process(b), known: []).process?.commandLine == b.commandLine)
        #expect(obs.redacted(.remote, known: [token]) == .remote)
    }
}

/// The batched netlink lookup behind an accept burst (`SockDiag.lookup(fd:_:)`): one exchange,
/// answers matched to their queries, nothing taken from another exchange.
@Suite("Caller attribution: netlink batches")
struct NetlinkBatchTests {
    /// A listening socket on 127.0.0.1 and `count` connections to it from this process, accepted:
    /// (listener port, [(client fd, client port)], server fds).
    static func connections(_ count: Int) throws -> (port: Int, clients: [(fd: Int32, port: Int)], accepted: [Int32]) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard listener >= 0, bound == 0, listen(listener, 128) == 0 else { throw CLIError("cannot listen") }
        defer { close(listener) }
        func port(_ fd: Int32, peer: Bool = false) -> Int {
            var a = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &a) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
            }
            return Int(UInt16(bigEndian: a.sin_port))
        }
        let listenPort = port(listener)
        var clients: [(Int32, Int)] = []
        var accepted: [Int32] = []
        for _ in 0..<count {
            let c = try connectTCP(host: "127.0.0.1", port: listenPort)
            clients.append((c, port(c)))
            accepted.append(accept(listener, nil, nil))
        }
        return (listenPort, clients, accepted)
    }

    static func inode(ofFD fd: Int32) -> UInt64? {
        var buf = [UInt8](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count)
        return n > 0 ? buf.withUnsafeBufferPointer { ProcDir.socketInode(UnsafeBufferPointer(rebasing: $0[..<n])) } : nil
    }

    @Test("one exchange answers a whole burst in order (more than a batch: split), and names the sockets that do not exist")
    func burst() throws {
        let (port, clients, accepted) = try Self.connections(40)
        defer { for fd in clients.map(\.fd) + accepted { close(fd) } }
        let fd = SockDiag.open()
        try #require(fd >= 0, "netlink SOCK_DIAG is not allowed here")
        defer { close(fd) }
        let loopback = try #require(IP16("127.0.0.1"))
        var queries = clients.map { SockDiag.Query(client: (loopback, $0.port), server: (loopback, port)) }
        // A client port with no connection behind it, in the middle of the burst.
        queries.insert(SockDiag.Query(client: (loopback, 9), server: (loopback, port)), at: 7)
        let results = SockDiag.lookup(fd: fd, queries)
        #expect(results.count == 41)
        #expect(results[7] == .notFound)
        for (i, c) in clients.enumerated() {
            let expected = try #require(Self.inode(ofFD: c.fd))
            #expect(results[i < 7 ? i : i + 1] == .found(inode: expected, uid: getuid()), "client \(i)")
        }
        // The socket is reusable after a batch: a single lookup still finds its socket.
        #expect(SockDiag.lookup(fd: fd, client: (loopback, clients[3].port), server: (loopback, port)) == .found(inode: try #require(Self.inode(ofFD: clients[3].fd)), uid: getuid()))
    }

    @Test("answers are matched by sequence number: another exchange's, an unknown index or a short one are not taken")
    func answersOfOtherExchanges() {
        func answer(type: UInt16, seq: UInt32, error: Int32 = 0, length: Int = 16 + 72) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: length)
            func put32(_ v: UInt32, _ o: Int) { for i in 0..<4 where o + i < b.count { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
            put32(UInt32(length), 0)
            b[4] = UInt8(type & 0xFF); b[5] = UInt8(type >> 8)
            put32(seq, 8)
            if type == 2 { put32(UInt32(bitPattern: error), 16) }
            if type == 20 { put32(1000, 16 + 64); put32(424242, 16 + 68) }
            return b
        }
        func parse(_ b: [UInt8], base: UInt32, count: Int) -> (Int, SockDiag.Result)? {
            b.withUnsafeBufferPointer { SockDiag.parse($0, base: base, count: count) }
        }
        let base: UInt32 = 0xABCD_0040
        let found = parse(answer(type: 20, seq: base | 3), base: base, count: 5)
        #expect(found?.0 == 3 && found?.1 == .found(inode: 424242, uid: 1000))
        let missing = parse(answer(type: 2, seq: base | 1, error: -ENOENT), base: base, count: 5)
        #expect(missing?.0 == 1 && missing?.1 == .notFound)
        let refused = parse(answer(type: 2, seq: base | 2, error: -EPERM), base: base, count: 5)
        #expect(refused?.0 == 2 && refused?.1 == .failed)
        #expect(parse(answer(type: 20, seq: 0x1234_0000 | 3), base: base, count: 5) == nil)  // another exchange
        #expect(parse(answer(type: 20, seq: base | 5), base: base, count: 5) == nil)  // no such query
        #expect(parse(answer(type: 20, seq: base | 0, length: 40), base: base, count: 5) == nil)  // cut short
        #expect(parse(answer(type: 3, seq: base | 0), base: base, count: 5) == nil)  // NLMSG_DONE: not an answer
        #expect(parse(Array(answer(type: 20, seq: base)[0..<10]), base: base, count: 5) == nil)
    }

    @Test("a burst of connections is attributed together, each to its process")
    func attributedTogether() async throws {
        let (port, clients, accepted) = try Self.connections(6)
        defer { for fd in clients.map(\.fd) + accepted { close(fd) } }
        let attributor = CallerAttributor(budget: .seconds(5))
        try #require(attributor.isAvailable)
        let local = PeerAddress(ip: "127.0.0.1", port: port)
        let pending = attributor.begin(clients.map { (local, PeerAddress(ip: "127.0.0.1", port: $0.port)) }
            + [(local, PeerAddress(ip: "127.0.0.1", port: 9)), (PeerAddress(ip: "192.0.2.1", port: 80), PeerAddress(ip: "198.51.100.7", port: 5000))])
        #expect(pending.count == 8)
        for p in pending.prefix(6) {
            #expect(await p.value().process?.pid == getpid())
        }
        #expect(await pending[6].value().process == nil)  // no such socket
        #expect(await pending[7].value() == .remote)
    }
}

/// The process index's one-socket `record` (what a missed guess calls) against the general one it
/// shortcuts: the same operations leave the same guesses and the same claims.
@Suite("Caller attribution: process index")
struct ProcessIndexTests {
    @Test("recording one socket is the general record of one socket, over random histories")
    func singleRecordMatchesGeneral() throws {
        let me = try #require(ProcDir(root: "/proc", pid: getpid()))
        let process = CallerProcess(pid: getpid(), uid: getuid())
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var single = ProcessIndex(capacity: 4)
            var general = ProcessIndex(capacity: 4)
            single.insert(me, process: process, uid: getuid())
            general.insert(me, process: process, uid: getuid())
            let start = ContinuousClock.now
            for step in 0..<60 {
                let fd = Int32.random(in: 3...10, using: &rng)
                let inode = UInt64.random(in: 1...12, using: &rng)
                let now = start + .milliseconds(step)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    single.freed(Claim(pid: getpid(), fd: fd, inode: inode), at: now)
                    general.freed(Claim(pid: getpid(), fd: fd, inode: inode), at: now)
                case 1:
                    single.record(pid: getpid(), fd: fd, inode: inode)
                    general.record(pid: getpid(), sockets: CollectionOfOne((fd: fd, inode: inode)))
                default:
                    let a = single.claim(inode: inode).map { $0.1 }
                    let b = general.claim(inode: inode).map { $0.1 }
                    #expect(a == b)
                }
                let ga = single.candidates(uid: getuid(), now: now).flatMap(\.fds)
                let gb = general.candidates(uid: getuid(), now: now).flatMap(\.fds)
                #expect(ga == gb)
            }
        }
    }
}
