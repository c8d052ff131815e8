import Foundation
import HashTreeCollections
import IMDSCore
import Testing

/// Prints what the embedded store costs (docs/store.md); asserts nothing about time. Off unless
/// `IMDS_STORE_REPORT=1`:
///
///     IMDS_STORE_REPORT=1 swift test --filter StoreCostReport
@Suite("Store cost report", .enabled(if: ProcessInfo.processInfo.environment["IMDS_STORE_REPORT"] == "1"))
struct StoreCostReport {
    static func ms(_ d: Duration) -> String {
        String(format: "%.3f ms", Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
    }

    @Test func journalLatencyAndGroupCommit() async throws {
        let f = try await StoreFixture(.durable)
        defer { f.cleanUp() }
        let store = f.store, id = f.id
        let clock = ContinuousClock()
        let sequential = 200
        let t0 = clock.now
        for _ in 0..<sequential { try await store.apply([.invalidateTokens(instanceID: id)]) }
        let seq = clock.now - t0
        print("store: \(sequential) sequential batches: \(Self.ms(seq / sequential)) per acknowledged batch (one fsync each)")
        for writers in [8, 64] {
            let batches = 512
            let t1 = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        for _ in 0..<(batches / writers) { _ = w; try await store.apply([.invalidateTokens(instanceID: id)]) }
                    }
                }
                try await group.waitForAll()
            }
            let conc = clock.now - t1
            print("store: \(batches) batches from \(writers) concurrent writers: \(Self.ms(conc / batches)) per batch (group commit)")
        }
        #expect(store.snapshot.primary.tokenGeneration == UInt64(sequential + 1024))
    }

    @Test func changeCostDoesNotGrowWithRecords() throws {
        let clock = ContinuousClock()
        for n in [10, 10_000] {
            var state = DurableState()
            for i in 0..<n { state.records[String(format: "i-%017x", i)] = InstanceRecord(tokenGeneration: UInt64(i)) }
            let rounds = 2_000
            var kept: [DurableState] = []
            kept.reserveCapacity(rounds)
            let t0 = clock.now
            for r in 0..<rounds {
                // A change on a copy, the old value kept alive (as a published snapshot is).
                var next = state
                try next.apply(.invalidateTokens(instanceID: String(format: "i-%017x", r % n)))
                kept.append(next)
            }
            let d = clock.now - t0
            print("store: one change with \(n) instance records: \(Self.ms(d / rounds)) (copy-on-write hash trie)")
            let encoded = try JSONEncoder().encode(state)
            print("store: compacted snapshot of \(n) records: \(encoded.count / 1024) KiB")
            #expect(kept.count == rounds)
        }
    }
}
