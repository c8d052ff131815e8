import Foundation
import IMDSCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// An ``InstanceStore`` that N hosts share through one PostgreSQL database (docs/postgres.md).
///
/// The database holds the ordered change log (`imds_changes`), the head revision (`imds_head`), a
/// compacted snapshot and the shared identity key. Every host keeps the state in memory (a
/// ``StorePublisher``, exactly as the embedded store) and:
///
/// - **writes** one batch at a time: locks the head row (`FOR UPDATE`), catches up to it, runs the
///   batch against that true latest state, inserts revision head + 1 and `NOTIFY`s in the same
///   transaction, and acknowledges only after `COMMIT`;
/// - **follows** the log on a dedicated `LISTEN` connection: on every notification, and after every
///   (re)connect, it reads the revisions after its own in order and applies each exactly once;
/// - **keeps serving** when the database is gone: the data plane reads the last snapshot, writes fail
///   with ``StoreError/unavailable(_:)`` (EC2 `ServiceUnavailable`, 503), the listener reconnects
///   with a bounded, jittered backoff, and the last snapshot is cached on local disk so that a start
///   without the database serves too.
public final class PostgresInstanceStore: BatchCommittingStore {
    /// How this host talks to the database.
    public struct Options: Sendable {
        /// This host's name (in `committed_by` and the connections' `application_name`; by default
        /// `HOSTNAME/PID`).
        public var hostName: String
        /// The local cache of the last snapshot; nil: none (a start without the database fails).
        public var cacheFile: String?
        /// How long a connection attempt may take.
        public var connectTimeout: Duration
        /// How long one write may take, from the call to its answer, before it fails as unavailable:
        /// the wait behind earlier writes, connecting and the transaction together.
        public var writeTimeout: Duration
        /// The longest wait between two reconnection attempts (the backoff doubles up to it).
        public var maxBackoff: Duration
        /// After a failed connection attempt, writes fail at once for this long.
        public var retryAfter: Duration = .seconds(1)
        /// Where the store tells what happens (connection lost, restored, migrations).
        public var logger: Logger

        public init(
            hostName: String = "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)", cacheFile: String? = nil, connectTimeout: Duration = .seconds(3),
            writeTimeout: Duration = .seconds(5), maxBackoff: Duration = .seconds(5), logger: Logger = Logger(label: "imds.store.postgres")
        ) {
            self.hostName = hostName
            self.cacheFile = cacheFile
            self.connectTimeout = connectTimeout
            self.writeTimeout = writeTimeout
            self.maxBackoff = maxBackoff
            self.logger = logger
        }
    }

    /// Which key signs identity documents.
    public enum Identity: Sendable {
        /// This signer (the files the config names), or none.
        case fixed((any IdentityDocumentSigner)?)
        /// The pair shared through the database: `create` makes one when the database has none
        /// yet, `signer` turns the stored pair into a signer.
        case shared(create: @Sendable () throws -> SharedIdentity, signer: @Sendable (SharedIdentity) throws -> any IdentityDocumentSigner)
    }

    struct State {
        var writer: PostgresConnection?
        var listener: PostgresConnection?
        var reachable: Bool
        var unreachableSince: Date?
        var lastError: String?
        /// Data-plane batches accepted by ``submit(_:)`` and not yet committed (validated against).
        var submits: [(id: UInt64, changes: [StoreChange])] = []
        var nextSubmit: UInt64 = 0
        /// The revision this host's writer is committing: the listener leaves it to the writer
        /// (which publishes it with its own snapshot, a reload's new config included).
        var committing: StoreRevision?
        /// The listener stopped at `committing`: the writer catches up after publishing.
        var deferred = false
        var tasks: [Task<Void, Never>] = []
        var closed = false
        /// Batches applied since opening (own and others'): each revision exactly once.
        var applied: UInt64 = 0
        /// When the writer last failed to connect: within ``Options/retryAfter`` of it, writes fail
        /// at once instead of each waiting for a connection timeout (a queue of them would grow).
        var writerFailedAt: ContinuousClock.Instant?
    }

    public let url: PostgresURL
    public let options: Options
    /// The identity pair every host shares (nil when the config names its own key files).
    public let sharedIdentity: SharedIdentity?
    private let publisher: StorePublisher
    private let state: Mutex<State>
    private let gate = WriteGate()
    public let clock: any IMDSClock
    private let cache: SnapshotCache?
    private let connectionIDs = Atomic<Int>(0)
    private let openedAt: StoreRevision
    private var logger: Logger { options.logger }

