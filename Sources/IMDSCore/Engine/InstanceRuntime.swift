import Foundation

/// One instance as it is right now: its description, its metadata options and tags (which the
/// control plane changes at runtime) and the tree derived from them.
public struct InstanceRuntime: Sendable {
    public private(set) var instance: Instance
    public private(set) var options: MetadataOptions
    public private(set) var tags: [(key: String, value: String)]
    public let launchTime: Date
    /// Bumped to invalidate every token issued so far.
    public var tokenGeneration: UInt64
    /// The version root (`/latest/`).
    public private(set) var tree: MetadataDirectory
    /// When the tree last changed (sent as `Last-Modified`).
    public private(set) var lastModified: Date
    let signer: (any IdentityDocumentSigner)?
    /// Events scheduled on the instance (spot, rebalance, maintenance, lifecycle, instance-action).
    public var events: [InstanceEvent] = []
    /// The credential situation served (``CredentialScenario/normal`` unless a test switched it).
    public private(set) var credentialScenario: CredentialScenario = .normal
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
        self.tree = MetadataDirectory()
        self.lastModified = now
        rebuild(now: now)
    }

    mutating func rebuild(now: Date) {
        tree = MetadataTreeBuilder.build(
            instance: instance, tags: tags, tagsVisible: options.instanceMetadataTags == .enabled, launchTime: launchTime,
            signer: signer)
        lastModified = now
    }

    public mutating func setOptions(_ new: MetadataOptions, now: Date) {
        let tagsChanged = new.instanceMetadataTags != options.instanceMetadataTags
        options = new
        if tagsChanged { rebuild(now: now) }
    }

    public mutating func setTags(_ new: [(key: String, value: String)], now: Date) {
        tags = new
        rebuild(now: now)
    }

    /// Switches the credential scenario; detaching or changing the role rebuilds the tree.
    public mutating func setCredentialScenario(_ scenario: CredentialScenario, now: Date) {
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
