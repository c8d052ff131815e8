/// An instance as `GET /admin/v1/instances` describes it.
public struct AdminInstance: Codable, Sendable, Equatable {
    /// The instance's metadata options, with the config file's key names.
    public struct MetadataOptions: Codable, Sendable, Equatable {
        public var httpTokens: String
        public var httpEndpoint: String
        public var httpPutResponseHopLimit: Int
        public var httpProtocolIPv6: String
        public var instanceMetadataTags: String

        public init(httpTokens: String, httpEndpoint: String, httpPutResponseHopLimit: Int, httpProtocolIPv6: String, instanceMetadataTags: String) {
            self.httpTokens = httpTokens
            self.httpEndpoint = httpEndpoint
            self.httpPutResponseHopLimit = httpPutResponseHopLimit
            self.httpProtocolIPv6 = httpProtocolIPv6
            self.instanceMetadataTags = instanceMetadataTags
        }

        enum CodingKeys: String, CodingKey {
            case httpTokens = "http-tokens", httpEndpoint = "http-endpoint"
            case httpPutResponseHopLimit = "http-put-response-hop-limit", httpProtocolIPv6 = "http-protocol-ipv6"
            case instanceMetadataTags = "instance-metadata-tags"
        }
    }

    public var instanceID: String
    public var metadataOptions: MetadataOptions
    public var tags: [String: String]
    public var events: [AdminEvent]
    public var credentialScenario: AdminCredentialScenario

    public init(
        instanceID: String, metadataOptions: MetadataOptions, tags: [String: String], events: [AdminEvent],
        credentialScenario: AdminCredentialScenario
    ) {
        self.instanceID = instanceID
        self.metadataOptions = metadataOptions
        self.tags = tags
        self.events = events
        self.credentialScenario = credentialScenario
    }

    enum CodingKeys: String, CodingKey {
        case tags, events
        case instanceID = "instance-id", metadataOptions = "metadata-options", credentialScenario = "credential-scenario"
    }
}

/// `GET /admin/v1/instances`.
public struct AdminInstanceList: Codable, Sendable, Equatable {
    public var instances: [AdminInstance]
    public init(instances: [AdminInstance]) { self.instances = instances }
}

/// `GET /admin/v1/health`.
public struct AdminHealth: Codable, Sendable, Equatable {
    /// `ok`.
    public var status: String
    /// The ids of the instances served.
    public var instances: [String]

    public init(status: String = "ok", instances: [String]) {
        self.status = status
        self.instances = instances
    }
}

/// `GET /admin/v1/identity/certificate`: the certificate that verifies every instance's identity
/// document signatures (`signature`, `rsa2048`, `pkcs7`).
public struct AdminIdentityCertificate: Codable, Sendable, Equatable {
    /// PEM (`-----BEGIN CERTIFICATE-----` …).
    public var certificate: String

    public init(certificate: String) {
        self.certificate = certificate
    }
}

/// `GET /admin/v1/store`: where the instance state is kept and whether writes can be made now.
public struct AdminStoreStatus: Codable, Sendable, Equatable {
    /// `embedded` or `postgres`.
    public var kind: String
    /// Writes can be made durable now; while false the data plane serves the last snapshot and
    /// every write fails with 503.
    public var reachable: Bool
    /// Since when the store is unreachable (ISO 8601); absent while reachable.
    public var unreachableSince: String?
    /// The revision of the snapshot served: every batch up to it applied exactly once, in order.
    public var appliedRevision: UInt64
    /// The database, without credentials; absent for the embedded store.
    public var location: String?
    /// A shared store: the revision this server opened at, and how many batches it applied since
    /// (`applied-revision - opened-at == batches-applied`: none skipped, none applied twice).
    public var openedAt: UInt64?
    public var batchesApplied: UInt64?

    enum CodingKeys: String, CodingKey {
        case kind, reachable, location
        case unreachableSince = "unreachable-since"
        case appliedRevision = "applied-revision"
        case openedAt = "opened-at"
        case batchesApplied = "batches-applied"
    }

    public init(kind: String, reachable: Bool, unreachableSince: String?, appliedRevision: UInt64, location: String?,
                openedAt: UInt64? = nil, batchesApplied: UInt64? = nil) {
        self.kind = kind
        self.reachable = reachable
        self.unreachableSince = unreachableSince
        self.appliedRevision = appliedRevision
        self.location = location
        self.openedAt = openedAt
        self.batchesApplied = batchesApplied
    }
}
