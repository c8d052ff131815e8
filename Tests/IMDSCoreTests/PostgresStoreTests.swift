import Foundation
import IMDSCore
import IMDSPostgres
import Synchronization
import Testing

/// Several hosts on one PostgreSQL database (the contract for one store is in StoreContractTests).
@Suite(.timeLimit(.minutes(1)), .enabled(if: PostgresTestServer.url != nil,
                "IMDS_TEST_POSTGRES_URL is not set: the PostgreSQL store tests are skipped (scripts/test-postgres.sh runs them)"))
struct PostgresStoreTests {
    @Test func aChangeOnOneHostReachesTheOtherInOrder() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        let a = try await PostgresTestServer.open(url, config: .embeddedDefault, host: "a")
        let b = try await PostgresTestServer.open(url, config: .embeddedDefault, host: "b")
        defer { Task { await a.shutdown(); await b.shutdown() } }
        #expect(a.snapshot.durable.secret == b.snapshot.durable.secret)
        #expect(a.snapshot.durable.secret != nil)
        let id = a.snapshot.primaryInstanceID
        let (start, updates) = b.subscribe()
        for n in 1...20 { try await a.apply([.setTags(instanceID: id, [InstanceTag(key: "n", value: String(n))])]) }
        await settle([a, b])
        var got: [StoreRevision] = []
        for await u in updates {
            got.append(u.revision)
            if got.count == 20 { break }
        }
        #expect(got == Array((start.revision + 1)...(start.revision + 20)))
        #expect(b.snapshot.primary.tags.first?.value == "20")
        #expect(b.snapshot.durable == a.snapshot.durable)
        #expect(b.health.appliedRevision == a.health.appliedRevision)
    }

    @Test func readModifyWritesOnTwoHostsNeverLoseAnUpdate() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        let a = try await PostgresTestServer.open(url, config: .embeddedDefault, host: "a")
        let b = try await PostgresTestServer.open(url, config: .embeddedDefault, host: "b")
        defer { Task { await a.shutdown(); await b.shutdown() } }
        let id = a.snapshot.primaryInstanceID
        // Each transaction reads the counter and writes it + 1: a batch validated against a stale
        // state would lose an increment.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<30 {
                let store: PostgresInstanceStore = n % 2 == 0 ? a : b
                group.addTask {
                    _ = try await store.transact { s -> (changes: [StoreChange], result: Int) in
                        let now = Int(s.primary.tags.first { $0.key == "count" }?.value ?? "0")!
                        return ([.setTags(instanceID: id, [InstanceTag(key: "count", value: String(now + 1))])], now + 1)
                    }
                }
            }
            try await group.waitForAll()
        }
        await settle([a, b])
        #expect(a.snapshot.primary.tags.first?.value == "30")
        #expect(b.snapshot.durable == a.snapshot.durable)
    }

    @Test func theIdentityKeyIsCreatedOnceAndShared() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        let made = Atomic<Int>(0)
        let identity = PostgresInstanceStore.Identity.shared(
            create: {
                let n = made.add(1, ordering: .relaxed).newValue
                return SharedIdentity(privateKeyPEM: "key \(n)", certificatePEM: "cert \(n)")
            }, signer: { _ in NoSigner() })
        let stores = try await withThrowingTaskGroup(of: PostgresInstanceStore.self) { group in
            for n in 0..<3 {
                group.addTask {
                    try await PostgresInstanceStore.open(url: url, config: .embeddedDefault, options: .init(hostName: "h\(n)"), identity: identity)
                }
            }
            var all: [PostgresInstanceStore] = []
            for try await s in group { all.append(s) }
            return all
        }
        defer { Task { for s in stores { await s.shutdown() } } }
        // Three servers started at once: one schema, one secret, one identity pair.
        #expect(Set(stores.map { $0.sharedIdentity?.privateKeyPEM ?? "" }).count == 1)
        #expect(Set(stores.map { $0.snapshot.durable.secret ?? [] }).count == 1)
        #expect(stores.allSatisfy { $0.snapshot.revision == 1 })
    }

    @Test func anUnreachableServerIsAClearErrorWithoutACache() async throws {
        // A port nothing listens on (the test server's port + 1 is not used by the test script).
        var url = try #require(PostgresTestServer.url)
        url.port = url.port == 65535 ? 65534 : url.port + 1
        await #expect {
            _ = try await PostgresInstanceStore.open(url: url, config: .embeddedDefault, options: .init(hostName: "x", connectTimeout: .seconds(1)))
        } throws: { error in
            "\(error)".contains("cannot reach") && "\(error)".contains("no local cache")
        }
    }
}

/// Waits until every store shows the highest revision any of them shows (pushed: the suite's time
/// limit bounds it).
func settle(_ stores: [PostgresInstanceStore]) async {
    let target = stores.map(\.snapshot.revision).max() ?? 0
    for s in stores {
        let (snap, updates) = s.subscribe()
        if snap.revision >= target { continue }
        for await u in updates where u.revision >= target { break }
    }
}

struct NoSigner: IdentityDocumentSigner {
    func sign(document: [UInt8]) -> IdentitySignatures? { nil }
}

@Suite struct PostgresURLTests {
    @Test func parsesTCPAndSocketURLs() throws {
        let u = try PostgresURL("postgres://imds:s3cret@db.example:6543/fleet", environment: [:])
        #expect(u.user == "imds" && u.password == "s3cret" && u.host == "db.example" && u.port == 6543 && u.database == "fleet")
        #expect(u.description == "postgres://imds@db.example:6543/fleet")
        let s = try PostgresURL("postgresql://imds@/fleet?host=/run/pg&port=5433", environment: ["PGPASSWORD": "pw"])
        #expect(s.socketDirectory == "/run/pg" && s.port == 5433 && s.password == "pw")
    }

    @Test(arguments: ["http://x/y", "postgres://@h/db", "postgres://u@h", "postgres://u@h:99999/db", "postgres://u:pw@h/db?sslmode=require",
                      "postgres://u:pw@h/db?foo=1"])
    func badURLsAreClearErrorsWithoutThePassword(_ text: String) {
        #expect {
            _ = try PostgresURL(text, environment: [:])
        } throws: { error in
            let s = "\(error)"
            return s.hasPrefix("--store:") && !s.contains("pw@")
        }
    }

    @Test func redactionHidesThePassword() {
        #expect(PostgresURL.redacted("postgres://u:hunter2@h/db") == "postgres://u:***@h/db")
        #expect(PostgresURL.redacted("postgres://u@h/db") == "postgres://u@h/db")
    }
}
