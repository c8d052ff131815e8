import Foundation
import IMDSCore
import IMDSRuntime
import IMDSServer
import IMDSTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 14's isolation under load, live: one instance's flood (idle connections, or requests)
/// does not starve another instance. Each test prints its figures.
@Suite("Fleet throttling")
struct FleetThrottlingTests {
    /// A is the instance of 127.0.0.2, .5 and .6; B of 127.0.0.3.
    static func fleet(throttle: String = "") throws -> IMDSConfig {
        try IMDSConfig.parse(Data("""
            instances:
              - {instance-id: i-0aaaaaaaaaaaaaaa1, local-ipv4: 10.0.1.31, caller-addresses: [127.0.0.2, 127.0.0.5, 127.0.0.6]}
              - {instance-id: i-0bbbbbbbbbbbbbbb2, local-ipv4: 10.0.1.32, caller-addresses: [127.0.0.3]}
            \(throttle)
            """.utf8), isJSON: false)
    }

    /// One GET of instance-id from `source`, on its own connection.
    static func get(_ port: Int, from source: String) -> RawHTTP.Result? {
        guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port, source: source) else { return nil }
        defer { close(fd) }
        RawHTTP.send(fd, Array(AbuseTests.get.utf8))
        return RawHTTP.readAll(fd)
    }

    static func withServer(_ config: IMDSConfig, limits: ListenerLimits = ListenerLimits(),
                           _ body: @Sendable (ServerRuntime, Int) async throws -> Void) async throws {
        let runtime = try await ServerRuntime.open(ServerConfiguration(
            config: config, dataListen: [ListenAddress(host: "127.0.0.1", port: 0)],
            controlListen: ListenAddress(host: "127.0.0.1", port: 0), callerAttribution: false, limits: limits,
            identity: TestIMDS.identity))
        try await runtime.start()
        let running = Task { await runtime.run() }
        do {
            try await body(runtime, try #require(runtime.dataAddresses.first).port)
        } catch {
            await runtime.triggerGracefulShutdown()
            await running.value
            throw error
        }
        await runtime.triggerGracefulShutdown()
        await running.value
    }

    /// Instance A holds idle connections from three of its addresses, as fast as it can, while B
    /// asks for its instance id 200 times. Counted per instance, A never holds more than the
    /// per-source cap (by address it would hold three times as many), and B is always served.
    @Test func anInstancesIdleConnectionsCountTogether() async throws {
        let limits = ListenerLimits(maxConnections: 256, maxConnectionsPerSource: 32)
        try await Self.withServer(try Self.fleet(), limits: limits) { runtime, port in
            let state = FloodState()
            let sources = ["127.0.0.2", "127.0.0.5", "127.0.0.6"]
            let (held, answered) = try await state.flood(port: port, from: sources, atMost: 400, fill: 300) { () -> Int in
                var ok = 0
                for _ in 0..<200 {
                    state.maxOpen.store(max(state.maxOpen.load(ordering: .relaxed), runtime.service.openConnections.data), ordering: .relaxed)
                    guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port, source: "127.0.0.3") else { continue }
                    RawHTTP.send(fd, Array(AbuseTests.get.utf8))
                    let r = RawHTTP.readAll(fd)
                    if r.status == 200 && r.body == "i-0bbbbbbbbbbbbbbb2" { ok += 1 }
                    close(fd)
                }
                return ok
            }
            let maxOpen = state.maxOpen.load(ordering: .relaxed)
            print("fleet throttling: instance A opened \(held) idle connections from \(sources.joined(separator: ", ")); "
                + "at most \(maxOpen) open (cap \(limits.maxConnectionsPerSource) per instance); "
                + "instance B (127.0.0.3) answered \(answered) of 200 (\(answered * 100 / 200) %)")
            #expect(held >= 300)
            // One cap for A's three addresses (counted by address they would hold 3 × 32); a shed
            // connection is counted until its close completes, so each flooder may be one over for
            // a moment, and B's own connection is open too.
            #expect(maxOpen <= limits.maxConnectionsPerSource + sources.count + 1, "A's three addresses share one cap")
            #expect(answered == 200)
        }
    }

    /// With `throttle:`, A floods requests from four threads while B makes 100 (within its
    /// allowance): A gets EC2's 429 beyond its allowance, B is always answered.
    @Test func aNoisyInstanceIsThrottledAloneLive() async throws {
        let config = try Self.fleet(throttle: "throttle: {requests-per-second: 100, burst: 150}")
        try await Self.withServer(config) { runtime, port in
            let flood = RequestFlood()
            let flooders = (0..<4).map { _ in
                Task { [flood] in await AbuseTests.onThread {
                    var n = 0
                    while !flood.stop.load(ordering: .relaxed) && n < 20_000 {
                        n += 1
                        guard let r = Self.get(port, from: "127.0.0.2") else { continue }
                        flood.counts.withLock {
                            switch r.status {
                            case 200: $0.ok += 1
                            case 429: $0.throttled += 1
                            default: $0.other += 1
                            }
                        }
                    }
                } }
            }
            for _ in 0..<250 where flood.counts.withLock({ $0.throttled }) < 50 { try await Task.sleep(for: .milliseconds(20)) }
            let answered = await AbuseTests.onThread { () -> Int in
                var ok = 0
                for _ in 0..<100 {
                    if let r = Self.get(port, from: "127.0.0.3"), r.status == 200,
                        r.body == "i-0bbbbbbbbbbbbbbb2" { ok += 1 }
                }
                return ok
            }
            flood.stop.store(true, ordering: .relaxed)
            for f in flooders { await f.value }
            let c = flood.counts.withLock { $0 }
            let page = try #require(Self.get(port, from: "127.0.0.2"))
            print("fleet throttling: instance A sent \(c.ok + c.throttled + c.other) requests (100/s, burst 150): \(c.ok) answered, "
                + "\(c.throttled) throttled (429); instance B answered \(answered) of 100 (\(answered) %)")
            #expect(c.throttled > 0)
            #expect(c.other == 0)
            #expect(answered == 100)
            if page.status == 429 { #expect(page.body.contains("429 - Too Many Requests")) }
            _ = runtime
        }
    }
}

/// What the request flood of ``FleetThrottlingTests`` counts.
final class RequestFlood: Sendable {
    let stop = Atomic<Bool>(false)
    let counts = Mutex<(ok: Int, throttled: Int, other: Int)>((0, 0, 0))
}
