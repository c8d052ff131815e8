import Foundation
import IMDSCore
@testable import IMDSServer
import IMDSTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The lean data-plane loop (``LeanDataListener``) against the NIO path, request by request: the
/// same raw bytes sent to both must get the same status and body (the Date header may differ) and
/// a close. The other data-plane suites run on whichever transport `IMDS_DATA_PLANE` picks; this
/// one always compares the two.
@Suite("Lean data plane", .serialized)
struct LeanDataPlaneTests {
    static let requests: [String] = [
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.1\nHost: x\n\n",
        "\nGET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\n\r\n",
        "GET /latest/meta-data/  HTTP/1.1\r\n\r\n",
        "GET /latest/meta-data/ x HTTP/1.1\r\n\r\n",
        "\n\n\nGET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n",
        "\r\n\nGET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n",
        "\r\n\r\nGET /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "\r\n\r\n\r\nGET /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "HEAD /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 3\r\n\r\nabc",
        "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "PUT /latest/api/token HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\n: x\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\nX-A : x\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\nX-A: \u{01}\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1\r\nX-A: b\rc\r\n\r\n",
        "FOO /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "get /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "DELETE /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "POST /latest/meta-data/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET /latest/meta-data/ HTTP/2.0\r\n\r\n",
        "GET HTTP/1.1\r\nHost: x\r\n\r\n",  // no target (found by FuzzHTTPParser: it trapped the lean loop)
        "GET /latest/meta-data/ HTTP/1.2\r\n\r\n",
        "GET /latest/meta-data/ HTTP/0.9\r\n\r\n",
        "GET /latest/meta-data/ HTTP/1.1 \r\n\r\n",
        "GET  /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET /latest/meta-data/instance-id?x=1 HTTP/1.1\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\nGET /latest/meta-data/ HTTP/1.1\r\n\r\n",
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\nX",
        "GET /\r\n",
        "GET\r\n",
        "\r\n\r\n\r\n",
    ]

    static func listener(_ transport: DataPlaneTransport, _ limits: ListenerLimits = ListenerLimits(), spin: UInt64 = 0) async throws -> (IMDSService, HTTPListener) {
        let service = IMDSService(
            dataPlane: TestIMDS().dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [], controlListen: [], limits: limits, dataPlaneTransport: transport,
                                 dataPlaneSpinMicroseconds: spin))
        return (service, try await service.startDataListener(ListenAddress(host: "127.0.0.1", port: 0)))
    }

    /// A request timeout too large for nanoseconds means no deadline (it trapped on overflow).
    @Test func aHugeRequestTimeoutSaturates() async throws {
        let (service, lean) = try await Self.listener(.lean, ListenerLimits(requestTimeoutSeconds: .max))
        let port = lean.boundAddress.port
        let answer = await AbuseTests.onThread { () -> RawHTTP.Result? in
            guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
            defer { close(fd) }
            RawHTTP.send(fd, Array("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            return RawHTTP.readAll(fd)
        }
        #expect(answer?.status == 200)
        await lean.drain(timeout: .seconds(1))
        await service.shutdown()
    }

    /// Status line, headers but Date, body.
    static func comparable(_ r: RawHTTP.Result?) -> String {
        guard let r else { return "no connection" }
        // Dates move, and every token is new: keep their shape only.
        let kept = r.text.components(separatedBy: "\r\n").filter { !$0.hasPrefix("Date:") && !$0.hasPrefix("Last-Modified:") }
            .map { $0.hasPrefix("AQAE") ? "<token>" : $0 }
        return kept.joined(separator: "\r\n") + (r.closedByServer ? " [closed]" : " [open]")
    }

    @Test("the same bytes get the same answer from the lean loop and from NIO", arguments: requests)
    func sameAnswerAsNIO(request: String) async throws {
        let (nioService, nio) = try await Self.listener(.nio)
        let (leanService, lean) = try await Self.listener(.lean)
        let (np, lp) = (nio.boundAddress.port, lean.boundAddress.port)
        let fromNIO = await AbuseTests.onThread { try? RawHTTP.exchange(port: np, request) }
        let fromLean = await AbuseTests.onThread { try? RawHTTP.exchange(port: lp, request) }
        await nio.close()
        await lean.close()
        await nioService.shutdown()
        await leanService.shutdown()
        #expect(Self.comparable(fromLean) == Self.comparable(fromNIO), "\(request.debugDescription)")
    }

    /// A loop that polls after work (``IMDSService/Configuration/dataPlaneSpinMicroseconds``) answers
    /// every request as a sleeping one, one after the other (the second arrives while it polls), and
    /// still enforces the request deadline (its sweep runs while it polls).
    @Test("a polling loop answers as a sleeping one and still closes silent connections")
    func pollingLoop() async throws {
        let (sleeping, a) = try await Self.listener(.lean)
        let (polling, b) = try await Self.listener(.lean, ListenerLimits(requestTimeoutSeconds: 1), spin: 1000)
        let (pa, pb) = (a.boundAddress.port, b.boundAddress.port)
        for request in Self.requests {
            let fromSleeping = await AbuseTests.onThread { try? RawHTTP.exchange(port: pa, request) }
            let fromPolling = await AbuseTests.onThread { try? RawHTTP.exchange(port: pb, request) }
            #expect(Self.comparable(fromPolling) == Self.comparable(fromSleeping), "\(request.debugDescription)")
        }
        // A connection that never sends: closed by the deadline sweep, with the loop polling for traffic.
        let silent = try RawHTTP.connect(host: "127.0.0.1", port: pb)
        defer { close(silent) }
        let accepted = await AbuseTests.eventually { b.openConnections == 1 }
        #expect(accepted)
        let closed = await AbuseTests.eventually { b.openConnections == 0 }
        #expect(closed)
        await a.close()
        await b.close()
        await sleeping.shutdown()
        await polling.shutdown()
    }

    @Test("a request sent byte by byte is served, and the connection leaves the table")
    func byteByByte() async throws {
        let (service, lean) = try await Self.listener(.lean)
        let port = lean.boundAddress.port
        let split = await AbuseTests.onThread { () -> RawHTTP.Result? in
            guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
            defer { close(fd) }
            for byte in "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n".utf8 { RawHTTP.send(fd, [byte]) }
            return RawHTTP.readAll(fd)
        }
        #expect(split?.status == 200)
        #expect(split?.body == "i-0abc1234def567890" || split?.body.hasPrefix("i-") == true)
        let settled = await AbuseTests.eventually { lean.openConnections == 0 }
        #expect(settled)
        await lean.drain(timeout: .seconds(1))
        await service.shutdown()
    }

    @Test("drain closes a connection that never sends its request once the timeout is over")
    func drainClosesIdle() async throws {
        let (service, lean) = try await Self.listener(.lean)
        let port = lean.boundAddress.port
        let fd = try RawHTTP.connect(host: "127.0.0.1", port: port)
        defer { close(fd) }
        let accepted = await AbuseTests.eventually { lean.openConnections == 1 }
        #expect(accepted)
        await lean.drain(timeout: .milliseconds(100))
        #expect(lean.openConnections == 0)
        let r = await AbuseTests.onThread { RawHTTP.readAll(fd) }
        #expect(r.closedByServer)
        await service.shutdown()
    }
}
