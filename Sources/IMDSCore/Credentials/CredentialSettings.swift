/// Where an instance's role credentials come from and how they rotate.
public struct CredentialSettings: Sendable, Equatable {
    /// Known credentials, for tests that need exact values.
    public struct Fixed: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var token: String
        public init(accessKeyID: String, secretAccessKey: String, token: String) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.token = token
        }
    }

    /// Real credentials from STS `AssumeRole`.
    public struct AssumeRole: Sendable, Equatable {
        public var roleARN: String
        /// `http://HOST:PORT` of the STS endpoint (e.g. a local moto server).
        public var stsEndpoint: String
        public var region: String
        public var sourceAccessKeyID: String
        public var sourceSecretAccessKey: String
        public var sourceSessionToken: String?
        public var sessionName: String?
        public var externalID: String?
        public init(roleARN: String, stsEndpoint: String, region: String, sourceAccessKeyID: String,
                    sourceSecretAccessKey: String, sourceSessionToken: String? = nil, sessionName: String? = nil,
                    externalID: String? = nil) {
            self.roleARN = roleARN
            self.stsEndpoint = stsEndpoint
            self.region = region
            self.sourceAccessKeyID = sourceAccessKeyID
            self.sourceSecretAccessKey = sourceSecretAccessKey
            self.sourceSessionToken = sourceSessionToken
            self.sessionName = sessionName
            self.externalID = externalID
        }
    }

    public enum Source: Sendable, Equatable {
        /// Realistic credentials derived from the server's secret (default).
        case generated
        /// The same values on every rotation; `Expiration` and `LastUpdated` still roll.
        case fixed(Fixed)
        /// Obtained from STS `AssumeRole` and refreshed before they expire.
        case assumeRole(AssumeRole)
    }

    public var source: Source
    /// Seconds from `LastUpdated` to `Expiration` (default 6 hours, as EC2 serves).
    public var lifetime: Int
    /// New credentials appear this many seconds before the old ones expire (at least 300).
    public var rotateBeforeExpiry: Int
    /// Token-less (v1) and token (v2) requests get distinct credential sets, as EC2's role
    /// deliveries 1.0 and 2.0 do.
    public var distinctV1Credentials: Bool

    public init(
        source: Source = .generated, lifetime: Int = 21600, rotateBeforeExpiry: Int = 3600,
        distinctV1Credentials: Bool = true
    ) {
        self.source = source
        self.lifetime = lifetime
        self.rotateBeforeExpiry = rotateBeforeExpiry
        self.distinctV1Credentials = distinctV1Credentials
    }

    /// Seconds between two rotations.
    public var rotationPeriod: Int { lifetime - rotateBeforeExpiry }
}