    private init(
        url: PostgresURL, options: Options, snapshot: StoreSnapshot, identity: SharedIdentity?, writer: PostgresConnection?,
        clock: any IMDSClock, unreachable: String?
    ) {
        self.url = url
        self.options = options
        self.sharedIdentity = identity
        self.clock = clock
        openedAt = snapshot.revision
        publisher = StorePublisher(snapshot)
        state = Mutex(State(writer: writer, reachable: unreachable == nil, unreachableSince: unreachable == nil ? nil : Date(),
                            lastError: unreachable))
        let logger = options.logger
        cache = options.cacheFile.map {
            SnapshotCache(path: $0, location: url.description, identity: identity) { logger.warning("store: \($0)") }
        }
    }

    /// Connects, migrates the schema, creates the shared secrets when this is the first host, loads
    /// the state and starts following the change log. When the database cannot be reached, starts
    /// from the local cache (``Options/cacheFile``) and connects in the background.
    public static func open(
        url: PostgresURL, config: IMDSConfig, options: Options = Options(), identity: Identity = .fixed(nil),
        clock: any IMDSClock = SystemClock()
    ) async throws -> PostgresInstanceStore {
        let logger = options.logger
        let store: PostgresInstanceStore
        var conn: PostgresConnection?
        do {
            let c = try await connect(url, options, role: "write", id: 0)
            conn = c
            let (shared, durable, revision) = try await bounded(.now + options.writeTimeout + .seconds(10), closing: c) {
                try await PostgresSchema.migrate(c, host: options.hostName, logger: logger)
                var shared: SharedIdentity?
                if case .shared(let create, _) = identity {
                    shared = try await PostgresSchema.identity(c, create: create, logger: logger)
                }
                let (durable, revision) = try await PostgresSchema.load(c, logger: logger)
                return (shared, durable, revision)
            }
            let snap = StoreSnapshot.opening(config: config, durable: durable, revision: revision, now: clock.now(),
                                             signer: try signer(identity, shared))
            store = PostgresInstanceStore(url: url, options: options, snapshot: snap, identity: shared, writer: c, clock: clock, unreachable: nil)
        } catch {
            try? await conn?.close()
            if let e = error as? PostgresStoreError { throw e }
            let why = describe(error)
            guard isUnreachable(error) else { throw PostgresStoreError.refused(why) }
            guard let path = options.cacheFile, let cached = try SnapshotCache.read(path) else {
                throw PostgresStoreError.unreachable(
                    "cannot reach the database (\(why)), and there is no local cache of an earlier start to serve from"
                        + (options.cacheFile.map { " (\($0))" } ?? ""))
            }
            guard cached.location == url.description else {
                throw PostgresStoreError.unreachable("cannot reach the database (\(why)); the local cache \(path) is of \(cached.location)")
            }
            let snap = StoreSnapshot.opening(config: config, durable: cached.state, revision: cached.revision, now: clock.now(),
                                             signer: try signer(identity, cached.identity))
            store = PostgresInstanceStore(url: url, options: options, snapshot: snap, identity: cached.identity, writer: nil, clock: clock,
                                          unreachable: why)
            logger.warning("store: cannot reach \(url) (\(why)); serving revision \(cached.revision) from \(path) and reconnecting")
        }
        store.start()
        return store
    }

    private static func signer(_ identity: Identity, _ shared: SharedIdentity?) throws -> (any IdentityDocumentSigner)? {
        switch identity {
        case .fixed(let s): return s
        case .shared(_, let make): return try shared.map(make)
        }
    }

    private func start() {
        let listen = Task { [self] in await listenLoop() }
        var tasks = [listen]
        if let cache {
            cache.save(publisher.current.snapshot)
            tasks.append(Task { await cache.run() })
        }
        state.withLock { $0.tasks = tasks }
    }

    /// Stops following the log, closes the connections, writes the cache and ends subscriptions.
    public func shutdown() async {
        let (tasks, conns) = state.withLock { s in
            s.closed = true
            defer { s.tasks = []; s.writer = nil; s.listener = nil }
            return (s.tasks, [s.writer, s.listener].compactMap { $0 })
        }
        tasks.first?.cancel()
        for c in conns { try? await c.close() }
        cache?.finish()
        for t in tasks { await t.value }
        publisher.close()
    }

