import Foundation
import IMDSClient
import Testing

/// One case of the SDKs' shared endpoint-resolution suite (smithy-rs `imds-endpoint-tests.json`).
struct EndpointCase: Sendable, CustomTestStringConvertible {
    var name: String
    var env: [String: String] = [:]
    var config: String?
    var endpointOverride: String?
    var modeOverride: IMDSEndpointMode?
    /// The token URL, or nil for an error.
    var expected: String?
    /// Text the error must contain.
    var errorContains: String?
    var testDescription: String { name }
}

let endpointCases: [EndpointCase] = [
    EndpointCase(name: "all fields unset, default endpoint", expected: "http://169.254.169.254/latest/api/token"),
    EndpointCase(name: "environment variable endpoint override", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://override:456"],
                 expected: "http://override:456/latest/api/token"),
    EndpointCase(name: "profile endpoint override", config: "[default]\nec2_metadata_service_endpoint = http://override:456",
                 expected: "http://override:456/latest/api/token"),
    EndpointCase(name: "environment overrides profile", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://override:456"],
                 config: "[default]\nec2_metadata_service_endpoint = http://wrong:456", expected: "http://override:456/latest/api/token"),
    EndpointCase(name: "invalid endpoint mode override", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "error"],
                 errorContains: "'error'"),
    EndpointCase(name: "ipv4 endpoint", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4"],
                 expected: "http://169.254.169.254/latest/api/token"),
    EndpointCase(name: "ipv6 endpoint", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"],
                 expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "case insensitive endpoint", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipV6"],
                 expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "ipv6 endpoint from config", config: "[default]\nec2_metadata_service_endpoint_mode = IPv6",
                 expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "invalid config endpoint mode", config: "[default]\nec2_metadata_service_endpoint_mode = IPv7",
                 errorContains: "'IPv7'"),
    EndpointCase(name: "explicit endpoint override", config: "[default]\nec2_metadata_service_endpoint_mode = IPv6",
                 endpointOverride: "https://custom", expected: "https://custom/latest/api/token"),
    EndpointCase(name: "explicit mode override", config: "[default]\nec2_metadata_service_endpoint_mode = IPv4",
                 modeOverride: .ipv6, expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "invalid uri", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "not a uri"], errorContains: "not a valid URI"),
    EndpointCase(name: "environment variable overrides endpoint mode override",
                 env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://169.254.169.200"], modeOverride: .ipv6,
                 expected: "http://169.254.169.200/latest/api/token"),
    // Beyond the shared suite.
    EndpointCase(name: "named profile via AWS_PROFILE", env: ["AWS_PROFILE": "ci"],
                 config: "[default]\nec2_metadata_service_endpoint = http://wrong\n[profile ci]\nec2_metadata_service_endpoint = http://[::1]:1338\n",
                 expected: "http://[::1]:1338/latest/api/token"),
    EndpointCase(name: "[ci] without 'profile' is not a profile in the config file", env: ["AWS_PROFILE": "ci"],
                 config: "[ci]\nec2_metadata_service_endpoint = http://wrong\n", expected: "http://169.254.169.254/latest/api/token"),
    EndpointCase(name: "AWS_DEFAULT_PROFILE when AWS_PROFILE is unset", env: ["AWS_DEFAULT_PROFILE": "b"],
                 config: "[profile b]\nec2_metadata_service_endpoint_mode = ipv6\n", expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "legacy AWS_IMDS_USE_IPV6", env: ["AWS_IMDS_USE_IPV6": "true"], expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "mode wins over the legacy switch", env: ["AWS_IMDS_USE_IPV6": "true", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4"],
                 expected: "http://169.254.169.254/latest/api/token"),
    EndpointCase(name: "legacy imds_use_ipv6 in the profile", config: "[default]\nimds_use_ipv6 = true\n",
                 expected: "http://[fd00:ec2::254]/latest/api/token"),
    EndpointCase(name: "comments and spacing", config: "# c\n[default]   \n; c\n  ec2_metadata_service_endpoint=http://h:9 # note\n",
                 expected: "http://h:9/latest/api/token"),
    EndpointCase(name: "empty env value is unset", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": ""],
                 config: "[default]\nec2_metadata_service_endpoint = http://p:1\n", expected: "http://p:1/latest/api/token"),
    EndpointCase(name: "endpoint with a trailing slash", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://10.0.0.1:8080/"],
                 expected: "http://10.0.0.1:8080/latest/api/token"),
    EndpointCase(name: "unsupported scheme", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "ftp://x"], errorContains: "scheme"),
    EndpointCase(name: "bad port", env: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://x:99999"], errorContains: "port"),
]

