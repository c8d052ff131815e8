import Foundation
import IMDSCore
@testable import IMDSServer
import IMDSTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The lean data plane's listening socket defers the accept until the request's first bytes are
/// there (`TCP_DEFER_ACCEPT`, docs/data-plane-loop.md). Callers see no difference: a slow sender is
/// answered, a silent connection is still closed, and 0 turns it off.
@Suite("Deferred accept", .serialized)
struct DeferAcceptTests {
    static func withListener(
        deferAccept: Int?, _ limits: ListenerLimits = ListenerLimits(), _ body: (HTTPListener) async throws -> Void
    ) async throws {
        try await AbuseTests.withListener(
            configuration: .init(
                dataListen: [], controlListen: [], limits: limits, dataPlaneTransport: .lean, dataPlaneDeferAcceptSeconds: deferAccept),
            body)
    }

    @Test("on by default (1 s), off with 0, and clamped to 30 s")
    func configuration() async throws {
        #expect(IMDSService.Configuration(dataPlaneDeferAcceptSeconds: nil).dataPlaneDeferAcceptSeconds == LeanDataListener.deferAcceptSeconds)
        #expect(IMDSService.Configuration(dataPlaneDeferAcceptSeconds: -5).dataPlaneDeferAcceptSeconds == 0)
        #expect(IMDSService.Configuration(dataPlaneDeferAcceptSeconds: 1 << 40).dataPlaneDeferAcceptSeconds == 30)
        try await Self.withListener(deferAccept: 1) { l in #expect(l.deferAccept > 0) }
        try await Self.withListener(deferAccept: 0) { l in #expect(l.deferAccept == 0) }
    }

    /// A connection that has sent nothing is not handed to the server yet (it holds no descriptor
    /// and no slot of the connection caps); its request, sent late, is answered as usual.
    @Test("a connection is handed over with its first bytes, and a late request is answered")
    func handedOverWithItsRequest() async throws {
        try await Self.withListener(deferAccept: 1) { l in
            let port = l.boundAddress.port
            let result = await AbuseTests.onThread { () -> (openWhileSilent: Int, status: Int)? in
                guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
                defer { close(fd) }
                usleep(300_000)
                let open = l.openConnections
                RawHTTP.send(fd, Array(AbuseTests.get.utf8))
                return (open, RawHTTP.readAll(fd).status)
            }
            #expect(result?.openWhileSilent == 0)
            #expect(result?.status == 200)
        }
    }

    /// Without the option the same silent connection is accepted at once (what the test above
    /// tells apart), and with it a connection that never sends anything is still closed: after the
    /// deferral the kernel hands it over and the request timeout applies.
    @Test("off, a silent connection is accepted at once; on, it is still closed without a byte")
    func silentConnections() async throws {
        try await Self.withListener(deferAccept: 0) { l in
            let port = l.boundAddress.port
            let fd = await AbuseTests.onThread { try? RawHTTP.connect(host: "127.0.0.1", port: port) }
            #expect(fd != nil)
            #expect(await AbuseTests.eventually { l.openConnections == 1 })
            if let fd { close(fd) }
        }
        try await Self.withListener(deferAccept: 1, ListenerLimits(requestTimeoutSeconds: 1)) { l in
            let port = l.boundAddress.port
            let r = await AbuseTests.onThread { () -> RawHTTP.Result? in
                guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
                defer { close(fd) }
                return RawHTTP.readAll(fd)  // gives up after 5 s: closedByServer means it was closed
            }
            #expect(r?.closedByServer == true)
            #expect(r?.bytes.isEmpty == true)
        }
    }
}

/// A caller that sends its requests one after another is served by one loop alone, which polls
/// between them, with the accept not deferred; the first sign of concurrent traffic gives the
/// listening socket back to every loop and defers the accept again (docs/data-plane-loop.md).
@Suite("Sequential callers", .serialized)
struct SequentialCallerTests {
    @Test("one loop serves a sequential caller, with accepts not deferred; concurrent traffic undoes both")
    func sequentialThenConcurrent() async throws {
        try await DeferAcceptTests.withListener(deferAccept: 1) { l in
            let port = l.boundAddress.port
            #expect(l.sequentialLoop == nil && l.deferAccept > 0)
            let statuses = await AbuseTests.onThread { () -> [Int] in
                (0..<40).map { _ in (try? RawHTTP.exchange(port: port, AbuseTests.get))?.status ?? 0 }
            }
            #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
            #expect(l.sequentialLoop != nil)
            #expect(l.deferAccept == 0)
            // Six connections open at once (requests sent after all are connected): concurrent.
            let concurrent = await AbuseTests.onThread { () -> [Int] in
                let fds = (0..<6).compactMap { _ in try? RawHTTP.connect(host: "127.0.0.1", port: port) }
                defer { for fd in fds { close(fd) } }
                usleep(50_000)
                for fd in fds { RawHTTP.send(fd, Array(AbuseTests.get.utf8)) }
                return fds.map { RawHTTP.readAll($0).status }
            }
            #expect(concurrent == Array(repeating: 200, count: 6))
            #expect(await AbuseTests.eventually { l.sequentialLoop == nil })
            #expect(l.deferAccept > 0)
            // And a sequential caller again is answered as before.
            let again = await AbuseTests.onThread { (try? RawHTTP.exchange(port: port, AbuseTests.get))?.status }
            #expect(again == 200)
        }
    }

    @Test("with polling off (0 µs) a sequential caller is still served by one loop alone")
    func withoutPolling() async throws {
        try await AbuseTests.withListener(
            configuration: .init(dataListen: [], controlListen: [], dataPlaneTransport: .lean, dataPlaneSpinMicroseconds: 0)
        ) { l in
            let port = l.boundAddress.port
            let statuses = await AbuseTests.onThread { () -> [Int] in
                (0..<20).map { _ in (try? RawHTTP.exchange(port: port, AbuseTests.get))?.status ?? 0 }
            }
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(l.sequentialLoop != nil)
        }
    }
}