    // MARK: - InstanceStore

    public var current: SnapshotBox { publisher.current }

    public func subscribe() -> (snapshot: StoreSnapshot, updates: AsyncStream<StoreUpdate>) { publisher.subscribe() }

    public var health: StoreHealth {
        let revision = publisher.current.snapshot.revision
        return state.withLock { s in
            StoreHealth(kind: "postgres", reachable: s.reachable, unreachableSince: s.unreachableSince, appliedRevision: revision,
                        location: url.description, openedAt: openedAt, batchesApplied: s.applied)
        }
    }

    /// Why the store is unreachable now (nil while reachable).
    public var unreachableReason: String? { state.withLock { $0.reachable ? nil : $0.lastError } }

    public func submit(_ changes: [StoreChange]) throws(StoreError) {
        let now = clock.now()
        let id = try state.withLock { (s: inout State) throws(StoreError) -> UInt64 in
            guard !s.closed else { throw .closed }
            // Validated against the published state with every earlier accepted submission applied,
            // so that a counted fault is used at most as often as it allows.
            var head = publisher.current.snapshot
            for p in s.submits { if let next = try? head.preparing(p.changes, now: now).next { head = next } }
            _ = try head.preparing(changes, now: now)
            let id = s.nextSubmit
            s.nextSubmit += 1
            s.submits.append((id, changes))
            return id
        }
        let ticket = gate.ticket()
        let deadline = ContinuousClock.now + options.writeTimeout
        Task { [self] in
            guard await gate.wait(ticket, until: deadline) else {
                state.withLock { s in s.submits.removeAll { $0.id == id } }
                logger.debug("store: a data-plane change was not saved: earlier writes still wait for the database")
                return
            }
            defer { gate.release() }
            do {
                _ = try await write(submission: id, until: deadline) { head in
                    let (next, recorded) = try head.preparing(changes, now: clock.now())
                    return (next, recorded, false)
                }
            } catch {
                state.withLock { s in s.submits.removeAll { $0.id == id } }
                logger.debug("store: a data-plane change was not saved: \(error)")
            }
        }
    }

    // MARK: - Writing

    typealias Made = PreparedBatch

    /// The batch's own refusal, as opposed to a database failure.
    struct Refused: Error { let error: any Error }

    /// One batch through the write gate (see ``BatchCommittingStore``).
    /// Ends within ``Options/writeTimeout`` of the call, whatever the database does: committed, or
    /// ``StoreError/unavailable(_:)``.
    public func commit(_ make: (StoreSnapshot) throws -> PreparedBatch) async throws -> StoreRevision {
        let ticket = gate.ticket()
        let deadline = ContinuousClock.now + options.writeTimeout
        guard await gate.wait(ticket, until: deadline) else {
            throw StoreError.unavailable(
                "the database did not answer within \(options.writeTimeout) (earlier writes on this host still wait for it)")
        }
        defer { gate.release() }
        return try await write(submission: nil, until: deadline, make)
    }

