/// Account-level instance metadata defaults (`ModifyInstanceMetadataDefaults`), applied to
/// instances launched afterwards. `nil` means `no-preference`.
public struct AccountDefaults: Sendable, Equatable, Codable {
    public var httpTokens: MetadataOptions.HTTPTokens?
    /// 1...64; `nil` is `-1` (no preference).
    public var httpPutResponseHopLimit: Int?
    public var httpEndpoint: MetadataOptions.Toggle?
    public var instanceMetadataTags: MetadataOptions.Toggle?
    /// `HttpTokensEnforced`: when enabled, instances may not be launched or switched to IMDSv1.
    public var httpTokensEnforced: MetadataOptions.Toggle?

    public init(
        httpTokens: MetadataOptions.HTTPTokens? = nil, httpPutResponseHopLimit: Int? = nil,
        httpEndpoint: MetadataOptions.Toggle? = nil, instanceMetadataTags: MetadataOptions.Toggle? = nil,
        httpTokensEnforced: MetadataOptions.Toggle? = nil
    ) {
        self.httpTokens = httpTokens
        self.httpPutResponseHopLimit = httpPutResponseHopLimit
        self.httpEndpoint = httpEndpoint
        self.instanceMetadataTags = instanceMetadataTags
        self.httpTokensEnforced = httpTokensEnforced
    }
}

/// Which metadata options an instance launches with.
public enum LaunchOptions {
    /// Precedence: options stated for the instance, then the AMI's `ImdsSupport=v2.0`
    /// (`required`, hop limit 2), then the account defaults, then EC2's defaults.
    public static func resolve(instance: Instance, accountDefaults: AccountDefaults) -> MetadataOptions {
        var o = MetadataOptions.ec2Defaults
        // Account defaults over EC2's.
        if let v = accountDefaults.httpTokens { o.httpTokens = v }
        if let v = accountDefaults.httpPutResponseHopLimit { o.httpPutResponseHopLimit = v }
        if let v = accountDefaults.httpEndpoint { o.httpEndpoint = v }
        if let v = accountDefaults.instanceMetadataTags { o.instanceMetadataTags = v }
        // The AMI over the account.
        if instance.amiIMDSSupport == "v2.0" {
            o.httpTokens = .required
            o.httpPutResponseHopLimit = 2
        }
        // What the instance states over everything.
        return instance.metadataOptions.applied(to: o)
    }
}
