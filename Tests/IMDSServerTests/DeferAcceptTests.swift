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
        let imds = TestIMDS()
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(
                dataListen: [], controlListen: [], limits: limits, dataPlaneTransport: .lean,
                dataPlaneDeferAcceptSeconds: deferAccept))
        let listener = try await service.startDataListener(ListenAddress(host: "127.0.0.1", port: 0))
        do {
            try await body(listener)
        } catch {
            await listener.close()
            await service.shutdown()
            throw error
        }
        await listener.close()
        await service.shutdown()
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
