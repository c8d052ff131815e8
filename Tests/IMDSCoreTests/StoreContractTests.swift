import Foundation
import IMDSCore
import IMDSPostgres
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ``InstanceStore`` contract, run against every implementation: the PostgreSQL store too when
/// `IMDS_TEST_POSTGRES_URL` names a server (scripts/test-postgres.sh sets it; without it those cases
/// are not generated and `PostgresStoreTests` reports itself skipped).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, durable, postgres
    var testDescription: String { rawValue }

    static var allCases: [StoreKind] { PostgresTestServer.url == nil ? [.memory, .durable] : [.memory, .durable, .postgres] }
    /// The kinds whose state survives a restart.
    static var persistent: [StoreKind] { allCases.filter { $0 != .memory } }
}

/// The PostgreSQL server the tests may use: `IMDS_TEST_POSTGRES_URL` (a database the tests may
/// create further databases from).
enum PostgresTestServer {
    static let url: PostgresURL? = ProcessInfo.processInfo.environment["IMDS_TEST_POSTGRES_URL"].flatMap { try? PostgresURL($0) }

    /// A new, empty database on the test server.
    static func freshDatabase() async throws -> PostgresURL {
        guard var url else { throw PostgresStoreError.badURL("IMDS_TEST_POSTGRES_URL is not set") }
        let name = "imds_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await PostgresInstanceStore.createDatabase(name, on: url)
        url.database = name
        return url
    }

    static func open(_ url: PostgresURL, config: IMDSConfig, host: String = "test") async throws -> PostgresInstanceStore {
        try await PostgresInstanceStore.open(url: url, config: config, options: .init(hostName: host))
    }
}

/// A store under test and, for durable ones, a way to open it again on the same files (a restart).
struct StoreFixture {
    let kind: StoreKind
    let directory: String
    let config: IMDSConfig
    let store: any InstanceStore
    let database: PostgresURL?

    init(_ kind: StoreKind, config: IMDSConfig = .embeddedDefault, compactionBytes: Int = 4 << 20) async throws {
        self.kind = kind
        self.config = config
        directory = NSTemporaryDirectory() + "imds-store-\(UUID().uuidString)"
        switch kind {
        case .memory:
            store = EmbeddedInstanceStore(config: config)
            database = nil
        case .durable:
            store = try StateDirectory.open(directory, config: config, compactionBytes: compactionBytes)
            database = nil
        case .postgres:
            let url = try await PostgresTestServer.freshDatabase()
            database = url
            store = try await PostgresTestServer.open(url, config: config)
        }
    }

    /// The store as a new process would find it (nil for the in-memory store: nothing survives).
    func reopen(compactionBytes: Int = 4 << 20) async throws -> (any InstanceStore)? {
        switch kind {
        case .memory: nil
        case .durable: try StateDirectory.open(directory, config: config, compactionBytes: compactionBytes)
        case .postgres: try await PostgresTestServer.open(database!, config: config, host: "reopened")
        }
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
        if let pg = store as? PostgresInstanceStore { Task { await pg.shutdown() } }
    }

    var id: String { store.snapshot.primaryInstanceID }
}

