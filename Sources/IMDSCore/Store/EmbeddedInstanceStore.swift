import Crypto
import Dispatch
import Foundation
import Synchronization

/// Where an ``EmbeddedInstanceStore`` keeps its batches: nowhere (``MemoryPersistence``) or an
/// append-only journal in the state directory (``JournalPersistence``).
public protocol StorePersistence: Sendable {
    /// Whether writes are no-ops (then batches are published at once, without the writer thread).
    var isVolatile: Bool { get }
    /// The durable state found at start, with its revision; nil when there is none yet.
    func recover() throws(StoreError) -> (state: DurableState, revision: StoreRevision)?
    /// Writes `records` durably (one group, one flush to disk); `latest` is the state after the
    /// last of them (for compaction). Called from one thread at a time.
    func write(_ records: [JournalRecord], latest: DurableState) throws(StoreError)
}

/// One committed batch, as the journal holds it.
public struct JournalRecord: Sendable, Equatable, Codable {
    public var revision: StoreRevision
    public var changes: [StoreChange]
    public init(revision: StoreRevision, changes: [StoreChange]) {
        self.revision = revision
        self.changes = changes
    }
}

/// Keeps nothing: state lives as long as the process (`imds serve` without `--state-dir`, tests).
public struct MemoryPersistence: StorePersistence {
    public init() {}
    public var isVolatile: Bool { true }
    public func recover() throws(StoreError) -> (state: DurableState, revision: StoreRevision)? { nil }
    public func write(_ records: [JournalRecord], latest: DurableState) throws(StoreError) {}
}

/// The embedded ``InstanceStore``: state in memory as persistent maps, batches made durable by a
/// ``StorePersistence`` on a dedicated serial queue (never an event loop or the cooperative pool).
///
/// Concurrent batches are group-committed: while one group is being written, new batches queue up
/// and are written together with one flush. A batch is visible in ``snapshot`` only once durable;
/// ``transact(_:)`` validates against the head (every accepted batch), so batches never interleave.
public final class EmbeddedInstanceStore: BatchCommittingStore {
    struct Pending {
        var record: JournalRecord
        var snapshot: StoreSnapshot
        var reconfigured: Bool
        var waiter: CheckedContinuation<StoreRevision, any Error>?
    }

    struct State {
        /// Every accepted batch applied (durable or not): what new batches validate against.
        var head: StoreSnapshot
        var pending: [Pending] = []
        var writing = false
    }

    private let state: Mutex<State>
    /// The latest durable snapshot and the subscribers (published under `state`, so in order).
    private let published: StorePublisher
    private let persistence: any StorePersistence
    private let queue = DispatchQueue(label: "imds.store.writer", qos: .userInitiated)
    public let clock: any IMDSClock