    /// One batch in one transaction, ended by `deadline`; the caller holds the gate.
    private func write(submission: UInt64?, until deadline: ContinuousClock.Instant, _ make: (StoreSnapshot) throws -> Made) async throws
        -> StoreRevision
    {
        if state.withLock({ $0.closed }) { throw StoreError.closed }
        let conn = try await writerConnection(until: deadline)
        let logger = logger
        // Every exchange returns by the deadline, whatever PostgresNIO does (see ``bounded``).
        func db<T: Sendable>(_ exchange: @escaping @Sendable () async throws -> T) async throws -> T {
            try await Self.bounded(deadline, closing: conn, exchange)
        }
        let made: Made
        do {
            let head = try await db { [self] in
                try await conn.query("BEGIN", logger: logger)
                var head: Int64 = -1
                for try await r in try await conn.query("SELECT revision FROM imds_head WHERE id = 1 FOR UPDATE", logger: logger)
                    .decode(Int64.self)
                { head = r }
                while publisher.current.snapshot.revision < StoreRevision(clamping: head) {
                    let records = try await PostgresSchema.changes(after: publisher.current.snapshot.revision, conn, logger: logger)
                    if records.isEmpty { break }
                    advance(records)
                }
                return head
            }
            let local = publisher.current.snapshot
            guard Int64(clamping: local.revision) == head else {
                _ = try? await db { try await conn.query("ROLLBACK", logger: logger) }
                throw StoreError.unavailable("this host is at revision \(local.revision), the database at \(head)")
            }
            do {
                made = try make(local)
            } catch {
                _ = try await db { try await conn.query("ROLLBACK", logger: logger) }
                throw Refused(error: error)
            }
            let revision = made.next.revision
            let json = String(decoding: try JSONEncoder().encode(made.changes), as: UTF8.self)
            let snapshot = revision % PostgresSchema.snapshotEvery == 0
                ? String(decoding: try JSONEncoder().encode(made.next.durable), as: UTF8.self) : nil
            let host = options.hostName
            try await db { [self] in
                try await conn.query(
                    """
                    INSERT INTO imds_changes (revision, changes, committed_by) VALUES (\(Int64(revision)), \(json)::jsonb, \(host))
                    """, logger: logger)
                try await conn.query("UPDATE imds_head SET revision = \(Int64(revision)) WHERE id = 1", logger: logger)
                try await conn.query("SELECT pg_notify(\(PostgresSchema.channel), \(String(revision)))", logger: logger)
                if let snapshot {
                    try await conn.query(
                        """
                        INSERT INTO imds_snapshot (id, revision, state) VALUES (1, \(Int64(revision)), \(snapshot)::jsonb)
                        ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision, state = EXCLUDED.state
                        """, logger: logger)
                }
                // Only while this write is still the writer's: an exchange abandoned at its deadline
                // must not leave the listener deferring to it.
                let current = state.withLock { s -> Bool in
                    guard s.writer === conn else { return false }
                    s.committing = revision
                    return true
                }
                guard current else { throw QueryTimedOut() }
                try await conn.query("COMMIT", logger: logger)
            }
        } catch let r as Refused {
            throw r.error
        } catch let e as StoreError {
            throw e
        } catch {
            // The outcome of a COMMIT whose answer was lost (or came too late) is unknown: if it did
            // commit, the listener applies it like any other host's batch.
            let deferred = state.withLock { s in
                defer { s.committing = nil; s.deferred = false }
                if s.writer === conn { s.writer = nil }
                return s.deferred
            }
            try? await conn.close()
            if deferred { nudgeListener() }
            let why = error is QueryTimedOut ? "the database did not answer within \(options.writeTimeout)" : Self.describe(error)
            markDown(why)
            throw StoreError.unavailable(why)
        }
        let catchUp = publishOwn(made, submission: submission)
        markUp()
        if catchUp {
            do { try await follow(conn, until: deadline) } catch { nudgeListener() }
        }
        return made.next.revision
    }

    /// Has the listener read the log again: the writer it left revisions to (see
    /// ``State/deferred``) ended without applying them. A listener that is reconnecting reads
    /// them anyway once connected.
    private func nudgeListener() {
        guard let listener = state.withLock({ $0.listener }), !listener.isClosed else { return }
        Task { [self] in try? await follow(listener) }
    }

    /// Publishes the batch this host committed (unless the listener already applied it); returns
    /// whether the listener left later revisions to the writer.
    private func publishOwn(_ made: Made, submission: UInt64?) -> Bool {
        let (saved, deferred) = state.withLock { s -> (StoreSnapshot?, Bool) in
            defer { s.committing = nil; s.deferred = false }
            if let submission { s.submits.removeAll { $0.id == submission } }
            guard made.next.revision == publisher.current.snapshot.revision + 1 else { return (nil, s.deferred) }
            publisher.publish([StoreUpdate(revision: made.next.revision, changes: made.changes, reconfigured: made.reconfigured,
                                           snapshot: made.next)])
            s.applied += 1
            return (made.next, s.deferred)
        }
        if let saved { cache?.save(saved) }
        return deferred
    }

    /// Applies committed batches in revision order: those already applied are skipped, and
    /// nothing is applied past a gap (the next read starts there) or the revision this host's
    /// writer is committing.
    private func advance(_ records: [JournalRecord]) {
        let now = clock.now()
        let last = state.withLock { s -> StoreSnapshot? in
            var snap = publisher.current.snapshot
            var updates: [StoreUpdate] = []
            for r in records where r.revision > snap.revision {
                guard r.revision == snap.revision + 1 else { break }
                if r.revision == s.committing {
                    s.deferred = true
                    break
                }
                snap = snap.replaying(r, now: now)
                updates.append(StoreUpdate(revision: r.revision, changes: r.changes, reconfigured: false, snapshot: snap))
            }
            publisher.publish(updates)
            s.applied += UInt64(updates.count)
            return updates.isEmpty ? nil : snap
        }
        if let last { cache?.save(last) }
    }

