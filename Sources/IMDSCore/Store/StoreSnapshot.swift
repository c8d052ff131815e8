import Crypto
import Foundation
import HashTreeCollections

/// The keys derived from the store's secret, keyed once (HMAC key schedules are not cheap).
public struct SecretKeys: Sendable {
    public let tokens: TokenAuthority
    public let credentials: CredentialIssuer
    init(_ secret: [UInt8]) {
        let key = SymmetricKey(data: secret)
        tokens = TokenAuthority(secret: key)
        credentials = CredentialIssuer(secret: key)
    }
}

/// One consistent view of everything an ``InstanceStore`` owns, at one revision. A value: reading it
/// takes no lock and does no I/O, and holding it while the store moves on is free (the maps are
/// persistent hash tries that share structure with the next snapshot).
public struct StoreSnapshot: Sendable {
    /// The revision this snapshot shows (every batch up to it applied, none after it).
    public internal(set) var revision: StoreRevision
    /// The instances served, by instance id.
    var instances: TreeDictionary<String, InstanceRuntime>
    /// Caller address (canonical, ``CallerAddress``) → the instance it is: maintained with every
    /// change (an O(log n) trie update), so resolving a caller costs the same at any fleet size.
    var callers: TreeDictionary<String, String>
    /// The config file's first instance: with one instance served, it answers every caller.
    public internal(set) var primaryInstanceID: String
    /// Versions listed at `/` and served as trees.
    public internal(set) var apiVersions: [String]
    /// Faults active now.
    public internal(set) var faults: [Fault]
    /// Keys derived from the secret.
    public internal(set) var keys: SecretKeys
    /// What the snapshot was derived from: the durable state and the config file's launches.
    public internal(set) var durable: DurableState
    var bases: TreeDictionary<String, LaunchBase>
    /// The configuration launched (the config file at start or at the last reload).
    public internal(set) var config: IMDSConfig
    var signer: (any IdentityDocumentSigner)?

    /// The instance `id` as it is in this snapshot; nil when it is not served.
    public func instance(_ id: String) -> InstanceRuntime? { instances[id] }

    /// Every instance served, in instance-id order.
    public var allInstances: [InstanceRuntime] { instanceIDs.compactMap { instances[$0] } }

    /// The instance whose caller `address` is (its private IPv4, IPv6 or a caller address); nil
    /// when it is no instance's. One hash lookup.
    public func instanceID(forCaller address: String) -> String? {
        if let id = callers[address] { return id }
        guard let canonical = CallerAddress.canonical(address), canonical != address else { return nil }
        return callers[canonical]
    }

    /// The per-instance request rate in effect (the config file's `throttle:`); nil: none.
    public var throttle: InstanceThrottle? { config.throttle }

    /// How many instances are served.
    public var instanceCount: Int { instances.count }

    /// The ids of the instances served, sorted.
    public var instanceIDs: [String] { instances.keys.sorted() }

    /// The account's metadata defaults in effect: set through the API, else the config file's.
    public var accountDefaults: AccountDefaults {
        durable.accountDefaults ?? config.accountDefaults ?? AccountDefaults()
    }

    /// Whether the account defaults were set through the API (then the config file's do not apply).
    public var accountDefaultsFromAPI: Bool { durable.accountDefaults != nil }

    /// The durable record of an instance (what the control plane and admin API changed on it).
    public func record(_ instanceID: String) -> InstanceRecord? { durable.records[instanceID] }

    /// The primary instance's runtime.
    public var primary: InstanceRuntime { instances[primaryInstanceID]! }

