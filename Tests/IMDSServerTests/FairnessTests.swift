import Foundation
import IMDSCore
@testable import IMDSServer
import IMDSTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One client cannot starve the others (issue 16.5): connections are capped per source address,
/// the oldest idle ones are shed first, and no single source can take the listener's reserve.
@Suite("Connection fairness", .serialized)
struct FairnessTests {
    @Test("the per-source and listener caps shed the oldest idle connection, and refuse only when none is idle")
    func table() {
        let closed = Mutex<[String]>([])
        let t = ConnectionTable(maxTotal: 4, maxPerSource: 2)
        func admit(_ key: String, _ name: String) -> ConnectionSlot? {
            t.admit(key: key) { closed.withLock { $0.append(name) } }
        }
        let a1 = admit("a", "a1"), a2 = admit("a", "a2")
        #expect(a1 != nil && a2 != nil)
        // The third from `a` passes its source's cap: a1, the oldest idle one, goes.
        let a3 = admit("a", "a3")
        #expect(a3 != nil)
        #expect(closed.withLock { $0 } == ["a1"])
        // Answering connections are never shed: with both of `a`'s answering, a fourth is refused.
        a2?.markAnswering()
        a3?.markAnswering()
        #expect(admit("a", "a4") == nil)
        #expect(t.refused.load(ordering: .relaxed) == 1)
        // Other sources fill the listener; past its cap the source with the most connections that
        // has an idle one gives up its oldest.
        let b1 = admit("b", "b1"), b2 = admit("b", "b2")
        #expect(b1 != nil && b2 != nil && t.open == 4)
        let c1 = admit("c", "c1")
        #expect(c1 != nil)
        #expect(closed.withLock { $0 } == ["a1", "b1"])
        #expect(t.open == 4)
        // A closed connection leaves the table; one that was shed is not counted twice.
        if let b1 { t.remove(b1) }
        #expect(t.open == 4)
        if let b2 { t.remove(b2) }
        #expect(t.open == 3)
        // A source whose connections have all closed starts from zero: two fit again without
        // shedding anything, the third sheds the oldest of the two.
        if let a2 { t.remove(a2) }
        if let a3 { t.remove(a3) }
        #expect(t.open == 1)
        let again = [admit("a", "again1"), admit("a", "again2")]
        #expect(again.allSatisfy { $0 != nil } && t.open == 3)
        #expect(closed.withLock { $0 } == ["a1", "b1"])
        #expect(admit("a", "again3") != nil)
        #expect(closed.withLock { $0 } == ["a1", "b1", "again1"])
        #expect(t.open == 3 && t.beginDrain().count == 3)
        #expect(admit("d", "d1") == nil)
    }

    @Test("out of descriptors, the idle connections of the biggest source go first, answering ones never")
    func shedIdleForRoom() {
        let closed = Mutex<[String]>([])
        let t = ConnectionTable(maxTotal: 100, maxPerSource: 100)
        func admit(_ key: String, _ name: String) -> ConnectionSlot? {
            t.admit(key: key) { closed.withLock { $0.append(name) } }
        }
        let flood = (1...3).map { admit("flood", "f\($0)") }
        let caller = admit("caller", "c1")
        flood[0]?.markAnswering()
        #expect(t.shedIdle(count: 2) == 2)
        #expect(closed.withLock { $0 } == ["f2", "f3"])
        // Only the caller is idle now; then nothing is left to shed.
        #expect(t.shedIdle(count: 5) == 1)
        #expect(closed.withLock { $0 } == ["f2", "f3", "c1"])
        #expect(t.shedIdle(count: 5) == 0)
        #expect(t.open == 1 && t.shed.load(ordering: .relaxed) == 3)
        _ = caller
    }