@Suite("InstanceStore contract")
struct StoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func appliedBatchesAreVisibleWithIncreasingRevisions(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let start = f.store.snapshot.revision
        let r1 = try await f.store.apply([.setTags(instanceID: f.id, [InstanceTag(key: "Team", value: "a")])])
        let r2 = try await f.store.apply([.invalidateTokens(instanceID: f.id)])
        #expect(r1 > start && r2 > r1)
        let snap = f.store.snapshot
        #expect(snap.revision == r2)
        #expect(snap.primary.tags.map(\.key) == ["Team"])
        #expect(snap.primary.tokenGeneration == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchIsAllOrNothing(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let before = f.store.snapshot
        await #expect(throws: StoreError.unknownInstance("i-00000000000000000")) {
            try await f.store.apply([.invalidateTokens(instanceID: f.id), .invalidateTokens(instanceID: "i-00000000000000000")])
        }
        await #expect(throws: StoreError.unknownFault("fault-none")) { try await f.store.apply([.removeFaults(id: "fault-none")]) }
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            _ = try await f.store.transact { _ -> (changes: [StoreChange], result: Int) in throw Refused() }
        }
        let after = f.store.snapshot
        #expect(after.revision == before.revision)
        #expect(after.primary.tokenGeneration == 0)
        #expect(after.durable == before.durable)
    }

    @Test(arguments: StoreKind.allCases)
    func snapshotsStayConsistentUnderConcurrentBatches(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let id = f.id
        let store = f.store
        let writers = 40
        let inconsistent = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        // Each batch sets the hop limit and a tag to the same number: a snapshot showing one without
        // the other would be a torn batch.
        let reader = Task.detached {
            var seen = 0
            var last: StoreRevision = 0
            while !done.load(ordering: .acquiring) && seen < 1_000_000 {
                let s = store.snapshot
                let rt = s.primary
                if let tag = rt.tags.first(where: { $0.key == "n" }), Int(tag.value) != rt.options.httpPutResponseHopLimit {
                    inconsistent.add(1, ordering: .relaxed)
                }
                if s.revision < last { inconsistent.add(1, ordering: .relaxed) }
                last = s.revision
                seen += 1
                await Task.yield()
            }
        }
        let revisions = try await withThrowingTaskGroup(of: StoreRevision.self) { group in
            for n in 1...writers {
                group.addTask {
                    var o = store.snapshot.primary.options
                    o.httpPutResponseHopLimit = n
                    return try await store.apply([.setOptions(instanceID: id, o), .setTags(instanceID: id, [InstanceTag(key: "n", value: String(n))])])
                }
            }
            var all: [StoreRevision] = []
            for try await r in group { all.append(r) }
            return all
        }
        done.store(true, ordering: .releasing)
        await reader.value
        #expect(inconsistent.load(ordering: .relaxed) == 0)
        #expect(Set(revisions).count == writers)
        let final = store.snapshot
        #expect(final.revision == revisions.max())
        let tag = try #require(final.primary.tags.first { $0.key == "n" })
        #expect(Int(tag.value) == final.primary.options.httpPutResponseHopLimit)
    }

    @Test(arguments: StoreKind.allCases)
    func subscribersGetEveryRevisionInOrder(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let (initial, updates) = f.store.subscribe()
        let store = f.store, id = f.id
        let count = 30
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<count { group.addTask { try await store.apply([.invalidateTokens(instanceID: id)]) } }
            try await group.waitForAll()
        }
        var got: [StoreUpdate] = []
        for await u in updates {
            got.append(u)
            if got.count == count { break }
        }
        #expect(got.map(\.revision) == Array((initial.revision + 1)...(initial.revision + StoreRevision(count))))
        #expect(got.last?.snapshot.primary.tokenGeneration == UInt64(count))
        #expect(got.allSatisfy { $0.changes == [.invalidateTokens(instanceID: id)] })
    }

    @Test(arguments: StoreKind.allCases)
    func countedFaultsAreUsedExactlyOnceEach(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let fault = Fault(kind: .throttle, remaining: 5)
        try await f.store.apply([.addFault(fault)])
        let store = f.store
        let used = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { (try? store.submit([.consumeFault(id: fault.id)])) != nil } }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
        #expect(used == 5)
        // Durable soon: one more batch waits behind the consumptions.
        try await store.apply([.invalidateTokens(instanceID: f.id)])
        #expect(store.snapshot.faults.isEmpty)
        if let again = try await f.reopen() { #expect(again.snapshot.faults.isEmpty) }
    }

    @Test(arguments: StoreKind.allCases)
    func reloadReplacesTheConfigPartAndKeepsChanges(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        try await f.store.apply([.invalidateTokens(instanceID: f.id), .setTags(instanceID: f.id, [InstanceTag(key: "k", value: "v")])])
        var next = f.config
        next.instance.instanceType = "t3.large"
        let (_, updates) = f.store.subscribe()
        try await f.store.reload(next, changes: [.resetEvents(instanceID: f.id)]) { _ in }
        let s = f.store.snapshot
        #expect(s.primary.instance.instanceType == "t3.large")
        #expect(s.primary.tokenGeneration == 1)
        #expect(s.primary.tags.map(\.key) == ["k"])
        for await u in updates {
            #expect(u.reconfigured)
            break
        }
    }

    // MARK: - Durability (the durable implementation)

    @Test(arguments: StoreKind.persistent)
    func everyAcknowledgedBatchSurvivesARestart(kind: StoreKind) async throws {
        let f = try await StoreFixture(kind)
        defer { f.cleanUp() }
        let id = f.id
        var o = f.store.snapshot.primary.options
        o.httpTokens = .required
        try await f.store.apply([.setOptions(instanceID: id, o)])
        try await f.store.apply([.invalidateTokens(instanceID: id), .invalidateTokens(instanceID: id)])
        try await f.store.apply([.setAccountDefaults(AccountDefaults(httpPutResponseHopLimit: 3))])
        let event = InstanceEvent(id: "evt-1", kind: .rebalanceRecommendation, at: Date(timeIntervalSince1970: 1_800_000_000))
        try await f.store.apply([.setEvents(instanceID: id, [event]), .setCredentialScenario(instanceID: id, .expired)])
        try await f.store.apply([.addFault(Fault(id: "fault-x", kind: .reset, remaining: 2))])
        let before = f.store.snapshot
        // No shutdown: the first store is simply abandoned, as a killed process would be.
        let again = try #require(try await f.reopen())
        let after = again.snapshot
        #expect(after.revision == before.revision)
        #expect(after.durable == before.durable)
        #expect(after.primary.options.httpTokens == .required)
        #expect(after.primary.tokenGeneration == 2)
        #expect(after.primary.events == [event])
        #expect(after.primary.credentialScenario == .expired)
        #expect(after.faults.map(\.id) == ["fault-x"])
        #expect(after.accountDefaults == AccountDefaults(httpPutResponseHopLimit: 3))
        // Tokens keep their secret.
        #expect(after.durable.secret == before.durable.secret)
        let r = try await again.apply([.invalidateTokens(instanceID: id)])
        #expect(r == before.revision + 1)
    }

    @Test func aTornTailIsTruncatedAndEverythingBeforeItKept() async throws {
        let f = try await StoreFixture(.durable)
        defer { f.cleanUp() }
        try await f.store.apply([.invalidateTokens(instanceID: f.id)])
        try await f.store.apply([.invalidateTokens(instanceID: f.id)])
        let journal = (f.directory as NSString).appendingPathComponent(JournalPersistence.journalName)
        let whole = try #require(FileManager.default.contents(atPath: journal))
        // A crash in the middle of an append: a frame whose payload is cut short.
        let handle = try #require(FileHandle(forWritingAtPath: journal))
        handle.seekToEndOfFile()
        handle.write(Data([0x40, 0, 0, 0, 1, 2, 3, 4]) + Data("{\"revision\":9".utf8))
        handle.closeFile()
        let again = try #require(try await f.reopen())
        #expect(again.snapshot.primary.tokenGeneration == 2)
        #expect(FileManager.default.contents(atPath: journal) == whole)
        // A flipped byte inside the last record: its checksum fails, so it is the torn tail.
        var damaged = whole
        damaged[damaged.count - 3] ^= 0xff
        try damaged.write(to: URL(fileURLWithPath: journal))
        let third = try #require(try await f.reopen())
        #expect(third.snapshot.primary.tokenGeneration == 1)
    }

    @Test func compactionKeepsTheStateAndBoundsTheJournal() async throws {
        let f = try await StoreFixture(.durable, compactionBytes: 2048)
        defer { f.cleanUp() }
        for n in 0..<60 {
            try await f.store.apply([.setTags(instanceID: f.id, [InstanceTag(key: "n", value: String(n))])])
        }
        let journal = (f.directory as NSString).appendingPathComponent(JournalPersistence.journalName)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: journal)[.size] as? Int)
        #expect(size <= 2048 + 512)
        #expect(FileManager.default.fileExists(atPath: (f.directory as NSString).appendingPathComponent(JournalPersistence.snapshotName)))
        let again = try #require(try await f.reopen(compactionBytes: 2048))
        #expect(again.snapshot.durable == f.store.snapshot.durable)
        #expect(again.snapshot.revision == f.store.snapshot.revision)
        #expect(again.snapshot.primary.tags.first?.value == "59")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.directory).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func aFailedWriteAppliesNothing() async throws {
        let f = try await StoreFixture(.durable)
        defer { f.cleanUp() }
        let before = f.store.snapshot
        // The journal becomes unwritable (a read-only file system, a full disk).
        let journal = (f.directory as NSString).appendingPathComponent(JournalPersistence.journalName)
        try FileManager.default.removeItem(atPath: journal)
        try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: false)
        await #expect(throws: StoreError.self) { try await f.store.apply([.invalidateTokens(instanceID: f.id)]) }
        #expect(f.store.snapshot.revision == before.revision)
        #expect(f.store.snapshot.primary.tokenGeneration == 0)
        try FileManager.default.removeItem(atPath: journal)
        // The head went back: the next batch validates against the durable state.
        let r = try await f.store.apply([.invalidateTokens(instanceID: f.id)])
        #expect(r == before.revision + 1)
        #expect(f.store.snapshot.primary.tokenGeneration == 1)
    }

    @Test func earlierStateFilesAreMigratedOnFirstStart() async throws {
        let dir = NSTemporaryDirectory() + "imds-migrate-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let secret = [UInt8](repeating: 7, count: 32)
        try Data(secret).write(to: URL(fileURLWithPath: dir + "/secret.key"))
        let id = IMDSConfig.embeddedDefault.instance.instanceID
        let legacy = """
            {"format": 1, "sequence": 3, "accountDefaults": {"httpPutResponseHopLimit": 4},
             "instances": {"\(id)": {"metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled",
               "httpPutResponseHopLimit": 2, "httpProtocolIPv6": "disabled", "instanceMetadataTags": "enabled"},
               "tags": [{"key": "Name", "value": "web"}]}}}
            """
        try Data(legacy.utf8).write(to: URL(fileURLWithPath: dir + "/control-plane.json"))
        let store = try StateDirectory.open(dir, config: .embeddedDefault)
        let s = store.snapshot
        #expect(s.durable.secret == secret)
        #expect(s.primary.options.httpTokens == .required)
        #expect(s.primary.options.httpPutResponseHopLimit == 2)
        #expect(s.primary.tags.map(\.key) == ["Name"])
        #expect(s.accountDefaults == AccountDefaults(httpPutResponseHopLimit: 4))
        #expect(FileManager.default.fileExists(atPath: dir + "/control-plane.json.migrated"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/control-plane.json"))
        // Imported once: a second start reads the journal only.
        let again = try StateDirectory.open(dir, config: .embeddedDefault)
        #expect(again.snapshot.durable == s.durable)
    }

    @Test func aDamagedLegacyFileIsAClearError() throws {
        let dir = NSTemporaryDirectory() + "imds-migrate-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{\"format\": 1, ".utf8).write(to: URL(fileURLWithPath: dir + "/control-plane.json"))
        #expect {
            _ = try StateDirectory.open(dir, config: .embeddedDefault)
        } throws: { error in
            "\(error)".contains("control-plane.json") && "\(error)".contains("move it away")
        }
    }
}
