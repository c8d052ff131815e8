import Foundation
import IMDSControlPlane
import IMDSCore
import IMDSRuntime
import IMDSServer
import IMDSTesting
import Testing

/// What only sockets show: the close after each response, HEAD, 301, malformed input.
@Suite("Live data plane", .serialized)
struct LiveServerTests {
    static func withServer(_ body: (Int) async throws -> Void) async throws {
        let imds = TestIMDS()
        let live = try await imds.startLive()
        do {
            try await body(live.dataAddress.port)
        } catch {
            await live.stop()
            throw error
        }
        await live.stop()
    }

    @Test func closesAfterEachResponseEvenWithKeepAlive() async throws {
        try await Self.withServer { port in
            let r = try RawHTTP.exchange(port: port, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: keep-alive\r\n\r\n")
            #expect(r.closedByServer)
            #expect(r.statusLine == "HTTP/1.1 200 OK")
            #expect(r.header("Connection") == "close")
            #expect(r.header("Server") == "EC2ws")
            #expect(r.body == "i-0abc1234def567890")
        }
    }

    @Test func pipelinedRequestsGetOneResponse() async throws {
        try await Self.withServer { port in
            let req = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n"
            let r = try RawHTTP.exchange(port: port, req + req + req)
            #expect(r.closedByServer)
            #expect(r.text.components(separatedBy: "HTTP/1.1 200 OK").count == 2)
        }
    }

    /// A client that sends more than its request (more than the server reads before answering)
    /// still gets the answer. The lean loop sends the answer and the FIN in one segment only after
    /// one whole request and nothing else: closing with unread bytes resets the connection, and a
    /// reset drops unsent data (without that rule, 0 of 50 such clients got an answer).
    @Test func aClientThatSendsMoreThanItsRequestStillGetsTheAnswer() async throws {
        try await Self.withServer { port in
            let req = Array("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            for extra in [10, 100_000, 1_000_000] {
                for _ in 0..<5 {
                    let r = try RawHTTP.exchange(port: port, req + [UInt8](repeating: 0x78, count: extra))
                    #expect(r.statusLine == "HTTP/1.1 200 OK", "\(extra) bytes after the request")
                    #expect(r.body == "i-0abc1234def567890")
                }
            }
        }
    }

    @Test func headAnnouncesLengthWithoutBody() async throws {
        try await Self.withServer { port in
            let r = try RawHTTP.exchange(port: port, "HEAD /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(r.status == 200)
            #expect(r.header("Content-Length") == "19")
            #expect(r.body.isEmpty)
            #expect(r.closedByServer)
        }
    }

    @Test func redirectLocation() async throws {
        try await Self.withServer { port in
            let r = try RawHTTP.exchange(port: port, "GET /latest/meta-data/iam/security-credentials HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
            #expect(r.statusLine == "HTTP/1.1 301 Moved Permanently")
            #expect(r.header("Location") == "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
            #expect(r.header("Content-Length") == "0")
        }
    }

    @Test func tokenRoundTripAndNotAllowed() async throws {
        try await Self.withServer { port in
            let put = try RawHTTP.exchange(port: port, "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n")
            #expect(put.status == 200)
            #expect(put.body.count == 56)
            #expect(put.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "60")
            let get = try RawHTTP.exchange(port: port, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nx-aws-ec2-metadata-token: \(put.body)\r\n\r\n")
            #expect(get.status == 200)
            let notAllowed = try RawHTTP.exchange(port: port, "GET /latest/api/token HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(notAllowed.statusLine == "HTTP/1.1 405 Not Allowed")
            #expect(notAllowed.header("Allow") == "OPTIONS, PUT")
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/9.9\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ])
    func malformedRequestsGet4xxAndClose(request: String) async throws {
        try await Self.withServer { port in
            let r = try RawHTTP.exchange(port: port, request)
            #expect(r.closedByServer)
            #expect((400...499).contains(r.status), "\(r.statusLine)")
        }
    }

    @Test func oversizedHeadersGet431() async throws {
        try await Self.withServer { port in
            let big = String(repeating: "a", count: 100_000)
            let r = try RawHTTP.exchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n")
            #expect(r.closedByServer)
            #expect(r.status == 431)
        }
    }

    @Test func nonUTF8AndNULBytesAreNot5xx() async throws {
        try await Self.withServer { port in
            var bytes = Array("GET /latest/meta-data/\u{FF}".utf8)
            bytes += [0xFF, 0xFE, 0x00]
            bytes += Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            let r = try RawHTTP.exchange(port: port, bytes)
            #expect(r.closedByServer)
            #expect(r.status != 0 && r.status < 500)
            let pct = try RawHTTP.exchange(port: port, "GET /latest/meta-data/%ZZ%2 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(pct.status == 404)
            let long = try RawHTTP.exchange(port: port, "GET /" + String(repeating: "a/", count: 3000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(long.status == 404)
        }
    }

    @Test func bodyOnGetIsIgnored() async throws {
        try await Self.withServer { port in
            let r = try RawHTTP.exchange(port: port, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            #expect(r.status == 200)
            #expect(r.body == "i-0abc1234def567890")
        }
    }

    /// The server `imds serve` runs (``ServerRuntime``) over `imds`'s store, on 127.0.0.1 and [::1]
    /// port 0; `changes` yields true / false each time the IPv6 listener starts / stops.
    static func runtimeWithIPv6(_ imds: TestIMDS) async throws -> (runtime: ServerRuntime, running: Task<Void, Never>, changes: AsyncStream<Bool>) {
        let (changes, continuation) = AsyncStream<Bool>.makeStream()
        let configuration = ServerConfiguration(
            dataListen: [ListenAddress(host: "127.0.0.1", port: 0), ListenAddress(host: "::1", port: 0)],
            controlListen: ListenAddress(host: "127.0.0.1", port: 0), store: .provided(imds.store), callerAttribution: false,
            identity: TestIMDS.identity)
        let runtime = try await ServerRuntime.open(configuration) { line in
            if line.hasSuffix("(http-protocol-ipv6 enabled)") { continuation.yield(true) }
            if line.hasSuffix("(http-protocol-ipv6 disabled)") { continuation.yield(false) }
        }
        try await runtime.start()
        return (runtime, Task { await runtime.run() }, changes)
    }

    /// The next listener change, or nil after 10 s (bounded: a missing push fails the test).
    static func next(_ changes: AsyncStream<Bool>) async -> Bool? {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask { var it = changes.makeAsyncIterator(); return await it.next() }
            group.addTask { try? await Task.sleep(for: .seconds(10)); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// `ModifyInstanceMetadataOptions HttpProtocolIpv6=enabled`, sent to the EC2 API over its socket,
    /// brings the IPv6 listener up through the store's change stream (nothing polls), and `disabled`
    /// takes it down again.
    @Test func anEC2ModifyReachesTheIPv6ListenerThroughTheChangeStream() async throws {
        let imds = TestIMDS()
        let id = imds.store.snapshot.primaryInstanceID
        let (runtime, running, changes) = try await Self.runtimeWithIPv6(imds)
        #expect(runtime.network.inactiveIPv6Addresses.count == 1)
        let control = try #require(runtime.controlAddresses.first)
        /// Sends the modify from a dispatch thread: a blocking socket read on the cooperative pool
        /// could starve the control plane's own (async) handler on a 2-core machine.
        func modify(_ value: String) async throws -> Int {
            let body = "Action=ModifyInstanceMetadataOptions&Version=2016-11-15&InstanceId=\(id)&HttpProtocolIpv6=\(value)"
            let request = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let port = control.port
            return try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
                Thread.detachNewThread { c.resume(with: Result { try RawHTTP.exchange(port: port, request).status }) }
            }
        }
        #expect(try await modify("enabled") == 200)
        guard await Self.next(changes) == true, let v6 = runtime.dataAddresses.first(where: \.isIPv6) else {
            await runtime.triggerGracefulShutdown()
            await running.value
            Issue.record("the IPv6 listener did not come up (no IPv6 loopback on this machine?)")
            return
        }
        let get = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: [fd00:ec2::254]\r\n\r\n"
        #expect(try RawHTTP.exchange(host: "::1", port: v6.port, get).status == 200)
        #expect(try await modify("disabled") == 200)
        #expect(await Self.next(changes) == false)
        #expect(throws: (any Error).self) { try RawHTTP.exchange(host: "::1", port: v6.port, get) }
        await runtime.triggerGracefulShutdown()
        await running.value
    }

    /// IPv6 listeners serve only while http-protocol-ipv6 is enabled, follow changes applied to the
    /// store, and come back on the port they had.
    @Test func ipv6ListenerFollowsTheOption() async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-protocol-ipv6: enabled\n")
        let (runtime, running, changes) = try await Self.runtimeWithIPv6(imds)
        guard await Self.next(changes) == true, let v6 = runtime.dataAddresses.first(where: \.isIPv6) else {
            await runtime.triggerGracefulShutdown()
            await running.value
            Issue.record("no IPv6 loopback on this machine")
            return
        }
        let get = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: [fd00:ec2::254]\r\n\r\n"
        #expect(try RawHTTP.exchange(host: "::1", port: v6.port, get).status == 200)

        let id = imds.store.snapshot.instanceIDs[0]
        var o = imds.instance.options
        o.httpProtocolIPv6 = .disabled
        try await imds.store.apply([.setOptions(instanceID: id, o)])
        #expect(await Self.next(changes) == false)
        #expect(throws: (any Error).self) { try RawHTTP.exchange(host: "::1", port: v6.port, get) }
        #expect(runtime.network.inactiveIPv6Addresses.map(\.port) == [v6.port])

        o.httpProtocolIPv6 = .enabled
        try await imds.store.apply([.setOptions(instanceID: id, o)])
        #expect(await Self.next(changes) == true)
        #expect(try RawHTTP.exchange(host: "::1", port: v6.port, get).status == 200)
        await runtime.triggerGracefulShutdown()
        await running.value
    }
}