@Suite("Client configuration")
struct ConfigurationTests {
    @Test(arguments: endpointCases)
    func endpointResolution(_ c: EndpointCase) throws {
        let file = AWSConfigFile(contents: c.config ?? "")
        do {
            let config = try IMDSClientConfiguration.resolve(environment: c.env, configFile: file,
                                                             endpoint: c.endpointOverride, endpointMode: c.modeOverride)
            #expect(c.expected != nil, "expected an error containing \(c.errorContains ?? "")")
            #expect(config.endpoint.url(for: "/latest/api/token") == c.expected)
        } catch let e as IMDSClientError {
            guard case .invalidConfiguration(let message) = e else {
                Issue.record("unexpected error \(e)")
                return
            }
            #expect(c.expected == nil, "unexpected error: \(message)")
            #expect(message.contains(c.errorContains ?? "<none>"), "\(message)")
        }
    }

    @Test(arguments: [
        ("AWS_EC2_METADATA_DISABLED", "true", true), ("AWS_EC2_METADATA_DISABLED", "TRUE", true),
        ("AWS_EC2_METADATA_DISABLED", "false", false), ("AWS_EC2_METADATA_DISABLED", "yes", false),
        ("AWS_EC2_METADATA_DISABLED", "1", false),
    ])
    func disabledSwitch(name: String, value: String, disabled: Bool) throws {
        let c = try IMDSClientConfiguration.resolve(environment: [name: value])
        #expect(c.disabled == disabled)
    }

    @Test func disabledFromConfigFileAndEnvWins() throws {
        let file = AWSConfigFile(contents: "[default]\ndisable_ec2_metadata = true\n")
        #expect(try IMDSClientConfiguration.resolve(environment: [:], configFile: file).disabled)
        #expect(try !IMDSClientConfiguration.resolve(environment: ["AWS_EC2_METADATA_DISABLED": "false"], configFile: file).disabled)
    }

