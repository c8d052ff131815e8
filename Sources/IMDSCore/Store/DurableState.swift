import Foundation
import HashTreeCollections

/// What the control plane and the admin API changed on one instance: the part of its state that
/// survives a restart. A nil field means "as the config file launches it".
public struct InstanceRecord: Sendable, Equatable, Codable {
    public var options: MetadataOptions?
    public var tags: [InstanceTag]?
    public var events: [InstanceEvent]?
    public var credentialScenario: CredentialScenario?
    /// Bumped by every token invalidation; tokens carry the generation they were issued in.
    public var tokenGeneration: UInt64
    /// Set by stop, start and terminate; nil: running.
    public var state: InstanceState?

    public init(options: MetadataOptions? = nil, tags: [InstanceTag]? = nil, events: [InstanceEvent]? = nil,
                credentialScenario: CredentialScenario? = nil, tokenGeneration: UInt64 = 0) {
        self.options = options
        self.tags = tags
        self.events = events
        self.credentialScenario = credentialScenario
        self.tokenGeneration = tokenGeneration
    }
}

/// Everything durable an ``InstanceStore`` holds, without the config file's part: what a journal
/// replays into and what a compacted snapshot of the journal contains.
///
/// Per-instance records live in a `TreeDictionary` (a persistent hash trie), so a change to one
/// instance copies O(log n) nodes, not the whole map: deriving the next snapshot costs the same at
/// 10 and at 10,000 instances.
public struct DurableState: Sendable, Equatable {
    public var records: TreeDictionary<String, InstanceRecord>
    /// Instances launched through the EC2 API, by instance id.
    public var launched: TreeDictionary<String, LaunchSpec>
    /// Set through `ModifyInstanceMetadataDefaults`; nil while never set that way (the config's apply).
    public var accountDefaults: AccountDefaults?
    /// Active faults once changed through the admin API; nil while they are the config file's.
    public var faults: [Fault]?
    /// Keys tokens and generated credentials.
    public var secret: [UInt8]?

    public init(records: TreeDictionary<String, InstanceRecord> = [:], launched: TreeDictionary<String, LaunchSpec> = [:],
                accountDefaults: AccountDefaults? = nil, faults: [Fault]? = nil, secret: [UInt8]? = nil) {
        self.records = records
        self.launched = launched
        self.accountDefaults = accountDefaults
        self.faults = faults
        self.secret = secret
    }

    /// Applies one change. Fault changes need the faults materialized (``InstanceStore`` prepends
    /// `.setFaults` of the config's faults the first time they change), so a journal replays
    /// without the config file.
    public mutating func apply(_ change: StoreChange) throws(StoreError) {
        switch change {
        case .setOptions(let id, let o):
            guard MetadataOptions.hopLimitRange.contains(o.httpPutResponseHopLimit) else {
                throw .invalid("http-put-response-hop-limit \(o.httpPutResponseHopLimit) is not within 1...64")
            }
            records[id, default: InstanceRecord()].options = o
        case .setTags(let id, let tags): records[id, default: InstanceRecord()].tags = tags
        case .setEvents(let id, let events): records[id, default: InstanceRecord()].events = events
        case .resetEvents(let id): records[id]?.events = nil
        case .setCredentialScenario(let id, let s): records[id, default: InstanceRecord()].credentialScenario = s
        case .invalidateTokens(let id): records[id, default: InstanceRecord()].tokenGeneration &+= 1
        case .setAccountDefaults(let d):
            if let h = d.httpPutResponseHopLimit, !MetadataOptions.hopLimitRange.contains(h) {
                throw .invalid("account default hop limit \(h) is not within 1...64")
            }
            accountDefaults = d
        case .setFaults(let list): faults = list
        case .addFault(let f):
            guard faults != nil else { throw .invalid("faults must be materialized before they change") }
            faults!.removeAll { $0.id == f.id }
            faults!.append(f)
        case .removeFaults(let id):
            guard faults != nil else { throw .invalid("faults must be materialized before they change") }
            if let id {
                guard faults!.contains(where: { $0.id == id }) else { throw .unknownFault(id) }
                faults!.removeAll { $0.id == id }
            } else {
                faults = []
            }
        case .consumeFault(let id):
            guard let i = faults?.firstIndex(where: { $0.id == id }) else { throw .unknownFault(id) }
            guard let left = faults![i].remaining else { return }
            guard left > 0 else { throw .unknownFault(id) }
            if left == 1 { faults!.remove(at: i) } else { faults![i].remaining = left - 1 }
        case .resetFaults: faults = nil
        case .launch(let spec):
            guard launched[spec.instanceID] == nil else { throw .invalid("the instance \(spec.instanceID) exists already") }
            launched[spec.instanceID] = spec
        case .setState(let id, let state): records[id, default: InstanceRecord()].state = state == .running ? nil : state
        case .setSecret(let bytes):
            guard bytes.count == 32 else { throw .invalid("a secret is 32 bytes, not \(bytes.count)") }
            secret = bytes
        }
    }
}

extension DurableState: Codable {
    enum CodingKeys: String, CodingKey { case records, launched, accountDefaults, faults, secret }
    struct Entry: Codable {
        var id: String
        var record: InstanceRecord
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var records = TreeDictionary<String, InstanceRecord>()
        for e in try c.decode([Entry].self, forKey: .records) { records[e.id] = e.record }
        var launched = TreeDictionary<String, LaunchSpec>()
        for spec in try c.decodeIfPresent([LaunchSpec].self, forKey: .launched) ?? [] { launched[spec.instanceID] = spec }
        self.init(records: records, launched: launched, accountDefaults: try c.decodeIfPresent(AccountDefaults.self, forKey: .accountDefaults),
                  faults: try c.decodeIfPresent([Fault].self, forKey: .faults),
                  secret: try c.decodeIfPresent([UInt8].self, forKey: .secret))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(records.map { Entry(id: $0.key, record: $0.value) }.sorted { $0.id < $1.id }, forKey: .records)
        if !launched.isEmpty {
            try c.encode(launched.values.sorted { $0.instanceID < $1.instanceID }, forKey: .launched)
        }
        try c.encodeIfPresent(accountDefaults, forKey: .accountDefaults)
        try c.encodeIfPresent(faults, forKey: .faults)
        try c.encodeIfPresent(secret, forKey: .secret)
    }
}
