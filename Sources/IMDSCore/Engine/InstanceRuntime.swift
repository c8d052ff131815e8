import Foundation

/// One instance as it is right now: its description, its metadata options and tags (which the
/// control plane changes at runtime) and the tree derived from them.
///
/// The tree (and with it the signed identity document) is rendered the first time a request of
/// this instance needs it, once per state of its inputs (see ``RenderOnce``): an instance nobody
/// asks costs only its description, so a store opens with 10,000 instances without rendering any.
public struct InstanceRuntime: Sendable {
    /// The fields, shared by every copy until one of them changes (copy on write): a request copies
    /// its instance's runtime out of the snapshot, and that copy is one retain instead of one per
    /// string of the description (measured: about 2 µs of a 40 µs request).
    private struct Fields: Sendable {
        var instance: Instance
        var options: MetadataOptions
        var tags: [(key: String, value: String)]
        let launchTime: Date
        var tokenGeneration: UInt64
        var rendered = RenderOnce<MetadataDirectory>()
        var lastModified: Date
        let signer: (any IdentityDocumentSigner)?
        var events: [InstanceEvent] = []
        var credentialScenario: CredentialScenario = .normal
        var state: InstanceState = .running
        var configuredIAM: Instance.IAM?
    }

    /// Never changed while shared: every change goes through ``fields``'s `_modify`, which copies
    /// the box first unless this runtime holds the only reference.
    private final class Storage: @unchecked Sendable {
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private var fields: Fields {
        _read { yield storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    public private(set) var instance: Instance { get { fields.instance } set { fields.instance = newValue } }
    public private(set) var options: MetadataOptions { get { fields.options } set { fields.options = newValue } }
    public private(set) var tags: [(key: String, value: String)] { get { fields.tags } set { fields.tags = newValue } }
    public var launchTime: Date { fields.launchTime }
    /// Bumped to invalidate every token issued so far.
    public var tokenGeneration: UInt64 { get { fields.tokenGeneration } set { fields.tokenGeneration = newValue } }
    /// The version root (`/latest/`), rendered on first use and shared by every copy of this
    /// runtime until tags, their visibility or the role change.
    public var tree: MetadataDirectory {
        let f = storage
        return f.fields.rendered.value {
            MetadataTreeBuilder.build(
                instance: f.fields.instance, tags: f.fields.tags, tagsVisible: f.fields.options.instanceMetadataTags == .enabled,
                launchTime: f.fields.launchTime, signer: f.fields.signer)
        }
    }
    /// Whether ``tree`` has been rendered (for tests and cost reports).
    public var isTreeRendered: Bool { fields.rendered.isRendered }
    private var rendered: RenderOnce<MetadataDirectory> { get { fields.rendered } set { fields.rendered = newValue } }
    /// When the tree last changed (sent as `Last-Modified`).
    public private(set) var lastModified: Date { get { fields.lastModified } set { fields.lastModified = newValue } }
    var signer: (any IdentityDocumentSigner)? { fields.signer }
    /// Events scheduled on the instance (spot, rebalance, maintenance, lifecycle, instance-action).
    public var events: [InstanceEvent] { get { fields.events } set { fields.events = newValue } }
    /// The credential situation served (``CredentialScenario/normal`` unless a test switched it).
    public private(set) var credentialScenario: CredentialScenario {
        get { fields.credentialScenario } set { fields.credentialScenario = newValue }
    }
    /// Running unless stopped or terminated through the EC2 API; only a running instance is served.
    public internal(set) var state: InstanceState { get { fields.state } set { fields.state = newValue } }
    /// The role from the config, kept while a scenario detaches or changes it.
    private var configuredIAM: Instance.IAM? { fields.configuredIAM }

    public init(
        instance: Instance, options: MetadataOptions, launchTime: Date, now: Date, tokenGeneration: UInt64 = 0,
        signer: (any IdentityDocumentSigner)? = nil
    ) {
        storage = Storage(Fields(
            instance: instance, options: options, tags: instance.tags, launchTime: launchTime,
            tokenGeneration: tokenGeneration, lastModified: now, signer: signer, configuredIAM: instance.iam))
    }

    /// The tree's inputs changed: the next request renders it again.
    mutating func rebuild(now: Date) {
        rendered = RenderOnce()
        lastModified = now
    }

    public mutating func setOptions(_ new: MetadataOptions, now: Date) {
        let tagsChanged = new.instanceMetadataTags != options.instanceMetadataTags
        options = new
        if tagsChanged { rebuild(now: now) }
    }

    public mutating func setTags(_ new: [(key: String, value: String)], now: Date) {
        guard new.map({ [$0.key, $0.value] }) != tags.map({ [$0.key, $0.value] }) else { return }
        tags = new
        rebuild(now: now)
    }

    /// Switches the credential scenario; detaching or changing the role rebuilds the tree.
    public mutating func setCredentialScenario(_ scenario: CredentialScenario, now: Date) {
        guard scenario != credentialScenario else { return }
        credentialScenario = scenario
        var iam = configuredIAM
        switch scenario {
        case .detached: iam = nil
        case .roleChanged(let role):
            if var i = iam { i.role = role; i.instanceProfileName = i.instanceProfileName ?? configuredIAM?.role; iam = i }
            else { iam = Instance.IAM(role: role) }
        default: break
        }
        if iam != instance.iam {
            instance.iam = iam
            rebuild(now: now)
        }
    }
}

/// How the config file launched an instance: what its runtime state is derived from, before the
/// changes recorded in its ``InstanceRecord``.
struct LaunchBase: Sendable {
    var instance: Instance
    var options: MetadataOptions
    var launchTime: Date
    var events: [InstanceEvent]
    /// Launched through the EC2 API (nil: by the config file).
    var launched: LaunchSpec?
}

extension LaunchBase {
    init(instance: Instance, options: MetadataOptions, launchTime: Date, events: [InstanceEvent]) {
        self.init(instance: instance, options: options, launchTime: launchTime, events: events, launched: nil)
    }

    /// The base of an instance `RunInstances` launched, over the config file's first instance.
    init(launched spec: LaunchSpec, template: Instance) {
        self.init(instance: spec.instance(template: template), options: spec.options, launchTime: spec.launchTime,
                  events: [], launched: spec)
    }
}

extension InstanceRuntime {
    /// The runtime for `base` with `record`'s changes, reusing `previous` (built from the same base)
    /// so that only what changed is rebuilt (the tree, and its signed identity document, only when
    /// tags, their visibility or the role changed).
    static func derive(base: LaunchBase, record: InstanceRecord?, previous: InstanceRuntime?, now: Date,
                       signer: (any IdentityDocumentSigner)?) -> InstanceRuntime {
        let record = record ?? InstanceRecord()
        let options = record.options ?? base.options
        let tags = record.tags.map { $0.map { (key: $0.key, value: $0.value) } } ?? base.instance.tags
        var rt: InstanceRuntime
        if let previous, previous.configuredIAM == base.instance.iam, previous.launchTime == base.launchTime,
            previous.instance.instanceID == base.instance.instanceID, previous.baseMatches(base.instance)
        {
            rt = previous
            rt.setOptions(options, now: now)
            rt.setTags(tags, now: now)
        } else {
            var launched = base.instance
            launched.tags = tags
            rt = InstanceRuntime(instance: launched, options: options, launchTime: base.launchTime, now: now, signer: signer)
        }
        rt.tokenGeneration = record.tokenGeneration
        rt.state = record.state ?? .running
        rt.events = record.events ?? base.events
        rt.setCredentialScenario(record.credentialScenario ?? .normal, now: now)
        return rt
    }

    /// Whether this runtime was built from `instance` (ignoring what the runtime itself changes:
    /// tags and, through a credential scenario, the role).
    func baseMatches(_ instance: Instance) -> Bool {
        var mine = self.instance
        mine.iam = configuredIAM
        mine.tags = instance.tags
        return mine == instance
    }
}
