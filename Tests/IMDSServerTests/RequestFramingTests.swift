import Foundation
import IMDSCore
@testable import IMDSServer
import IMDSTesting
import IMDSWire
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the listener does with bytes that are not one well-formed request (issue 16.8): bytes after
/// a complete request never cost its answer, and a request line without a version is answered at
/// once instead of waiting for the deadline.
@Suite("Request framing", .serialized)
struct RequestFramingTests {
    /// Answers after a pause (as the control plane does while it persists a change) and counts calls.
    final class SlowResponder: AsyncResponder {
        let calls = Atomic<Int>(0)
        func respond(to request: IMDSRequest) async -> IMDSResponse {
            calls.wrappingAdd(1, ordering: .relaxed)
            try? await Task.sleep(for: .milliseconds(100))
            let body = Array("applied".utf8)
            return IMDSResponse(status: 200, plane: .control, headers: [("Content-Length", String(body.count)), ("Connection", "close")], body: body)
        }
    }

    @Test("a stray byte after a complete control-plane request: the change is applied and acknowledged",
          arguments: ["X", "\r\n", "GET / HTTP/1.1\r\n\r\n", "\u{0}\u{1}garbage"])
    func strayBytesOnTheControlPlane(extra: String) async throws {
        let responder = SlowResponder()
        let service = IMDSService(
            dataPlane: TestIMDS().dataPlane, controlPlane: responder, configuration: .init(dataListen: [], controlListen: []))
        let listener = try await service.startControlListener(ListenAddress(host: "127.0.0.1", port: 0), responder)
        let port = listener.boundAddress.port
        let r = await AbuseTests.onThread {
            try? RawHTTP.exchange(port: port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab" + extra)
        }
        await listener.close()
        await service.shutdown()
        #expect(r?.status == 200, "\(r?.text.debugDescription ?? "no answer")")
        #expect(r?.body == "applied")
        #expect(responder.calls.load(ordering: .relaxed) == 1)
    }

    @Test("a stray byte after a data-plane request whose response is held (attribution) still gets the response")
    func strayByteWhileHeld() async throws {
        let hooks = DataPlaneHooks(
            accepted: { _, _ in nil }, completed: { _, _, _, _ in },
            hold: { _, resume in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { resume() }
                return true
            })
        let service = IMDSService(
            dataPlane: TestIMDS().dataPlane, controlPlane: nil, configuration: .init(dataListen: [], controlListen: []), hooks: hooks)
        let listener = try await service.startDataListener(ListenAddress(host: "127.0.0.1", port: 0))
        let port = listener.boundAddress.port
        let r = await AbuseTests.onThread { try? RawHTTP.exchange(port: port, AbuseTests.get + "X") }
        await listener.close()
        await service.shutdown()
        #expect(r?.status == 200, "\(r?.text.debugDescription ?? "no answer")")
    }

    @Test("a request line without an HTTP version is answered 400 at once, not at the deadline",
          arguments: ["GET /\r\n", "GET /latest/meta-data/\n", "GET\r\n", "GET / HTTP/1\r\n", "PUT /latest/api/token HTTP/\r\n"])
    func versionlessRequestLine(line: String) async throws {
        try await AbuseTests.withListener { l in
            let port = l.boundAddress.port
            let started = ContinuousClock.now
            let r = await AbuseTests.onThread { () -> RawHTTP.Result? in
                guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
                defer { close(fd) }
                RawHTTP.send(fd, Array(line.utf8))  // and nothing more: the client waits for an answer
                return RawHTTP.readAll(fd)  // gives up after 5 s, long before the 10 s deadline
            }
            #expect(r?.status == 400, "\(line.debugDescription): \(r?.text.debugDescription ?? "no answer")")
            #expect(r?.closedByServer == true)
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("empty lines before the request line, and a request line split across reads, are still served")
    func leadingEmptyLinesAndSplitLine() async throws {
        try await AbuseTests.withListener { l in
            let port = l.boundAddress.port
            let r = await AbuseTests.onThread { try? RawHTTP.exchange(port: port, "\r\n" + AbuseTests.get) }
            #expect(r?.status == 200)
            let split = await AbuseTests.onThread { () -> RawHTTP.Result? in
                guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port) else { return nil }
                defer { close(fd) }
                for piece in ["GET /latest/meta-data/instance-id HT", "TP/1.", "1\r", "\nHost: x\r\n\r\n"] {
                    RawHTTP.send(fd, Array(piece.utf8))
                    usleep(20_000)
                }
                return RawHTTP.readAll(fd)
            }
            #expect(split?.status == 200)
        }
    }
}
