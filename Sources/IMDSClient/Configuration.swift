import Foundation

/// Everything that decides how ``IMDSClient`` talks to IMDS, resolved by the AWS SDK rules.
///
/// Build one with ``resolve(environment:configFile:profile:endpoint:endpointMode:)`` (explicit inputs,
/// for tests and embedding) or ``fromProcessEnvironment(endpoint:endpointMode:)`` (the process
/// environment and the AWS config file it points at), then adjust fields as needed:
/// ```swift
/// var config = try IMDSClientConfiguration.fromProcessEnvironment()
/// config.timeouts = IMDSTimeouts(connect: .milliseconds(200), read: .milliseconds(200))
/// let client = IMDSClient(configuration: config)
/// ```
///
/// | Setting | Environment | Config file key | Default |
/// |---|---|---|---|
/// | endpoint | `AWS_EC2_METADATA_SERVICE_ENDPOINT` | `ec2_metadata_service_endpoint` | from the mode |
/// | endpoint mode | `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` | `ec2_metadata_service_endpoint_mode` | `IPv4` |
/// | legacy IPv6 switch | `AWS_IMDS_USE_IPV6` | `imds_use_ipv6` | false (the mode wins) |
/// | disable IMDS | `AWS_EC2_METADATA_DISABLED` | `disable_ec2_metadata` | false |
/// | disable v1 fallback | `AWS_EC2_METADATA_V1_DISABLED` | `ec2_metadata_v1_disabled` | false |
/// | timeout (s) | `AWS_METADATA_SERVICE_TIMEOUT` | `metadata_service_timeout` | 1 |
/// | attempts | `AWS_METADATA_SERVICE_NUM_ATTEMPTS` | `metadata_service_num_attempts` | 4 (3 retries) |
/// | role name | `AWS_EC2_INSTANCE_PROFILE_NAME` | `ec2_instance_profile_name` | discovered |
///
/// Precedence for the endpoint: explicit endpoint > environment endpoint > profile endpoint >
/// explicit mode > environment mode > profile mode > legacy IPv6 switch > IPv4.
public struct IMDSClientConfiguration: Sendable, Equatable {
    /// The base URI requests go to.
    public var endpoint: IMDSEndpoint
    /// Where ``endpoint`` came from (`explicit`, an environment variable, `profile NAME`, `default`).
    public var endpointSource: String
    /// `AWS_EC2_METADATA_DISABLED=true`: every request fails with ``IMDSClientError/disabled``.
    public var disabled: Bool
    /// No IMDSv1 fallback: a failed token request is an error.
    public var v1FallbackDisabled: Bool
    /// Never request a token; send every request as IMDSv1 (`imds get --v1`).
    public var forceV1: Bool
    /// Requested token lifetime in seconds, 1...21600 (SDK default 21600).
    public var tokenTTL: Int
    /// A cached token is replaced when it has fewer than this many seconds left
    /// (capped at a quarter of the TTL for short TTLs).
    public var tokenRefreshBuffer: Int
    public var timeouts: IMDSTimeouts
    /// Additional attempts after the first for retryable failures (5xx, 429, connection errors).
    public var retries: Int
    /// Backoff before retry n (1-based): `min(maxBackoff, baseBackoff * 2^(n-1))` with full jitter in its upper half.
    public var baseBackoff: Duration
    public var maxBackoff: Duration
    /// A fixed role name for credentials (skips the role listing).
    public var instanceProfileName: String?

    /// Defaults as the SDK reference gives them (IPv4 endpoint, 1 s timeouts, 3 retries, TTL 21600).
    public init(endpoint: IMDSEndpoint = .ipv4) {
        self.endpoint = endpoint
        self.endpointSource = "default"
        self.disabled = false
        self.v1FallbackDisabled = false
        self.forceV1 = false
        self.tokenTTL = 21600
        self.tokenRefreshBuffer = 120
        self.timeouts = .sdkDefault
        self.retries = 3
        self.baseBackoff = .milliseconds(100)
        self.maxBackoff = .seconds(1)
        self.instanceProfileName = nil
    }

    /// Resolves the configuration from the process environment and the AWS config file it selects.
    public static func fromProcessEnvironment(endpoint: String? = nil, endpointMode: IMDSEndpointMode? = nil) throws
        -> IMDSClientConfiguration
    {
        let env = ProcessInfo.processInfo.environment
        return try resolve(environment: env, configFile: try AWSConfigFile.load(environment: env),
                           endpoint: endpoint, endpointMode: endpointMode)
    }

