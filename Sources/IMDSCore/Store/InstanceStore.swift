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

/// Whether a store can take writes, for metrics, the dashboard and `/admin/v1/store`.
public struct StoreHealth: Sendable, Equatable, Codable {
    /// `embedded` or `postgres`.
    public var kind: String
    /// Writes can be made durable now (the embedded store: always).
    public var reachable: Bool
    /// Since when the store is unreachable; nil while reachable.
    public var unreachableSince: Date?
    /// The revision of the snapshot served (every batch up to it applied once, in order).
    public var appliedRevision: StoreRevision
    /// Where the store is, without credentials (`postgres://imds@db:5432/imds`); nil when embedded.
    public var location: String?
    /// A replicated store: the revision it opened at, and how many batches it applied since (its
    /// own and other hosts'). Each revision is applied once, so `appliedRevision - openedAt ==
    /// batchesApplied`; nil for the embedded store.
    public var openedAt: StoreRevision?
    public var batchesApplied: UInt64?

    public init(kind: String, reachable: Bool, unreachableSince: Date? = nil, appliedRevision: StoreRevision, location: String? = nil,
                openedAt: StoreRevision? = nil, batchesApplied: UInt64? = nil) {
        self.kind = kind
        self.reachable = reachable
        self.unreachableSince = unreachableSince
        self.appliedRevision = appliedRevision
        self.location = location
        self.openedAt = openedAt
        self.batchesApplied = batchesApplied
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

    /// Whether writes can be made durable now, and the revision served.
    var health: StoreHealth { get }
}

extension InstanceStore {
    /// A store in this process is always reachable.
    public var health: StoreHealth { StoreHealth(kind: "embedded", reachable: true, appliedRevision: snapshot.revision) }
}
