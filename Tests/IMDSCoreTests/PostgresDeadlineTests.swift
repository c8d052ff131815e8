import Foundation
import IMDSCore
@testable import IMDSPostgres
import PostgresNIO
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every PostgreSQL store write ends by its deadline, whatever the database does (issue 15: a write
/// once hung past the listener's request deadline while PostgreSQL was stopping). The gate and the
/// connection bound need no database; the store tests below need the test server.
@Suite(.timeLimit(.minutes(1)))
struct WriteDeadlineTests {
    @Test func theGateLetsTicketsInInOrder() async {
        let gate = WriteGate()
        let far = ContinuousClock.now + .seconds(60)
        let first = gate.ticket(), second = gate.ticket()
        #expect(await gate.wait(first, until: far))
        let order = Mutex<[Int]>([])
        let waiting = Task {
            let entered = await gate.wait(second, until: far)
            order.withLock { $0.append(2) }
            if entered { gate.release() }
            return entered
        }
        while gate.queued == 0 { await Task.yield() }
        order.withLock { $0.append(1) }
        gate.release()
        #expect(await waiting.value)
        #expect(order.withLock { $0 } == [1, 2])
    }

    @Test func aWaiterGivesUpAtItsDeadlineAndIsSkipped() async {
        let gate = WriteGate()
        let holder = gate.ticket()
        #expect(await gate.wait(holder, until: .now + .seconds(60)))
        // Queued behind a holder that never lets go before their deadlines: both give up.
        let soon = gate.ticket(), past = gate.ticket()
        #expect(await gate.wait(soon, until: .now + .milliseconds(50)) == false)
        #expect(await gate.wait(past, until: .now - .seconds(1)) == false)
        // The one after them enters as soon as the holder lets go: the abandoned tickets are skipped.
        let next = gate.ticket()
        let entered = Task { await gate.wait(next, until: .now + .seconds(60)) }
        while gate.queued == 0 { await Task.yield() }
        gate.release()
        #expect(await entered.value)
        gate.release()
        // And the gate still works afterwards.
        let last = gate.ticket()
        #expect(await gate.wait(last, until: .now + .seconds(60)))
        gate.release()
    }

    /// A server that completes the TCP handshake (the kernel does, from the backlog) and then never
    /// says anything: PostgresNIO's connect timeout covers only the handshake.
    @Test func aConnectionToAServerThatNeverAnswersFailsAtTheConnectTimeout() async throws {
        let (fd, port) = try silentListener()
        defer { close(fd) }
        let url = try PostgresURL("postgres://imds@127.0.0.1:\(port)/imds")
        var options = PostgresInstanceStore.Options(hostName: "deadline-test", connectTimeout: .milliseconds(300))
        options.logger.logLevel = .critical
        let started = ContinuousClock.now
        await #expect(throws: PostgresInstanceStore.ConnectTimedOut.self) {
            _ = try await PostgresInstanceStore.connect(url, options, role: "test", id: 1)
        }
        // A write's own deadline, when earlier than the connect timeout, ends it sooner.
        options.connectTimeout = .seconds(30)
        await #expect(throws: PostgresInstanceStore.ConnectTimedOut.self) {
            _ = try await PostgresInstanceStore.connect(url, options, role: "test", id: 2, until: .now + .milliseconds(200))
        }
        #expect(ContinuousClock.now - started < .seconds(20), "the attempts ended by their deadlines, not the suite's limit")
        // The server that starts with such a database and no cache says so instead of hanging.
        await #expect(throws: PostgresStoreError.self) {
            _ = try await PostgresInstanceStore.open(url: url, config: .embeddedDefault,
                                                     options: .init(hostName: "deadline-test", connectTimeout: .milliseconds(300)))
        }
    }

    /// An exchange that never answers, even when cancelled (as a PostgresNIO query written just as
    /// its connection closed: vapor/postgres-nio#487), ends at its deadline; one that answers in
    /// time is returned.
    @Test func anExchangeThatNeverAnswersEndsAtItsDeadline() async throws {
        let never = NeverAnswered()
        defer { never.release() }
        let started = ContinuousClock.now
        await #expect(throws: PostgresInstanceStore.QueryTimedOut.self) {
            try await PostgresInstanceStore.until(.now + .milliseconds(200), PostgresInstanceStore.QueryTimedOut()) {
                await never.wait()
                return 1
            } late: { _ in }
        }
        #expect(ContinuousClock.now - started < .seconds(10), "ended by its deadline, not the suite's limit")
        let answered = try await PostgresInstanceStore.until(.now + .seconds(30), PostgresInstanceStore.QueryTimedOut()) { 7 } late: { _ in }
        #expect(answered == 7)
    }

    /// A listening socket on 127.0.0.1 that never accepts.
    private func silentListener() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0)
        #expect(listen(fd, 16) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}

