/// The instance metadata options EC2 keeps per instance (`InstanceMetadataOptionsResponse`).
public struct MetadataOptions: Sendable, Equatable, Hashable, Codable {
    public enum HTTPTokens: String, Sendable, Codable, CaseIterable { case optional, required }
    public enum Toggle: String, Sendable, Codable, CaseIterable { case enabled, disabled }

    public var httpTokens: HTTPTokens
    public var httpEndpoint: Toggle
    /// `HttpPutResponseHopLimit`, 1...64.
    public var httpPutResponseHopLimit: Int
    public var httpProtocolIPv6: Toggle
    public var instanceMetadataTags: Toggle

    /// EC2's launch defaults when nothing else applies: optional, enabled, hop limit 1, IPv6 and tags off.
    public static let ec2Defaults = MetadataOptions(
        httpTokens: .optional, httpEndpoint: .enabled, httpPutResponseHopLimit: 1,
        httpProtocolIPv6: .disabled, instanceMetadataTags: .disabled)

    public static let hopLimitRange = 1...64

    public init(
        httpTokens: HTTPTokens, httpEndpoint: Toggle, httpPutResponseHopLimit: Int,
        httpProtocolIPv6: Toggle, instanceMetadataTags: Toggle
    ) {
        self.httpTokens = httpTokens
        self.httpEndpoint = httpEndpoint
        self.httpPutResponseHopLimit = httpPutResponseHopLimit
        self.httpProtocolIPv6 = httpProtocolIPv6
        self.instanceMetadataTags = instanceMetadataTags
    }
}

/// Metadata options as a config file or an API call states them: each one may be absent.
public struct PartialMetadataOptions: Sendable, Equatable, Hashable, Codable {
    public var httpTokens: MetadataOptions.HTTPTokens?
    public var httpEndpoint: MetadataOptions.Toggle?
    public var httpPutResponseHopLimit: Int?
    public var httpProtocolIPv6: MetadataOptions.Toggle?
    public var instanceMetadataTags: MetadataOptions.Toggle?

    public init(
        httpTokens: MetadataOptions.HTTPTokens? = nil, httpEndpoint: MetadataOptions.Toggle? = nil,
        httpPutResponseHopLimit: Int? = nil, httpProtocolIPv6: MetadataOptions.Toggle? = nil,
        instanceMetadataTags: MetadataOptions.Toggle? = nil
    ) {
        self.httpTokens = httpTokens
        self.httpEndpoint = httpEndpoint
        self.httpPutResponseHopLimit = httpPutResponseHopLimit
        self.httpProtocolIPv6 = httpProtocolIPv6
        self.instanceMetadataTags = instanceMetadataTags
    }

    public var isEmpty: Bool { self == PartialMetadataOptions() }

    /// These options laid over `base`: what is stated wins, the rest keeps its value.
    public func applied(to base: MetadataOptions) -> MetadataOptions {
        MetadataOptions(
            httpTokens: httpTokens ?? base.httpTokens,
            httpEndpoint: httpEndpoint ?? base.httpEndpoint,
            httpPutResponseHopLimit: httpPutResponseHopLimit ?? base.httpPutResponseHopLimit,
            httpProtocolIPv6: httpProtocolIPv6 ?? base.httpProtocolIPv6,
            instanceMetadataTags: instanceMetadataTags ?? base.instanceMetadataTags)
    }
}
