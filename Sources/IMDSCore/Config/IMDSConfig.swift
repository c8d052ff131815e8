import Foundation

/// The whole config file: the instances and the service's data settings.
public struct IMDSConfig: Sendable, Equatable {
    /// The instances the file launches (`instance:`, or the fleet of `instances:`), never empty.
    public var instances: [Instance]
    /// The first (with `instance:`, the only) instance: the one every caller sees when it is alone.
    public var instance: Instance {
        get { instances[0] }
        set { instances[0] = newValue }
    }
    /// Versions listed at `/` and served as trees (`latest` is always served and listed last).
    public var apiVersions: [String]
    /// `account-defaults:`: account-level metadata defaults applied when the instance is launched
    /// (nil when the file does not set them).
    public var accountDefaults: AccountDefaults?
    /// `control-plane:`: access keys for the control plane.
    public var controlPlane: ControlPlaneSettings
    /// PEM files with the key and certificate that sign identity documents (both or neither);
    /// relative paths are resolved against the config file's directory.
    public var identityKeyFile: String?
    public var identityCertificateFile: String?
    /// Faults active from the start (off unless listed).
    public var faults: [Fault] = []
    /// `throttle:`: the per-instance request rate (nil: not throttled).
    public var throttle: InstanceThrottle?
    /// `forwarding-proxy:`: a trusted proxy that names the instance in a signed header (nil: none).
    public var forwardingProxy: ForwardingProxySettings?
    /// `store:`: where instance state lives when it is not embedded: a `postgres://` URL shared by
    /// every imds on that database (docs/postgres.md); nil: the embedded store. `--store` overrides it.
    public var store: String?

    public init(instance: Instance, apiVersions: [String] = APIVersions.default,
                accountDefaults: AccountDefaults? = nil, controlPlane: ControlPlaneSettings = ControlPlaneSettings()) {
        self.instances = [instance]
        self.apiVersions = apiVersions
        self.accountDefaults = accountDefaults
        self.controlPlane = controlPlane
    }

    /// Every secret value the file configures (control-plane secret keys, fixed credentials' secret
    /// and token, assume-role source secret and session token), for redaction from every output.
    public var secrets: [String] {
        var out = controlPlane.accessKeys.map(\.secretAccessKey)
        if let p = forwardingProxy { out.append(p.sharedSecret) }
        if let password = store.flatMap({ URLComponents(string: $0)?.password }), !password.isEmpty { out.append(password) }
        for instance in instances {
            switch instance.iam?.credentials.source {
            case .fixed(let f)?: out += [f.secretAccessKey, f.token]
            case .assumeRole(let a)?: out += [a.sourceSecretAccessKey] + (a.sourceSessionToken.map { [$0] } ?? [])
            case .generated?, nil: break
            }
        }
        return out
    }

    /// Reads a YAML (`.yaml`, `.yml`) or JSON (`.json`) file; other extensions are read as YAML.
    public static func load(path: String) throws(ConfigError) -> IMDSConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw ConfigError(file: path, path: nil, line: nil, message: exists ? "cannot be read" : "no such file")
        }
        do {
            var config = try parse(data, isJSON: path.lowercased().hasSuffix(".json"))
            let dir = (path as NSString).deletingLastPathComponent
            func resolve(_ p: String?) -> String? {
                guard let p, !p.hasPrefix("/") else { return p }
                return (dir.isEmpty ? p : (dir as NSString).appendingPathComponent(p))
            }
            config.identityKeyFile = resolve(config.identityKeyFile)
            config.identityCertificateFile = resolve(config.identityCertificateFile)
            return config
        } catch var error {
            error.file = path
            throw error
        }
    }

    /// Parses config bytes; keys absent from the document come from ``embeddedDefault``.
    public static func parse(_ data: Data, isJSON: Bool) throws(ConfigError) -> IMDSConfig {
        let value: ConfigValue
        if isJSON {
            value = try ConfigValue.parseJSON(data)
        } else {
            guard let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(path: nil, line: nil, message: "not UTF-8 text")
            }
            value = try ConfigValue.parseYAML(text)
        }
        return try ConfigDecoder.decode(value)
    }

    /// The realistic instance `imds serve` answers for when no config file is given.
    public static let embeddedDefault: IMDSConfig = {
        // The embedded YAML is part of the product; a failure here is a programming error caught by tests.
        try! ConfigDecoder.decode(ConfigValue.parseYAML(EmbeddedDefault.yaml), base: nil)
    }()
}

/// The embedded default instance, as a config document (every key set).
public enum EmbeddedDefault {
    public static let yaml = """
        instance:
          instance-id: i-0abc1234def567890
          account-id: "123456789012"
          ami-id: ami-0123456789abcdef0
          ami-launch-index: 0
          ami-manifest-path: (unknown)
          instance-type: t3.micro
          architecture: x86_64
          availability-zone: ap-northeast-1a
          local-ipv4: 10.0.1.23
          public-ipv4: 203.0.113.10
          mac: 0e:12:34:56:78:9a
          security-groups: [default]
          instance-life-cycle: on-demand
          profile: default-hvm
          monitoring: disabled
          block-device-mapping:
            ami: /dev/xvda
            root: /dev/xvda
          public-keys:
            imds-default: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIElvGSH5XYwy/fTj98EfRraimnw1oWO3J6m1J699eTKi imds-default
          user-data: |
            #!/bin/bash
            echo hello
          iam:
            role: app-role
          tags:
            Name: web-1
            Env: dev
        """
}