    /// Resolves the configuration from explicit inputs (nothing is read from the process).
    /// - Parameters:
    ///   - environment: environment variables (only the `AWS_*` names above are read).
    ///   - configFile: the parsed AWS config file.
    ///   - profile: the profile to read; by default `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, then `default`.
    ///   - endpoint: an explicit endpoint URI, which beats every other source.
    ///   - endpointMode: an explicit mode, which beats the environment and profile modes (but not an endpoint).
    /// - Throws: ``IMDSClientError/invalidConfiguration(_:)`` naming the setting and the allowed values.
    public static func resolve(
        environment: [String: String], configFile: AWSConfigFile = AWSConfigFile(contents: ""),
        profile: String? = nil, endpoint: String? = nil, endpointMode: IMDSEndpointMode? = nil
    ) throws -> IMDSClientConfiguration {
        let profileName = profile ?? AWSConfigFile.selectedProfile(environment: environment)
        let keys = configFile.profile(profileName) ?? [:]
        func env(_ name: String) -> (value: String, source: String)? {
            guard let v = environment[name], !v.isEmpty else { return nil }
            return (v, name)
        }
        func file(_ key: String) -> (value: String, source: String)? {
            guard let v = keys[key], !v.isEmpty else { return nil }
            return (v, "\(key) in profile \(profileName)")
        }
        func setting(_ envName: String, _ key: String) -> (value: String, source: String)? { env(envName) ?? file(key) }

        var c = IMDSClientConfiguration()

        // Endpoint.
        if let endpoint {
            c.endpoint = try IMDSEndpoint(parsing: endpoint, source: "endpoint")
            c.endpointSource = "explicit"
        } else if let (v, src) = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint") {
            c.endpoint = try IMDSEndpoint(parsing: v, source: src)
            c.endpointSource = src
        } else if let endpointMode {
            c.endpoint = endpointMode.endpoint
            c.endpointSource = "explicit endpoint mode \(endpointMode.rawValue)"
        } else if let (v, src) = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ec2_metadata_service_endpoint_mode") {
            let mode = try IMDSEndpointMode(parsing: v, source: src)
            c.endpoint = mode.endpoint
            c.endpointSource = "\(src) (\(mode.rawValue))"
        } else if let (v, src) = setting("AWS_IMDS_USE_IPV6", "imds_use_ipv6"), v.lowercased() == "true" {
            c.endpoint = .ipv6
            c.endpointSource = src
        }

        // Switches. `AWS_EC2_METADATA_DISABLED` is true only for "true" (any case), as in every SDK.
        if let (v, _) = setting("AWS_EC2_METADATA_DISABLED", "disable_ec2_metadata") {
            c.disabled = v.trimmingCharacters(in: .whitespaces).lowercased() == "true"
        }
        if let (v, src) = setting("AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled") {
            switch v.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true": c.v1FallbackDisabled = true
            case "false": c.v1FallbackDisabled = false
            default: throw IMDSClientError.invalidConfiguration("invalid \(src) '\(v)': expected true or false")
            }
        }

        // Timeouts and attempts (botocore/PHP keys).
        if let (v, src) = setting("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout") {
            guard let seconds = Double(v.trimmingCharacters(in: .whitespaces)), seconds > 0, seconds <= 3600 else {
                throw IMDSClientError.invalidConfiguration("invalid \(src) '\(v)': expected a number of seconds greater than 0")
            }
            let d = Duration.milliseconds(Int64((seconds * 1000).rounded()))
            c.timeouts = IMDSTimeouts(connect: d, read: d)
        }
        if let (v, src) = setting("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts") {
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)), (1...100).contains(n) else {
                throw IMDSClientError.invalidConfiguration("invalid \(src) '\(v)': expected a whole number of attempts from 1 to 100")
            }
            c.retries = n - 1
        }

        if let (v, _) = setting("AWS_EC2_INSTANCE_PROFILE_NAME", "ec2_instance_profile_name") {
            c.instanceProfileName = v.trimmingCharacters(in: .whitespaces)
        }
        return c
    }

    /// The seconds before expiry at which a cached token is replaced.
    var effectiveRefreshBuffer: Int { min(tokenRefreshBuffer, tokenTTL / 4) }
}