    /// A flood of idle connections from 127.0.0.2 … 127.0.0.6 (more than the listener's cap in
    /// all, more than the per-source cap from each) runs while 127.0.0.1 asks for instance-id 200
    /// times, one connection each.
    @Test("a flood of idle connections from other addresses does not keep a well-behaved caller out")
    func floodFromOtherAddresses() async throws {
        let limits = ListenerLimits(maxConnections: 256, maxConnectionsPerSource: 64)
        try await AbuseTests.withListener(limits) { listener in try await flood(listener, limits) }
    }

    private func flood(_ listener: HTTPListener, _ limits: ListenerLimits) async throws {
        let port = listener.boundAddress.port
        let state = FloodState()
        // Each flooder opens connections that send half a request line and wait, as fast as it can,
        // until the caller is done (at most 600 each: bounded).
        let sources = (2...6).map { "127.0.0.\($0)" }
        let (held, answered) = try await state.flood(port: port, from: sources, atMost: 600, fill: 1000) { () -> Int in
            var ok = 0
            for _ in 0..<200 {
                state.maxOpen.store(max(state.maxOpen.load(ordering: .relaxed), listener.openConnections), ordering: .relaxed)
                guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port, source: "127.0.0.1") else { continue }
                RawHTTP.send(fd, Array(AbuseTests.get.utf8))
                if RawHTTP.readAll(fd).status == 200 { ok += 1 }
                close(fd)
            }
            return ok
        }
        let shed = listener.shedConnections
        let refused = listener.refusedConnections
        let openDuringFlood = state.maxOpen.load(ordering: .relaxed)
        print("fairness: flood of \(held) idle connections from \(sources.first!) … \(sources.last!) (at most \(openDuringFlood) open, "
            + "cap \(limits.maxConnections), \(limits.maxConnectionsPerSource) per source; \(shed) shed, \(refused) refused); "
            + "127.0.0.1 answered \(answered) of 200 (\(answered * 100 / 200) %)")
        #expect(held >= 1000)
        #expect(openDuringFlood <= limits.maxConnections)
        #expect(shed > 0)
        #expect(answered == 200)
    }
}

final class FloodState: Sendable {
    let stop = Atomic<Bool>(false)
    let opened = Atomic<Int>(0)
    let maxOpen = Atomic<Int>(0)

    /// Opens connections from `source` that send half a request line and wait, as fast as it can,
    /// until ``stop`` (at most `atMost`: bounded); returns them, for the caller to close.
    func holdIdleConnections(port: Int, from source: String, atMost: Int) -> [Int32] {
        var fds: [Int32] = []
        while !stop.load(ordering: .relaxed) && fds.count < atMost {
            guard let fd = try? RawHTTP.connect(host: "127.0.0.1", port: port, source: source) else { break }
            RawHTTP.send(fd, Array("GET /latest/meta-data/ HTTP/1.1\r\n".utf8))
            fds.append(fd)
            opened.wrappingAdd(1, ordering: .relaxed)
        }
        return fds
    }

    /// Holds idle connections from every address of `sources` (at most `atMost` each) until `fill`
    /// are open (or 5 s have passed), runs `probe` on its own thread while the flood holds, then
    /// stops the flood and closes its connections. Returns how many it held and what `probe` returned.
    func flood<T: Sendable>(
        port: Int, from sources: [String], atMost: Int, fill: Int, probe: @escaping @Sendable () -> T
    ) async throws -> (held: Int, result: T) {
        let flooders = sources.map { source in
            Task { [self] in await AbuseTests.onThread { self.holdIdleConnections(port: port, from: source, atMost: atMost) } }
        }
        for _ in 0..<250 where opened.load(ordering: .relaxed) < fill { try await Task.sleep(for: .milliseconds(20)) }
        let result = await AbuseTests.onThread(probe)
        stop.store(true, ordering: .relaxed)
        var held = 0
        for f in flooders {
            let fds = await f.value
            held += fds.count
            for fd in fds { close(fd) }
        }
        return (held, result)
    }
}