    /// Opens the store: recovers what `persistence` holds, launches `config` over it, and creates
    /// the secret when there is none (`initialSecret` when given: a migrated `secret.key`).
    public init(
        config: IMDSConfig, persistence: any StorePersistence = MemoryPersistence(), clock: any IMDSClock = SystemClock(),
        signer: (any IdentityDocumentSigner)? = nil, initialSecret: [UInt8]? = nil, migrating: [StoreChange] = []
    ) throws(StoreError) {
        self.persistence = persistence
        self.clock = clock
        var (durable, revision) = try persistence.recover() ?? (DurableState(), 0)
        // First start (or an older state directory): the secret and migrated changes are one batch.
        var first: [StoreChange] = []
        if durable.secret == nil {
            first.append(.setSecret(initialSecret ?? SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }))
            first += migrating
        }
        if !first.isEmpty {
            for c in first { try durable.apply(c) }
            revision += 1
            try persistence.write([JournalRecord(revision: revision, changes: first)], latest: durable)
        }
        let snap = StoreSnapshot.opening(config: config, durable: durable, revision: revision, now: clock.now(), signer: signer)
        state = Mutex(State(head: snap))
        published = StorePublisher(snap)
    }

    /// A store in memory for `config` (tests, `imds serve` without a state directory).
    /// - Parameter secret: 32 bytes keying tokens and credentials (random when nil).
    public convenience init(
        config: IMDSConfig, clock: any IMDSClock = SystemClock(), signer: (any IdentityDocumentSigner)? = nil, secret: [UInt8]? = nil
    ) {
        let secret = secret.flatMap { $0.count == 32 ? $0 : nil }
        // Nothing else can fail without persistence: recovery is empty and writes are no-ops.
        try! self.init(config: config, persistence: MemoryPersistence(), clock: clock, signer: signer, initialSecret: secret)
    }

    public var current: SnapshotBox { published.current }

    public func submit(_ changes: [StoreChange]) throws(StoreError) {
        let now = clock.now()
        let toPublish = try state.withLock { (s: inout State) throws(StoreError) -> Wakeups in
            let (next, recorded) = try s.head.preparing(changes, now: now)
            s.head = next
            s.pending.append(Pending(record: JournalRecord(revision: next.revision, changes: recorded), snapshot: next,
                                     reconfigured: false, waiter: nil))
            return startWriting(&s)
        }
        deliver(toPublish)
    }

    public func subscribe() -> (snapshot: StoreSnapshot, updates: AsyncStream<StoreUpdate>) { published.subscribe() }

    /// Ends every subscription (their streams finish).
    public func close() { published.close() }

    // MARK: - Committing

    /// Validates and applies one batch against the head under the lock, queues it for writing and
    /// waits until it is durable.
    public func commit(_ make: (StoreSnapshot) throws -> PreparedBatch) async throws -> StoreRevision {
        // The closure runs inside withCheckedThrowingContinuation's synchronous part, under the lock.
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<StoreRevision, any Error>) in
            let outcome: Result<Wakeups, any Error> = state.withLock { s in
                do {
                    let (next, changes, reconfigured) = try make(s.head)
                    s.head = next
                    s.pending.append(Pending(record: JournalRecord(revision: next.revision, changes: changes), snapshot: next,
                                             reconfigured: reconfigured, waiter: waiter))
                    return .success(startWriting(&s))
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .success(let updates): deliver(updates)
            case .failure(let error): waiter.resume(throwing: error)
            }
        }
    }

    /// With volatile persistence, publishes the pending batches now (returning their waiters);
    /// otherwise wakes the writer if it is idle.
    private func startWriting(_ s: inout State) -> Wakeups {
        if persistence.isVolatile {
            let done = s.pending
            s.pending = []
            return publish(done, &s)
        }
        if !s.writing {
            s.writing = true
            queue.async { [self] in writeLoop() }
        }
        return []
    }

    /// Runs on the writer queue: writes every pending batch as one group, publishes it, repeats.
    private func writeLoop() {
        while true {
            let group: [Pending] = state.withLock { s in
                let g = s.pending
                s.pending = []
                if g.isEmpty { s.writing = false }
                return g
            }
            guard let last = group.last else { return }
            do {
                try persistence.write(group.map(\.record), latest: last.snapshot.durable)
                let updates = state.withLock { s in publish(group, &s) }
                deliver(updates)
            } catch {
                // Nothing of the group is durable: the head goes back to the published state, and
                // batches accepted meanwhile (validated against the failed ones) fail too.
                let failed = state.withLock { s -> [Pending] in
                    s.head = published.current.snapshot
                    defer { s.pending = [] }
                    return s.pending
                }
                for p in group + failed { p.waiter?.resume(throwing: error) }
            }
        }
    }

    /// Makes `batches` the published state and hands their updates to the subscribers, in order
    /// (under the lock, so that concurrent publishers cannot reorder them). Returns the waiters to
    /// resume once the lock is released.
    private func publish(_ batches: [Pending], _ s: inout State) -> Wakeups {
        published.publish(batches.map {
            StoreUpdate(revision: $0.record.revision, changes: $0.record.changes, reconfigured: $0.reconfigured, snapshot: $0.snapshot)
        })
        return batches.compactMap { b in b.waiter.map { ($0, b.record.revision) } }
    }

    typealias Wakeups = [(CheckedContinuation<StoreRevision, any Error>, StoreRevision)]

    private func deliver(_ wakeups: Wakeups) {
        for (w, revision) in wakeups { w.resume(returning: revision) }
    }
}
