import Foundation

/// One instance as it is right now: its description, its metadata options and tags (which the
/// control plane changes at runtime) and the tree derived from them.
///
/// The tree (and with it the signed identity document) is rendered the first time a request of
/// this instance needs it, once per state of its inputs (see ``RenderOnce``): an instance nobody
/// asks costs only its description, so a store opens with 10,000 instances without rendering any.
public struct InstanceRuntime: Sendable {
    public private(set) var instance: Instance
    public private(set) var options: MetadataOptions
    public private(set) var tags: [(key: String, value: String)]
    public let launchTime: Date
    /// Bumped to invalidate every token issued so far.
    public var tokenGeneration: UInt64
    /// The version root (`/latest/`), rendered on first use and shared by every copy of this
    /// runtime until tags, their visibility or the role change.
    public var tree: MetadataDirectory {
        rendered.value {
            MetadataTreeBuilder.build(
                instance: instance, tags: tags, tagsVisible: options.instanceMetadataTags == .enabled,
                launchTime: launchTime, signer: signer)
        }
    }
    /// Whether ``tree`` has been rendered (for tests and cost reports).
    public var isTreeRendered: Bool { rendered.isRendered }
    private var rendered = RenderOnce<MetadataDirectory>()
    /// When the tree last changed (sent as `Last-Modified`).
    public private(set) var lastModified: Date
    let signer: (any IdentityDocumentSigner)?
    /// Events scheduled on the instance (spot, rebalance, maintenance, lifecycle, instance-action).
    public var events: [InstanceEvent] = []
    /// The credential situation served (``CredentialScenario/normal`` unless a test switched it).
    public private(set) var credentialScenario: CredentialScenario = .normal
    /// Running unless stopped or terminated through the EC2 API; only a running instance is served.
    public internal(set) var state: InstanceState = .running
    /// The role from the config, kept while a scenario detaches or changes it.
    private var configuredIAM: Instance.IAM?

    public init(
        instance: Instance, options: MetadataOptions, launchTime: Date, now: Date, tokenGeneration: UInt64 = 0,
        signer: (any IdentityDocumentSigner)? = nil
    ) {
        self.signer = signer
        self.configuredIAM = instance.iam
        self.instance = instance
        self.options = options
        self.tags = instance.tags
        self.launchTime = launchTime
        self.tokenGeneration = tokenGeneration
        self.lastModified = now
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