    /// Reads and applies every revision after this host's, page by page, on `conn`; each page by
    /// `deadline` (default: ``Options/writeTimeout`` from its start), or `conn` is closed.
    private func follow(_ conn: PostgresConnection, until deadline: ContinuousClock.Instant? = nil) async throws {
        let logger = logger
        while true {
            let after = publisher.current.snapshot.revision
            let records = try await Self.bounded(deadline ?? .now + options.writeTimeout, closing: conn) {
                try await PostgresSchema.changes(after: after, conn, logger: logger)
            }
            advance(records)
            if records.count < PostgresSchema.pageSize { return }
        }
    }

    private func writerConnection(until deadline: ContinuousClock.Instant) async throws -> PostgresConnection {
        let (open, recentFailure) = state.withLock { s -> (PostgresConnection?, String?) in
            if let w = s.writer, !w.isClosed { return (w, nil) }
            guard let failed = s.writerFailedAt, ContinuousClock.now - failed < options.retryAfter, !s.reachable else { return (nil, nil) }
            return (nil, s.lastError ?? "unreachable")
        }
        if let open { return open }
        if let recentFailure { throw StoreError.unavailable(recentFailure) }
        do {
            let c = try await Self.connect(url, options, role: "write", id: connectionIDs.add(1, ordering: .relaxed).newValue, until: deadline)
            state.withLock { $0.writer = c; $0.writerFailedAt = nil }
            return c
        } catch {
            let why = Self.describe(error)
            state.withLock { $0.writerFailedAt = .now }
            markDown(why)
            throw StoreError.unavailable(why)
        }
    }

    // MARK: - Following the log

