import Foundation
import IMDSCore
import IMDSServer
import IMDSTesting
import Logging
import ServiceLifecycle
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The service in a `ServiceGroup`: a graceful shutdown lets the request in flight finish, then
/// closes the listeners.
@Suite("Lifecycle")
struct LifecycleTests {
    @Test func gracefulShutdownDrainsTheRequestInFlight() async throws {
        var config = IMDSConfig.embeddedDefault
        config.faults = [Fault(kind: .latency(milliseconds: 600), pathPattern: "/latest/meta-data/ami-id")]
        let imds = TestIMDS(config: config)
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [ListenAddress(host: "127.0.0.1", port: 0)], controlListen: [],
                                 drainTimeout: .seconds(60)))
        try await service.start()
        let port = try #require(service.dataAddresses.first).port
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        // The slow request, on a thread of its own: a blocking read must not hold the cooperative pool,
        // and Dispatch's global queue is only as wide as the core count on Linux, so other tests'
        // blocking work there delayed this request past the wait below.
        let slow = Task {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
                Thread.detachNewThread {
                    c.resume(with: Result { try RawHTTP.exchange(port: port, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n").status })
                }
            }
        }
        // Until the request is in flight (it then waits 600 ms); bounded at 10 s.
        for _ in 0..<1000 where service.openConnections.data == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(service.openConnections.data == 1)
        await group.triggerGracefulShutdown()
        #expect(try await slow.value == 200)
        try await running.value
        #expect(throws: (any Error).self) { try RawHTTP.exchange(port: port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
    }

    /// A connection that never sends its request is closed when the drain timeout passes: it does
    /// not hold the shutdown until its (much later) request deadline.
    @Test func anIdleConnectionDoesNotHoldShutdownPastTheDrainTimeout() async throws {
        let imds = TestIMDS()
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [ListenAddress(host: "127.0.0.1", port: 0)], controlListen: [],
                                 limits: ListenerLimits(requestTimeoutSeconds: 3600), drainTimeout: .milliseconds(200)))
        try await service.start()
        let port = try #require(service.dataAddresses.first).port
        let fd = try RawHTTP.connect(host: "127.0.0.1", port: port)
        defer { close(fd) }
        RawHTTP.send(fd, Array("GET /latest/meta-".utf8))  // part of a request line, never finished
        for _ in 0..<1000 where service.openConnections.data == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(service.openConnections.data == 1)
        // Should the drain not close it, this (and not the test's hang) ends the connection after 60 s.
        let rescue = Task { () -> Bool in
            do { try await Task.sleep(for: .seconds(60)) } catch { return false }
            shutdown(fd, Int32(SHUT_RDWR))
            return true
        }
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await running.value
        rescue.cancel()
        #expect(await rescue.value == false, "the drain did not close the idle connection")
        let result = RawHTTP.readAll(fd)
        #expect(result.closedByServer && result.bytes.isEmpty)
        #expect(service.openConnections.data == 0)
    }

    /// Once shutting down, the service opens no more listeners (a late IPv6 reconcile cannot leave
    /// one bound), and a data listener opened while running is drained with the rest.
    @Test func noListenerOpensOnceShuttingDown() async throws {
        let imds = TestIMDS()
        let service = IMDSService(
            dataPlane: imds.dataPlane, controlPlane: nil,
            configuration: .init(dataListen: [ListenAddress(host: "127.0.0.1", port: 0)], controlListen: []))
        try await service.start()
        let extra = try await service.openDataListener(ListenAddress(host: "127.0.0.1", port: 0))
        #expect(service.dataAddresses.contains(extra))
        await service.shutdown()
        #expect(service.dataAddresses.isEmpty)
        #expect(throws: (any Error).self) { try RawHTTP.exchange(port: extra.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") }
        await #expect(throws: IMDSService.Stopped.self) { try await service.openDataListener(ListenAddress(host: "127.0.0.1", port: 0)) }
    }
}