    @Test func v1FallbackSwitch() throws {
        #expect(try !IMDSClientConfiguration.resolve(environment: [:]).v1FallbackDisabled)
        #expect(try IMDSClientConfiguration.resolve(environment: ["AWS_EC2_METADATA_V1_DISABLED": "True"]).v1FallbackDisabled)
        #expect(try !IMDSClientConfiguration.resolve(environment: ["AWS_EC2_METADATA_V1_DISABLED": "false"]).v1FallbackDisabled)
        let file = AWSConfigFile(contents: "[profile p]\nec2_metadata_v1_disabled = true\n")
        #expect(try IMDSClientConfiguration.resolve(environment: ["AWS_PROFILE": "p"], configFile: file).v1FallbackDisabled)
        #expect(try !IMDSClientConfiguration.resolve(environment: ["AWS_PROFILE": "p", "AWS_EC2_METADATA_V1_DISABLED": "false"],
                                                     configFile: file).v1FallbackDisabled)
        #expect(throws: IMDSClientError.self) {
            try IMDSClientConfiguration.resolve(environment: ["AWS_EC2_METADATA_V1_DISABLED": "maybe"])
        }
    }

    @Test func timeoutsAndAttempts() throws {
        let d = try IMDSClientConfiguration.resolve(environment: [:])
        #expect(d.timeouts == IMDSTimeouts(connect: .seconds(1), read: .seconds(1)))
        #expect(d.retries == 3)
        #expect(d.tokenTTL == 21600)
        let c = try IMDSClientConfiguration.resolve(environment: ["AWS_METADATA_SERVICE_TIMEOUT": "2.5",
                                                                  "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "1"])
        #expect(c.timeouts == IMDSTimeouts(connect: .milliseconds(2500), read: .milliseconds(2500)))
        #expect(c.retries == 0)
        let file = AWSConfigFile(contents: "[default]\nmetadata_service_timeout = 3\nmetadata_service_num_attempts = 5\n")
        let f = try IMDSClientConfiguration.resolve(environment: [:], configFile: file)
        #expect(f.timeouts.read == .seconds(3))
        #expect(f.retries == 4)
        for bad in [["AWS_METADATA_SERVICE_TIMEOUT": "0"], ["AWS_METADATA_SERVICE_TIMEOUT": "soon"],
                    ["AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"], ["AWS_METADATA_SERVICE_NUM_ATTEMPTS": "2.5"]] {
            #expect(throws: IMDSClientError.self, "\(bad)") { try IMDSClientConfiguration.resolve(environment: bad) }
        }
    }

    @Test func instanceProfileName() throws {
        #expect(try IMDSClientConfiguration.resolve(environment: [:]).instanceProfileName == nil)
        #expect(try IMDSClientConfiguration.resolve(environment: ["AWS_EC2_INSTANCE_PROFILE_NAME": "app"]).instanceProfileName == "app")
        let file = AWSConfigFile(contents: "[default]\nec2_instance_profile_name = fromfile\n")
        #expect(try IMDSClientConfiguration.resolve(environment: [:], configFile: file).instanceProfileName == "fromfile")
    }

    @Test func configFileFromEnvironment() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imds-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("config").path
        try "[profile x]\nec2_metadata_service_endpoint = http://127.0.0.1:7\n".write(toFile: path, atomically: true, encoding: .utf8)
        let env = ["AWS_CONFIG_FILE": path, "AWS_PROFILE": "x"]
        let c = try IMDSClientConfiguration.resolve(environment: env, configFile: AWSConfigFile.load(environment: env))
        #expect(c.endpoint == IMDSEndpoint(host: "127.0.0.1", port: 7))
        #expect(c.endpointSource.contains("profile x"))
        // A missing file is an empty config; HOME decides the default location.
        let none = try AWSConfigFile.load(environment: ["HOME": dir.path])
        #expect(none.profiles.isEmpty)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".aws"), withIntermediateDirectories: true)
        try "[default]\nec2_metadata_service_endpoint_mode = IPv6\n".write(
            toFile: dir.appendingPathComponent(".aws/config").path, atomically: true, encoding: .utf8)
        #expect(try AWSConfigFile.load(environment: ["HOME": dir.path]).profile("default")?["ec2_metadata_service_endpoint_mode"] == "IPv6")
    }

    @Test(arguments: [
        ("instance-id", "/latest/meta-data/instance-id"),
        ("meta-data/instance-id", "/latest/meta-data/instance-id"),
        ("/latest/meta-data/instance-id", "/latest/meta-data/instance-id"),
        ("latest/meta-data/", "/latest/meta-data/"),
        ("user-data", "/latest/user-data"),
        ("dynamic/instance-identity/document", "/latest/dynamic/instance-identity/document"),
        ("2021-03-23/meta-data/ami-id", "/2021-03-23/meta-data/ami-id"),
        ("1.0/meta-data/", "/1.0/meta-data/"),
        ("http://169.254.169.254/latest/meta-data/mac", "/latest/meta-data/mac"),
        ("placement/region", "/latest/meta-data/placement/region"),
        ("/", "/"),
        ("", "/latest/meta-data/"),
    ])
    func pathForms(input: String, path: String) {
        #expect(IMDSPath.normalize(input) == path)
    }

    @Test func endpointParsing() throws {
        let e = try IMDSEndpoint(parsing: "http://[fd00:ec2::254]")
        #expect(e.host == "fd00:ec2::254" && e.port == 80 && e.isIPv6)
        #expect(e.url(for: "/x") == "http://[fd00:ec2::254]/x")
        let p = try IMDSEndpoint(parsing: "http://[::1]:1338")
        #expect(p.authority == "[::1]:1338")
        for bad in ["169.254.169.254", "http://", "http://a b", "http://[::1", "http://u@h", "http://h?x=1"] {
            #expect(throws: IMDSClientError.self, "\(bad)") { try IMDSEndpoint(parsing: bad) }
        }
    }
}