    /// Keeps one `LISTEN` connection: after each (re)connect it catches up on every revision it
    /// missed, then applies each notified revision. Reconnects with a doubling, jittered backoff
    /// bounded by ``Options/maxBackoff``.
    private func listenLoop() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let c = try await Self.connect(url, options, role: "listen", id: connectionIDs.add(1, ordering: .relaxed).newValue)
                let closed = state.withLock { s in
                    if !s.closed { s.listener = c }
                    return s.closed
                }
                if closed { try? await c.close(); return }
                if await supervise(c) { failures = 0 }
                try? await c.close()
                if !Task.isCancelled { markDown("the LISTEN connection ended") }
            } catch {
                if Task.isCancelled { break }
                markDown(Self.describe(error))
            }
            failures += 1
            let ceiling = min(Double(options.maxBackoff.components.seconds) + Double(options.maxBackoff.components.attoseconds) / 1e18,
                              0.1 * pow(2, Double(min(failures - 1, 16))))
            try? await Task.sleep(for: .seconds(ceiling * Double.random(in: 0.5...1.0)))
        }
    }

    /// One `LISTEN` session on `c`, supervised: it ends when the session does, when `c` closes
    /// (a session still waiting then is abandoned after a second: a LISTEN cut off mid-way may
    /// never answer), or when it is not established within ``Options/writeTimeout``. Returns
    /// whether it was established (then the backoff starts again from its shortest step).
    private func supervise(_ c: PostgresConnection) async -> Bool {
        let session = ListenSession()
        let finish: @Sendable () -> Void = { session.finish() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (w: CheckedContinuation<Void, Never>) in
                session.waiter.withLock { $0 = w }
                Task { [self] in
                    do {
                        try await c.listen(on: PostgresSchema.channel) { notifications in
                            // LISTEN is active before the catch-up read: nothing committed after it is missed.
                            try await follow(c)
                            session.established.store(true, ordering: .releasing)
                            markUp()
                            for try await _ in notifications { try await follow(c) }
                        }
                    } catch {
                        if !Task.isCancelled { markDown(Self.describe(error)) }
                    }
                    finish()
                }
                c.closeFuture.whenComplete { _ in
                    Task {
                        try? await Task.sleep(for: .seconds(1))
                        finish()
                    }
                }
                Task { [timeout = options.writeTimeout] in
                    try? await Task.sleep(for: timeout)
                    if !session.established.load(ordering: .acquiring) {
                        try? await c.close()
                        finish()
                    }
                }
            }
        } onCancel: {
            finish()
        }
        return session.established.load(ordering: .acquiring)
    }

    /// What a supervised LISTEN session and its watchers share.
    final class ListenSession: Sendable {
        let established = Atomic<Bool>(false)
        let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        /// Resumes the supervisor, once.
        func finish() { waiter.withLock { w in defer { w = nil }; return w }?.resume() }
    }

    private func markDown(_ why: String) {
        let changed = state.withLock { s in
            defer { s.reachable = false; s.lastError = why }
            if s.reachable { s.unreachableSince = Date() }
            return s.reachable && !s.closed
        }
        if changed { logger.warning("store: \(url) is unreachable (\(why)); serving the last snapshot, writes fail until it is back") }
    }

    private func markUp() {
        let was = state.withLock { s -> Date? in
            defer { s.reachable = true; s.unreachableSince = nil; s.lastError = nil }
            return s.reachable ? nil : s.unreachableSince
        }
        if let was {
            logger.notice("store: \(url) is reachable again after \(Int(Date().timeIntervalSince(was)))s; at revision \(publisher.current.snapshot.revision)")
        }
    }

    /// The identity certificate (PEM) the hosts on `url` sign with; nil when the database holds no
    /// shared pair yet (no `imds serve --store` ran on it, or every host names its own files).
    public static func sharedCertificate(at url: PostgresURL) async throws -> String? {
        let c: PostgresConnection
        do { c = try await connect(url, Options(), role: "cli", id: 0) } catch {
            throw isUnreachable(error) ? PostgresStoreError.unreachable("cannot reach the database (\(describe(error)))")
                : PostgresStoreError.refused(describe(error))
        }
        defer { Task { try? await c.close() } }
        let logger = Options().logger
        return try await bounded(.now + Options().writeTimeout, closing: c) {
            var exists = false
            for try await found in try await c.query("SELECT to_regclass('imds_identity') IS NOT NULL", logger: logger).decode(Bool.self) {
                exists = found
            }
            guard exists else { return nil }
            return try await PostgresSchema.readIdentity(c, logger: logger)?.certificatePEM
        }
    }

    // MARK: - Connections

    /// Creates the database `name` on `server` (connecting to `server.database`): first-time setup
    /// and tests. `name` must be a plain identifier (letters, digits, `_`).
    public static func createDatabase(_ name: String, on server: PostgresURL) async throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw PostgresStoreError.badURL("'\(name)' is not a plain database name")
        }
        let c = try await connect(server, Options(), role: "setup", id: 0)
        defer { Task { try? await c.close() } }
        try await bounded(.now + Options().writeTimeout, closing: c) {
            _ = try await c.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: Options().logger)
        }
    }

    /// Connects and completes the start-up exchange (authentication, parameters) by
    /// ``Options/connectTimeout`` or `deadline`, whichever comes first: PostgresNIO's own
    /// connect timeout covers only the TCP handshake, and a server that accepts but never answers
    /// (stopped, frozen, a dead host behind a live proxy) would otherwise hold the caller forever.
    static func connect(
        _ url: PostgresURL, _ options: Options, role: String, id: Int, until deadline: ContinuousClock.Instant? = nil
    ) async throws -> PostgresConnection {
        let limit = min(ContinuousClock.now + options.connectTimeout, deadline ?? .now + options.connectTimeout)
        let timeout = options.connectTimeout
        return try await Self.until(limit, ConnectTimedOut(limit: timeout)) {
            try await Self.connectUnbounded(url, options, role: role, id: id)
        } late: { conn in
            try? await conn.close()
        }
    }

    /// A connection attempt that did not complete in time.
    struct ConnectTimedOut: Error, CustomStringConvertible {
        let limit: Duration
        var description: String { "cannot connect: the server did not complete the start-up exchange within \(limit)" }
    }

    /// Runs `operation` and returns what it returns, or throws `timeout` at `deadline` if it has not
    /// finished by then. The operation is cancelled then; if it still returns a value, `late` gets it
    /// (to close a connection nobody waits for any more).
    static func until<T: Sendable>(
        _ deadline: ContinuousClock.Instant, _ timeout: any Error, _ operation: @escaping @Sendable () async throws -> T,
        late: @escaping @Sendable (T) async -> Void
    ) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            once.set(c)
            let work = Task {
                do {
                    let value = try await operation()
                    if let c = once.take() { c.resume(returning: value) } else { await late(value) }
                } catch {
                    once.take()?.resume(throwing: error)
                }
            }
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                if let c = once.take() {
                    work.cancel()
                    c.resume(throwing: timeout)
                }
            }
            once.onTake { timer.cancel() }
        }
    }

    /// A continuation resumed once, by whichever side takes it first.
    final class Once<T: Sendable>: Sendable {
        private let state = Mutex<(CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?, Bool)>((nil, nil, false))
        func set(_ c: CheckedContinuation<T, any Error>) { state.withLock { $0.0 = c } }
        /// Runs `cancel` once the continuation is taken (at once if it already was).
        func onTake(_ cancel: @escaping @Sendable () -> Void) {
            let now = state.withLock { s -> Bool in
                if s.2 { return true }
                s.1 = cancel
                return false
            }
            if now { cancel() }
        }
        func take() -> CheckedContinuation<T, any Error>? {
            let (c, cancel) = state.withLock { s -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
                defer { s.0 = nil; s.1 = nil; s.2 = true }
                return s.2 ? (nil, nil) : (s.0, s.1)
            }
            cancel?()
            return c
        }
    }

    static func connectUnbounded(_ url: PostgresURL, _ options: Options, role: String, id: Int) async throws -> PostgresConnection {
        var config: PostgresConnection.Configuration
        if let dir = url.socketDirectory {
            config = .init(unixSocketPath: (dir as NSString).appendingPathComponent(".s.PGSQL.\(url.port)"), username: url.user,
                           password: url.password, database: url.database)
        } else {
            config = .init(host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
                           database: url.database, tls: .disable)
        }
        let c = options.connectTimeout.components
        config.options.connectTimeout = .nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
        config.options.additionalStartupParameters = [("application_name", "imds-\(role) \(options.hostName)")]
        var quiet = options.logger
        quiet.logLevel = .critical
        return try await PostgresConnection.connect(configuration: config, id: id, logger: quiet)
    }

    /// Runs `exchange` (queries on `conn`) and returns what it returns, or closes `conn` and throws
    /// ``QueryTimedOut`` at `deadline`. Closing the connection alone does not end every wait: a query
    /// written just as the connection closes is never answered nor failed by PostgresNIO
    /// (vapor/postgres-nio#487, reverted in #501), and closing a closed connection changes nothing.
    /// Such an exchange is abandoned (its task stays suspended; its connection is closed).
    static func bounded<T: Sendable>(
        _ deadline: ContinuousClock.Instant, closing conn: PostgresConnection, _ exchange: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        do {
            return try await until(deadline, QueryTimedOut(), exchange, late: { _ in })
        } catch let e as QueryTimedOut {
            try? await conn.close()
            throw e
        }
    }

    /// An exchange with the database that did not end by its deadline.
    struct QueryTimedOut: Error, CustomStringConvertible {
        var description: String { "the database did not answer in time" }
    }

    /// Whether `error` means the server could not be reached (as opposed to refusing us).
    static func isUnreachable(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError else { return !(error is PostgresStoreError) }
        switch e.code {
        case .server:
            // 08: connection exceptions; 57: the server is starting up or shutting down.
            let state = e.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57")
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .queryCancelled:
            return true
        default:
            return false
        }
    }

    /// A sentence for `error` (PostgresNIO hides details from `description`; the password is never in them).
    static func describe(_ error: any Error) -> String {
        guard let e = error as? PSQLError else { return "\(error)" }
        if let info = e.serverInfo, let message = info[.message] {
            return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        switch e.code {
        case .connectionError:
            return "cannot connect: " + (e.underlying.map { "\($0)" } ?? "connection failed")
        case .serverClosedConnection: return "the server closed the connection"
        case .clientClosedConnection: return "the connection was closed (timed out)"
        case .uncleanShutdown: return "the connection was cut"
        case .authMechanismRequiresPassword: return "the server asks for a password and the URL gives none (postgres://USER:PASSWORD@… or PGPASSWORD)"
        case .unsupportedAuthMechanism: return "the server asks for an authentication method this client does not support"
        case .sslUnsupported: return "the server does not support TLS"
        default: return "\(e.code)"
        }
    }
}