    /// The snapshot for `config` over `durable`: every configured instance launched with the
    /// account defaults in effect and the durable changes applied. `previous` (the snapshot before a
    /// reload) keeps the launch time of an instance whose id is unchanged.
    static func launch(
        config: IMDSConfig, durable: DurableState, revision: StoreRevision, now: Date,
        signer: (any IdentityDocumentSigner)?, previous: StoreSnapshot?
    ) -> StoreSnapshot {
        let defaults = durable.accountDefaults ?? config.accountDefaults ?? AccountDefaults()
        var instances = TreeDictionary<String, InstanceRuntime>()
        var bases = TreeDictionary<String, LaunchBase>()
        var callers = TreeDictionary<String, String>()
        for instance in config.instances {
            let id = instance.instanceID
            let launchTime = instance.launchTime ?? previous?.bases[id]?.launchTime
                ?? Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
            let base = LaunchBase(
                instance: instance, options: LaunchOptions.resolve(instance: instance, accountDefaults: defaults),
                launchTime: launchTime, events: instance.eventTimeline.map { $0.resolve(base: now) })
            let runtime = InstanceRuntime.derive(base: base, record: durable.records[id], previous: nil, now: now, signer: signer)
            bases[id] = base
            instances[id] = runtime
            // The config decoder refuses an address claimed twice; a tag set through the API is
            // checked when it is set. Should a record still collide, the first instance keeps it.
            for address in Self.callerAddresses(runtime) where callers[address] == nil { callers[address] = id }
        }
        for (id, spec) in durable.launched where instances[id] == nil {
            let base = LaunchBase(launched: spec, template: config.instance)
            let runtime = InstanceRuntime.derive(base: base, record: durable.records[id], previous: nil, now: now, signer: signer)
            bases[id] = base
            instances[id] = runtime
            for address in Self.callerAddresses(runtime) where callers[address] == nil { callers[address] = id }
        }
        return StoreSnapshot(
            revision: revision, instances: instances, callers: callers, primaryInstanceID: config.instance.instanceID,
            apiVersions: config.apiVersions, faults: durable.faults ?? config.faults,
            keys: SecretKeys(durable.secret ?? Array(repeating: 0, count: 32)),
            durable: durable, bases: bases, config: config, signer: signer)
    }

    /// The changes that make `changes` replayable without the config file: the config's faults are
    /// materialized (`.setFaults`) before the first change to them.
    func normalized(_ changes: [StoreChange]) -> [StoreChange] {
        guard durable.faults == nil else { return changes }
        var out: [StoreChange] = []
        var materialized = false
        for c in changes {
            switch c {
            case .addFault, .removeFaults, .consumeFault:
                if !materialized { out.append(.setFaults(config.faults)); materialized = true }
            case .setFaults: materialized = true
            case .resetFaults: materialized = false
            default: break
            }
            out.append(c)
        }
        return out
    }

    /// This snapshot with `changes` applied (all or nothing), at `revision`.
    func applying(_ changes: [StoreChange], revision: StoreRevision, now: Date) throws(StoreError) -> StoreSnapshot {
        var next = self
        var touched = Set<String>()
        var secretChanged = false
        var readdressed = Set<String>()
        for change in changes {
            switch change {
            case .launch(let spec):
                guard next.bases[spec.instanceID] == nil else { throw .invalid("the instance \(spec.instanceID) exists already") }
                next.bases[spec.instanceID] = LaunchBase(launched: spec, template: config.instance)
                readdressed.insert(spec.instanceID)
            case .setTags(let id, _), .setState(let id, _): readdressed.insert(id)
            default: break
            }
            if let id = change.instanceID {
                guard next.bases[id] != nil else { throw .unknownInstance(id) }
                touched.insert(id)
            }
            if case .setSecret = change { secretChanged = true }
            try next.durable.apply(change)
        }
        for id in touched {
            guard let base = next.bases[id] else { continue }
            let before = next.instances[id]
            let after = InstanceRuntime.derive(
                base: base, record: next.durable.records[id], previous: before, now: now, signer: signer)
            next.instances[id] = after
            if readdressed.contains(id) { try next.moveCallers(of: id, from: before, to: after) }
        }
        next.faults = next.durable.faults ?? config.faults
        if secretChanged, let s = next.durable.secret { next.keys = SecretKeys(s) }
        next.revision = revision
        return next
    }

    /// The addresses `runtime` answers for: none once terminated (they are free for a new launch);
    /// a stopped instance keeps its private address, as on EC2.
    static func callerAddresses(_ runtime: InstanceRuntime) -> [String] {
        runtime.state == .terminated ? [] : CallerAddress.addresses(of: runtime.instance, tags: runtime.tags)
    }

    /// Moves the address index from `before`'s caller addresses to `after`'s (a tag naming caller
    /// addresses changed, it was launched or terminated); an address another instance answers for
    /// is refused.
    mutating func moveCallers(of id: String, from before: InstanceRuntime?, to after: InstanceRuntime) throws(StoreError) {
        for tag in after.tags where tag.key == CallerAddress.tagKey {
            for part in tag.value.split(whereSeparator: { $0 == "," || $0 == " " }) where CallerAddress.canonical(String(part)) == nil {
                throw .invalid("the \(CallerAddress.tagKey) tag lists '\(part)', which is not an IPv4 or IPv6 address")
            }
        }
        let old = before.map(Self.callerAddresses) ?? []
        let new = Self.callerAddresses(after)
        guard old != new else { return }
        for address in new {
            if let owner = callers[address], owner != id {
                throw .invalid("the address \(address) is already in use by \(owner)")
            }
        }
        for address in old where callers[address] == id { callers[address] = nil }
        for address in new { callers[address] = id }
    }
}
