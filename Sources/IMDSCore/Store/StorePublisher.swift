import Foundation
import Synchronization

/// The in-memory half of every ``InstanceStore``: the latest published snapshot and the
/// subscribers it is pushed to. The embedded store drives it from its writer; a replicated store
/// (PostgreSQL) drives it from the database's change feed. Callers publish in revision order, one
/// publisher at a time.
public final class StorePublisher: Sendable {
    struct Subscribers {
        var all: [UInt64: AsyncStream<StoreUpdate>.Continuation] = [:]
        var next: UInt64 = 0
        var closed = false
    }

    /// The latest snapshot (its own lock: readers never wait for a publisher's loop over subscribers).
    private let box: Mutex<SnapshotBox>
    private let subscribers = Mutex(Subscribers())

    public init(_ snapshot: StoreSnapshot) { box = Mutex(SnapshotBox(snapshot)) }

    /// The latest published snapshot, by reference.
    public var current: SnapshotBox { box.withLock { $0 } }

    /// Makes the last of `updates` the published snapshot and yields each to every subscriber, in
    /// order (under the subscribers' lock, so that a new subscription sees either all or none).
    public func publish(_ updates: [StoreUpdate]) {
        guard let last = updates.last else { return }
        let next = SnapshotBox(last.snapshot)
        subscribers.withLock { s in
            box.withLock { $0 = next }
            for u in updates { for c in s.all.values { c.yield(u) } }
        }
    }

    /// The current snapshot and every update published after it.
    public func subscribe() -> (snapshot: StoreSnapshot, updates: AsyncStream<StoreUpdate>) {
        let (stream, continuation) = AsyncStream<StoreUpdate>.makeStream(bufferingPolicy: .unbounded)
        let (snap, key) = subscribers.withLock { s -> (StoreSnapshot, UInt64?) in
            let snap = box.withLock { $0 }.snapshot
            guard !s.closed else { return (snap, nil) }
            let key = s.next
            s.next += 1
            s.all[key] = continuation
            return (snap, key)
        }
        if let key {
            continuation.onTermination = { [weak self] _ in
                _ = self?.subscribers.withLock { $0.all.removeValue(forKey: key) }
            }
        } else {
            continuation.finish()
        }
        return (snap, stream)
    }

    /// Ends every subscription (their streams finish); later subscriptions end at once.
    public func close() {
        let all = subscribers.withLock { s in
            defer { s.all = [:]; s.closed = true }
            return Array(s.all.values)
        }
        for c in all { c.finish() }
    }
}

extension StoreSnapshot {
    /// The snapshot a store opens with: `config` launched over `durable` at `revision`.
    public static func opening(
        config: IMDSConfig, durable: DurableState, revision: StoreRevision, now: Date, signer: (any IdentityDocumentSigner)?
    ) -> StoreSnapshot {
        launch(config: config, durable: durable, revision: revision, now: now, signer: signer, previous: nil)
    }

    /// The next batch over this snapshot: `changes` made replayable (``normalized(_:)``) and applied,
    /// all or nothing, at `revision + 1`. What a store records is the returned `changes`.
    public func preparing(_ changes: [StoreChange], now: Date) throws(StoreError) -> (next: StoreSnapshot, changes: [StoreChange]) {
        let normalized = normalized(changes)
        return (try applying(normalized, revision: revision + 1, now: now), normalized)
    }

    /// A reload (SIGHUP) over this snapshot: `config` from now on, with `changes`, at `revision + 1`.
    public func reloading(_ config: IMDSConfig, changes: [StoreChange], now: Date) throws(StoreError) -> (next: StoreSnapshot, changes: [StoreChange]) {
        let normalized = normalized(changes)
        var durable = self.durable
        for c in normalized { try durable.apply(c) }
        return (StoreSnapshot.launch(config: config, durable: durable, revision: revision + 1, now: now, signer: signer, previous: self),
                normalized)
    }

    /// A batch another writer committed (already normalized), replayed over this snapshot. A batch
    /// this host cannot validate (it names an instance only another host's config file launches)
    /// still advances the durable state as far as it applies and the revision, so that every host
    /// holds the same durable state and revision.
    public func replaying(_ record: JournalRecord, now: Date) -> StoreSnapshot {
        if let next = try? applying(record.changes, revision: record.revision, now: now) { return next }
        var durable = self.durable
        for c in record.changes { try? durable.apply(c) }
        return StoreSnapshot.launch(config: config, durable: durable, revision: record.revision, now: now, signer: signer, previous: self)
    }
}

/// One batch a store is about to commit: the state after it, the changes it records, and whether
/// it reloaded the config file.
public typealias PreparedBatch = (next: StoreSnapshot, changes: [StoreChange], reconfigured: Bool)

/// A store that commits batches one at a time through ``commit(_:)`` (both implementations):
/// `apply`, `transact` and `reload` are built on it, so they mean the same with every store.
public protocol BatchCommittingStore: InstanceStore {
    /// The time batches are applied at.
    var clock: any IMDSClock { get }
    /// Runs `make` against the latest state every earlier batch leaves, and commits what it
    /// returns; returns the batch's revision once durable. `make` throwing commits nothing.
    func commit(_ make: (StoreSnapshot) throws -> PreparedBatch) async throws -> StoreRevision
}

extension BatchCommittingStore {
    @discardableResult
    public func apply(_ changes: [StoreChange]) async throws(StoreError) -> StoreRevision {
        do {
            return try await commit { head in
                let (next, recorded) = try head.preparing(changes, now: clock.now())
                return (next, recorded, false)
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw .invalid("\(error)")
        }
    }

    public func transact<T: Sendable>(
        _ body: (StoreSnapshot) throws -> (changes: [StoreChange], result: T)
    ) async throws -> (revision: StoreRevision, result: T) {
        var result: T?
        let revision = try await commit { head in
            let (changes, r) = try body(head)
            result = r
            let (next, recorded) = try head.preparing(changes, now: clock.now())
            return (next, recorded, false)
        }
        return (revision, result!)
    }

    @discardableResult
    public func reload(_ config: IMDSConfig, changes: [StoreChange], check: (StoreSnapshot) throws -> Void) async throws -> StoreRevision {
        try await commit { head in
            try check(head)
            let (next, recorded) = try head.reloading(config, changes: changes, now: clock.now())
            return (next, recorded, true)
        }
    }
}
