import Foundation

/// A published snapshot, shared by reference.
public final class SnapshotBox: Sendable {
    public let snapshot: StoreSnapshot
    public init(_ snapshot: StoreSnapshot) { self.snapshot = snapshot }
}

extension InstanceStore {
    /// The latest durable state.
    public var snapshot: StoreSnapshot { current.snapshot }
}

/// One applied batch, as subscribers receive it: revisions arrive in order, none skipped.
public struct StoreUpdate: Sendable {
    public var revision: StoreRevision
    /// The changes of the batch (empty for a reload that changed only the config file's part).
    public var changes: [StoreChange]
    /// The config file was (re)loaded in this batch.
    public var reconfigured: Bool
    /// The state right after the batch.
    public var snapshot: StoreSnapshot

    /// An update as a store publishes it (every ``InstanceStore`` implementation builds these).
    public init(revision: StoreRevision, changes: [StoreChange], reconfigured: Bool, snapshot: StoreSnapshot) {
        self.revision = revision
        self.changes = changes
        self.reconfigured = reconfigured
        self.snapshot = snapshot
    }
}

/// The one owner of live instance state: instances (by instance id) with their options, tags,
/// events, credential scenarios and token generations, the account defaults, faults and the secret.
///
/// - Read a consistent ``snapshot`` per request: synchronous, no I/O, no lock held by the caller.
/// - Change state only through ``apply(_:)`` / ``transact(_:)``: a batch of typed changes, atomic,
///   returning its revision once it is durable (a snapshot shows a batch only once it is durable).
/// - React to changes through ``subscribe()``: every revision, in order, pushed.
///
/// ```swift
/// let store = try EmbeddedInstanceStore(config: .embeddedDefault)          // in memory
/// let revision = try await store.apply([.invalidateTokens(instanceID: store.snapshot.primaryInstanceID)])
/// ```
public protocol InstanceStore: Sendable {
    /// The latest durable state, by reference: taking it costs one retain, however large the state
    /// (what the data plane reads per request).
    var current: SnapshotBox { get }

    /// Applies `changes` atomically; returns the batch's revision once it is durable.
    @discardableResult
    func apply(_ changes: [StoreChange]) async throws(StoreError) -> StoreRevision

    /// Read-modify-write: `body` sees the state every earlier batch leaves (durable or not) and
    /// returns the changes to apply, or throws to apply nothing. Batches are serialized, so what
    /// `body` checked still holds when its changes apply.
    func transact<T: Sendable>(
        _ body: (StoreSnapshot) throws -> (changes: [StoreChange], result: T)
    ) async throws -> (revision: StoreRevision, result: T)

    /// Applies `changes` now for everyone who validates against the store, and makes them durable
    /// without waiting: for the data plane, which may not wait for a disk (one use of a counted fault).
    func submit(_ changes: [StoreChange]) throws(StoreError)

    /// Serves `config` from now on (start, SIGHUP) together with `changes`, atomically. `check`
    /// sees the state the reload would replace and may refuse it by throwing.
    @discardableResult
    func reload(_ config: IMDSConfig, changes: [StoreChange], check: (StoreSnapshot) throws -> Void) async throws -> StoreRevision

    /// The current snapshot and every update after it, in revision order.
    func subscribe() -> (snapshot: StoreSnapshot, updates: AsyncStream<StoreUpdate>)
}