/// Writes against a database that holds them up (another session keeps the head row locked, as a
/// stuck or frozen writer elsewhere would): each fails as unavailable by its deadline, the ones
/// queued behind it too, nothing is half-applied, and writes succeed once the lock goes.
@Suite(.timeLimit(.minutes(1)), .enabled(if: PostgresTestServer.url != nil,
                "IMDS_TEST_POSTGRES_URL is not set: the PostgreSQL store tests are skipped (scripts/test-postgres.sh runs them)"))
struct PostgresWriteDeadlineTests {
    /// A query on a connection that closed under it (as when PostgreSQL is stopped between two
    /// queries of a transaction) ends by the exchange's deadline, answered or not.
    @Test func aQueryOnAConnectionClosedUnderItEndsByTheDeadline() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        var options = PostgresInstanceStore.Options(hostName: "closed")
        options.logger.logLevel = .critical
        let logger = options.logger
        for n in 0..<20 {
            let c = try await PostgresInstanceStore.connect(url, options, role: "closed", id: 100 + n)
            let closing = Task { try? await c.close() }
            if n % 2 == 0 { await closing.value }
            let started = ContinuousClock.now
            await #expect(throws: (any Error).self) {
                try await PostgresInstanceStore.bounded(.now + .milliseconds(500), closing: c) {
                    try await c.query("SELECT pg_sleep(0.2)", logger: logger)
                    try await c.query("SELECT 1", logger: logger)
                }
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            await closing.value
        }
    }

    @Test func aWriteHeldUpByTheDatabaseFailsByItsDeadlineAndLeavesNothing() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        var options = PostgresInstanceStore.Options(hostName: "a", writeTimeout: .seconds(2))
        options.logger.logLevel = .critical
        let store = try await PostgresInstanceStore.open(url: url, config: .embeddedDefault, options: options)
        defer { Task { await store.shutdown() } }
        let id = store.snapshot.primaryInstanceID
        try await store.apply([.setTags(instanceID: id, [InstanceTag(key: "n", value: "before")])])
        let before = store.snapshot

        let blocker = try await PostgresInstanceStore.connect(url, options, role: "blocker", id: 99)
        try await blocker.query("BEGIN", logger: options.logger)
        try await blocker.query("SELECT revision FROM imds_head WHERE id = 1 FOR UPDATE", logger: options.logger)

        // Five writes at once: the first waits for the lock, the others for the first. Each ends by its
        // own deadline (before the fix, each queued write started its own wait when the one before
        // it gave up: five deadlines one after another).
        let started = ContinuousClock.now
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for n in 0..<5 {
                group.addTask {
                    do {
                        try await store.apply([.setTags(instanceID: id, [InstanceTag(key: "n", value: "during-\(n)")])])
                        return "committed"
                    } catch let e as StoreError {
                        if case .unavailable = e { return "unavailable" }
                        return "\(e)"
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes == Array(repeating: "unavailable", count: 5))
        #expect(ContinuousClock.now - started < .seconds(5), "the queued writes ended by their own deadline, not one after another")
        // A data-plane change submitted meanwhile is dropped at its deadline too (not kept queued).
        try store.submit([.setTags(instanceID: id, [InstanceTag(key: "n", value: "submitted")])])
        try await Task.sleep(for: .milliseconds(2500))  // past the submission's deadline
        #expect(store.snapshot.durable == before.durable, "nothing was applied")

        try await blocker.query("ROLLBACK", logger: options.logger)
        try await blocker.close()
        // The database is fine again: the next write commits (the store reconnects its writer).
        var committed = false
        for _ in 0..<50 where !committed {
            do {
                try await store.apply([.setTags(instanceID: id, [InstanceTag(key: "n", value: "after")])])
                committed = true
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(committed)
        #expect(store.snapshot.primary.tags.first { $0.key == "n" }?.value == "after")
        // A second host reading the database sees exactly what the first one has: no write from
        // the blocked period committed behind its back (they all said unavailable).
        let b = try await PostgresTestServer.open(url, config: .embeddedDefault, host: "b")
        defer { Task { await b.shutdown() } }
        #expect(b.snapshot.durable == store.snapshot.durable)
    }
}

/// A wait that ignores cancellation and ends only when released (at the end of the test).
final class NeverAnswered: Sendable {
    private let state = Mutex<(waiter: CheckedContinuation<Void, Never>?, released: Bool)>((nil, false))
    func wait() async {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool in
                if s.released { return true }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
    }
    func release() {
        state.withLock { s in defer { s.waiter = nil; s.released = true }; return s.waiter }?.resume()
    }
}
