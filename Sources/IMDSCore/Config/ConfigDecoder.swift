import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a parsed document into an ``IMDSConfig``, strictly: unknown keys and invalid values are
/// errors that name the key and say what is allowed.
enum ConfigDecoder {
    static func decode(_ value: ConfigValue, base: IMDSConfig? = IMDSConfig.embeddedDefault) throws(ConfigError) -> IMDSConfig {
        if case .null = value { return base! }
        var root = try ConfigMap(value, path: "")
        var config = base ?? IMDSConfig(instance: blankInstance)
        if var inst = try root.map("instance") {
            config.instance = try decodeInstance(&inst, base: config.instance)
            try inst.finish()
        }
        if let list = root.value("instances") {
            config.instances = try decodeInstances(list, base: config.instance, alongside: root.pairs.contains { $0.key == "instance" })
        }
        if let fv = root.value("faults") {
            guard case .sequence(let items, _) = fv else {
                throw ConfigError(path: "faults", line: fv.line, message: "expected a list of faults, found \(fv.kindDescription)")
            }
            var faults: [Fault] = []
            for (index, item) in items.enumerated() {
                var fm = try ConfigMap(item, path: "faults[\(index)]")
                faults.append(try FaultSpec.decode(&fm))
                try fm.finish()
            }
            config.faults = faults
        }
        if let versions = try root.stringList("api-versions", element: isVersion, expected: "a version such as 2021-07-15 or 1.0") {
            config.apiVersions = versions.filter { $0 != "latest" }
        }
        if var d = try root.map("account-defaults") {
            config.accountDefaults = try decodeAccountDefaults(&d)
            try d.finish()
        }
        if var c = try root.map("control-plane") {
            config.controlPlane = try decodeControlPlane(&c)
            try c.finish()
        }
        if var t = try root.map("throttle") {
            guard let rate = try t.int("requests-per-second", range: InstanceThrottle.range) else {
                throw ConfigError(path: t.child("requests-per-second"), line: t.line, message: "required: the requests per second each instance may make")
            }
            config.throttle = InstanceThrottle(requestsPerSecond: rate, burst: try t.int("burst", range: InstanceThrottle.range))
            try t.finish()
        }
        if var p = try root.map("forwarding-proxy") {
            guard let addresses = try p.stringList("addresses", element: { CallerAddress.canonical($0) != nil }, expected: "an IPv4 or IPv6 address"),
                !addresses.isEmpty
            else {
                throw ConfigError(path: p.child("addresses"), line: p.line, message: "required: the proxies' source addresses (only they may name an instance)")
            }
            guard let secret = try p.string("shared-secret", expected: "the secret the proxy signs X-Instance-ID with", secret: true),
                secret.utf8.count >= 16
            else {
                throw ConfigError(path: p.child("shared-secret"), line: p.line, message: "required: a shared secret of at least 16 bytes")
            }
            config.forwardingProxy = ForwardingProxySettings(addresses: addresses, sharedSecret: secret)
            try p.finish()
        }
        if let store = try root.string("store", pattern: { $0.hasPrefix("postgres://") || $0.hasPrefix("postgresql://") },
                                       expected: "a postgres://USER@HOST:PORT/DATABASE URL", secret: true) {
            config.store = store
        }
        if var id = try root.map("identity") {
            config.identityKeyFile = try id.string("private-key", expected: "a PEM file path")
            config.identityCertificateFile = try id.string("certificate", expected: "a PEM file path")
            guard (config.identityKeyFile == nil) == (config.identityCertificateFile == nil) else {
                throw ConfigError(path: "identity", line: id.line, message: "set both private-key and certificate, or neither")
            }
            try id.finish()
        }
        try root.finish()
        return config
    }

    /// `instances:`: a fleet, each entry over `base` (the embedded default instance, or `instance:`
    /// when both are given: then `instance:` is the first of the fleet). Instance ids and caller
    /// addresses must be unique: one address answers as one instance.
    static func decodeInstances(_ value: ConfigValue, base: Instance, alongside single: Bool) throws(ConfigError) -> [Instance] {
        guard case .sequence(let items, _) = value else {
            throw ConfigError(path: "instances", line: value.line, message: "expected a list of instances, found \(value.kindDescription)")
        }
        guard !items.isEmpty || single else {
            throw ConfigError(path: "instances", line: value.line, message: "expected at least one instance")
        }
        var fleet: [Instance] = single ? [base] : []
        var owners: [String: String] = [:]
        func claim(_ i: Instance, path: String, line: Int?) throws(ConfigError) {
            for address in CallerAddress.addresses(of: i) {
                if let other = owners[address], other != i.instanceID {
                    throw ConfigError(path: path, line: line, message: "address \(address) is already \(other)'s (one address answers as one instance)")
                }
                owners[address] = i.instanceID
            }
        }
        if single { try claim(base, path: "instance", line: nil) }
        for (index, item) in items.enumerated() {
            var m = try ConfigMap(item, path: "instances[\(index)]")
            let i = try decodeInstance(&m, base: base)
            try m.finish()
            guard !fleet.contains(where: { $0.instanceID == i.instanceID }) else {
                throw ConfigError(path: m.child("instance-id"), line: item.line,
                                  message: "instance id \(i.instanceID) is listed twice (give every instance its own instance-id)")
            }
            try claim(i, path: m.path, line: item.line)
            fleet.append(i)
        }
        return fleet
    }

    static let blankInstance = Instance(
        instanceID: "", accountID: "", amiID: "", amiLaunchIndex: 0, amiManifestPath: "(unknown)", ancestorAMIIDs: [],
        instanceType: "", architecture: "x86_64", availabilityZone: "", regionOverride: nil,
        availabilityZoneIDOverride: nil, localIPv4: nil, publicIPv4: nil, ipv6Addresses: [], mac: "",
        securityGroups: [], securityGroupIDsOverride: nil, subnetIDOverride: nil, vpcIDOverride: nil,
        subnetIPv4CIDROverride: nil, vpcIPv4CIDROverride: nil, subnetIPv6CIDRs: [], vpcIPv6CIDRs: [],
        interfaceIDOverride: nil, hostnameOverride: nil, publicHostnameOverride: nil, reservationIDOverride: nil,
        kernelID: nil, ramdiskID: nil, productCodes: [], marketplaceProductCodes: [], billingProducts: [],
        instanceLifeCycle: "on-demand", profile: "default-hvm", launchTime: nil, publicKeys: [], blockDevices: [],
        placementGroup: nil, partitionNumber: nil, hostID: nil, userData: nil, iam: nil, tags: [],
        metadataOptions: PartialMetadataOptions(), amiIMDSSupport: nil, monitoring: "disabled", overrides: [])

    // MARK: - Validators

    static func matches(_ s: String, _ pattern: String) -> Bool {
        s.range(of: "^(?:" + pattern + ")$", options: .regularExpression) != nil
    }
    static func isVersion(_ s: String) -> Bool { s == "1.0" || s == "latest" || matches(s, "[0-9]{4}-[0-9]{2}-[0-9]{2}") }
    static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }
    static func isIPv6(_ s: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, s, &a) == 1
    }
    static func isCIDR(_ s: String, v6: Bool) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let p = Int(parts[1]) else { return false }
        return v6 ? (isIPv6(String(parts[0])) && (0...128).contains(p)) : (isIPv4(String(parts[0])) && (0...32).contains(p))
    }
    /// Tag keys EC2 allows when tags are exposed in metadata.
    static func isMetadataTagKey(_ s: String) -> Bool {
        matches(s, "[a-zA-Z0-9+=._:@-]{1,128}") && s != "." && s != ".." && s != "_index"
    }

    // MARK: - Instance

    static func decodeInstance(_ m: inout ConfigMap, base: Instance) throws(ConfigError) -> Instance {
        var i = base
        if let v = try m.string("instance-id", pattern: { matches($0, "i-[0-9a-f]{8}([0-9a-f]{9})?") },
                                expected: "i- followed by 8 or 17 lower-case hex digits") { i.instanceID = v }
        if let v = try m.string("account-id", pattern: { matches($0, "[0-9]{12}") }, expected: "12 digits, quoted in YAML") { i.accountID = v }
        if let v = try m.string("ami-id", pattern: { matches($0, "ami-[0-9a-f]{8,17}") }, expected: "ami- followed by 8 to 17 hex digits") { i.amiID = v }
        if let v = try m.int("ami-launch-index", range: 0...9999) { i.amiLaunchIndex = v }
        if let v = try m.string("ami-manifest-path") { i.amiManifestPath = v }
        if let v = try m.stringList("ancestor-ami-ids", element: { matches($0, "ami-[0-9a-f]{8,17}") }, expected: "an AMI id") { i.ancestorAMIIDs = v }
        if let v = try m.choice("ami-imds-support", ["v2.0"]) { i.amiIMDSSupport = v }
        if let v = try m.string("instance-type", pattern: { matches($0, "[a-z0-9-]+\\.[a-z0-9-]+") }, expected: "a type such as t3.micro") { i.instanceType = v }
        if let v = try m.choice("architecture", ["x86_64", "arm64", "i386"]) { i.architecture = v }
        if let v = try m.string("availability-zone", pattern: { matches($0, "[a-z]{2}(-[a-z0-9]+)+[a-z]") },
                                expected: "a zone such as ap-northeast-1a") { i.availabilityZone = v }
        if let v = try m.string("region", pattern: { matches($0, "[a-z]{2}(-[a-z0-9]+)+") }, expected: "a region such as ap-northeast-1") { i.regionOverride = v }
        if let v = try m.string("availability-zone-id", pattern: { matches($0, "[a-z0-9]+-az[0-9]+") }, expected: "an id such as apne1-az4") { i.availabilityZoneIDOverride = v }
        // Addresses: `null` (or an empty value) removes what the default instance has.
        if m.pairs.contains(where: { $0.key == "local-ipv4" }) { i.localIPv4 = try m.string("local-ipv4", pattern: isIPv4, expected: "an IPv4 address") }
        if m.pairs.contains(where: { $0.key == "public-ipv4" }) { i.publicIPv4 = try m.string("public-ipv4", pattern: isIPv4, expected: "an IPv4 address") }
        if let v = try m.stringList("ipv6", element: isIPv6, expected: "an IPv6 address") { i.ipv6Addresses = v }
        if let v = try m.stringList("caller-addresses", element: { isIPv4($0) || isIPv6($0) }, expected: "an IPv4 or IPv6 address") {
            i.callerAddresses = v
        }
        if let v = try m.string("mac", pattern: { matches($0.lowercased(), "[0-9a-f]{2}(:[0-9a-f]{2}){5}") },
                                expected: "six hex pairs separated by colons, e.g. 0e:12:34:56:78:9a") { i.mac = v.lowercased() }
        if let v = try m.stringList("security-groups", element: { !$0.isEmpty && !$0.contains("\n") }, expected: "a group name") { i.securityGroups = v }
        if let v = try m.stringList("security-group-ids", element: { matches($0, "sg-[0-9a-f]{8,17}") }, expected: "an id such as sg-0123456789abcdef0") { i.securityGroupIDsOverride = v }
        if let v = try m.string("subnet-id", pattern: { matches($0, "subnet-[0-9a-f]{8,17}") }, expected: "an id such as subnet-0123456789abcdef0") { i.subnetIDOverride = v }
        if let v = try m.string("vpc-id", pattern: { matches($0, "vpc-[0-9a-f]{8,17}") }, expected: "an id such as vpc-0123456789abcdef0") { i.vpcIDOverride = v }
        if let v = try m.string("interface-id", pattern: { matches($0, "eni-[0-9a-f]{8,17}") }, expected: "an id such as eni-0123456789abcdef0") { i.interfaceIDOverride = v }
        if let v = try m.string("subnet-ipv4-cidr-block", pattern: { isCIDR($0, v6: false) }, expected: "an IPv4 CIDR such as 10.0.1.0/24") { i.subnetIPv4CIDROverride = v }
        if let v = try m.string("vpc-ipv4-cidr-block", pattern: { isCIDR($0, v6: false) }, expected: "an IPv4 CIDR such as 10.0.0.0/16") { i.vpcIPv4CIDROverride = v }
        if let v = try m.stringList("subnet-ipv6-cidr-blocks", element: { isCIDR($0, v6: true) }, expected: "an IPv6 CIDR") { i.subnetIPv6CIDRs = v }
        if let v = try m.stringList("vpc-ipv6-cidr-blocks", element: { isCIDR($0, v6: true) }, expected: "an IPv6 CIDR") { i.vpcIPv6CIDRs = v }
        if let v = try m.string("hostname", pattern: { matches($0, "[A-Za-z0-9.-]{1,253}") }, expected: "a host name") { i.hostnameOverride = v }
        if let v = try m.string("public-hostname", pattern: { matches($0, "[A-Za-z0-9.-]{1,253}") }, expected: "a host name") { i.publicHostnameOverride = v }
        if let v = try m.string("reservation-id", pattern: { matches($0, "r-[0-9a-f]{8,17}") }, expected: "an id such as r-0123456789abcdef0") { i.reservationIDOverride = v }
        if m.pairs.contains(where: { $0.key == "kernel-id" }) { i.kernelID = try m.string("kernel-id", pattern: { matches($0, "aki-[0-9a-f]{8,17}") }, expected: "aki-…") }
        if m.pairs.contains(where: { $0.key == "ramdisk-id" }) { i.ramdiskID = try m.string("ramdisk-id", pattern: { matches($0, "ari-[0-9a-f]{8,17}") }, expected: "ari-…") }
        if let v = try m.stringList("product-codes", element: { matches($0, "[a-z0-9]{1,64}") }, expected: "a product code") { i.productCodes = v }
        if let v = try m.stringList("marketplace-product-codes", element: { matches($0, "[a-z0-9]{1,64}") }, expected: "a product code") { i.marketplaceProductCodes = v }
        if let v = try m.stringList("billing-products", element: { matches($0, "bp-[0-9a-f]{8}") }, expected: "an id such as bp-6ba54002") { i.billingProducts = v }
        if let v = try m.choice("instance-life-cycle", ["on-demand", "spot", "scheduled", "capacity-block"]) { i.instanceLifeCycle = v }
        if let v = try m.string("profile") { i.profile = v }
        if let v = try m.choice("monitoring", ["enabled", "disabled"]) { i.monitoring = v }
        if let v = try m.string("launch-time", pattern: { TimeFormat.parseISO8601($0) != nil }, expected: "a time such as 2026-01-02T03:04:05Z") {
            i.launchTime = TimeFormat.parseISO8601(v)
        }
        if var p = try m.map("placement") {
            if let v = try p.string("group-name") { i.placementGroup = v }
            if let v = try p.int("partition-number", range: 1...7) { i.partitionNumber = v }
            if let v = try p.string("host-id", pattern: { matches($0, "h-[0-9a-f]{17}") }, expected: "an id such as h-0123456789abcdef0") { i.hostID = v }
            try p.finish()
        }
        if let v = m.value("public-keys") {
            i.publicKeys = try decodeKeys(v, path: m.child("public-keys"))
        }
        if var b = try m.map("block-device-mapping") {
            var devices: [(name: String, device: String)] = []
            for (k, _) in b.pairs {
                guard matches(k, "ami|root|swap|ebs[0-9]+|ephemeral[0-9]+") else {
                    throw ConfigError(path: b.child(k), line: b.pairs.first { $0.key == k }?.value.line,
                                      message: "unknown device name '\(k)' (allowed: ami, root, swap, ebsN, ephemeralN)")
                }
                if let d = try b.string(k) { devices.append((k, d)) }
            }
            try b.finish()
            i.blockDevices = devices
        }
        if m.pairs.contains(where: { $0.key == "user-data" }) || m.pairs.contains(where: { $0.key == "user-data-base64" }) {
            var data: [UInt8]? = nil
            if let text = try m.string("user-data") { data = Array(text.utf8) }
            if let b64 = try m.string("user-data-base64") {
                guard data == nil else {
                    throw ConfigError(path: m.child("user-data-base64"), line: nil, message: "set user-data or user-data-base64, not both")
                }
                guard let d = Data(base64Encoded: b64, options: .ignoreUnknownCharacters) else {
                    throw ConfigError(path: m.child("user-data-base64"), line: nil, message: "not valid base64")
                }
                data = Array(d)
            }
            if let d = data, d.count > 16384 {
                throw ConfigError(path: m.child("user-data"), line: nil, message: "\(d.count) bytes is over EC2's limit of 16384 bytes")
            }
            i.userData = data
        }
        if m.pairs.contains(where: { $0.key == "iam" }) {
            if var iam = try m.map("iam") {
                i.iam = try decodeIAM(&iam, base: i.iam, accountIDForARN: i.accountID)
                try iam.finish()
            } else {
                i.iam = nil  // `iam: null` detaches the default role
            }
        }
        if m.pairs.contains(where: { $0.key == "tags" }) {
            if var t = try m.map("tags") {
                var tags: [(key: String, value: String)] = []
                for (k, _) in t.pairs {
                    guard isMetadataTagKey(k) else {
                        throw ConfigError(path: t.child(k), line: t.pairs.first { $0.key == k }?.value.line,
                                          message: "tag key '\(k)' cannot be exposed in instance metadata (allowed: 1-128 of a-z A-Z 0-9 + - = . _ : @, not '.', '..' or '_index')")
                    }
                    let v = try t.string(k) ?? ""
                    guard v.count <= 256 else {
                        throw ConfigError(path: t.child(k), line: nil, message: "tag values are at most 256 characters")
                    }
                    tags.append((k, v))
                }
                guard tags.count <= 50 else { throw ConfigError(path: m.child("tags"), line: nil, message: "at most 50 tags per instance") }
                try t.finish()
                i.tags = tags
            } else {
                i.tags = []
            }
        }
        if var o = try m.map("metadata-options") {
            var opts = PartialMetadataOptions()
            if let v = try o.choice("http-tokens", ["optional", "required"]) { opts.httpTokens = .init(rawValue: v) }
            if let v = try o.choice("http-endpoint", ["enabled", "disabled"]) { opts.httpEndpoint = .init(rawValue: v) }
            if let v = try o.int("http-put-response-hop-limit", range: MetadataOptions.hopLimitRange) { opts.httpPutResponseHopLimit = v }
            if let v = try o.choice("http-protocol-ipv6", ["enabled", "disabled"]) { opts.httpProtocolIPv6 = .init(rawValue: v) }
            if let v = try o.choice("instance-metadata-tags", ["enabled", "disabled"]) { opts.instanceMetadataTags = .init(rawValue: v) }
            try o.finish()
            i.metadataOptions = opts
        }
        if let ev = m.value("events") {
            guard case .sequence(let items, _) = ev else {
                throw ConfigError(path: m.child("events"), line: ev.line, message: "expected a list of events, found \(ev.kindDescription)")
            }
            var specs: [EventSpec] = []
            for (index, item) in items.enumerated() {
                var em = try ConfigMap(item, path: "\(m.child("events"))[\(index)]")
                specs.append(try EventSpec.decode(&em))
                try em.finish()
            }
            i.eventTimeline = specs
        }
        if var ov = try m.map("overrides") {
            var list: [(path: String, value: String?)] = []
            for (k, v) in ov.pairs {
                let parts = k.split(separator: "/")
                guard let first = parts.first, ["meta-data", "dynamic", "user-data"].contains(String(first)),
                    !parts.contains(where: { $0 == "." || $0 == ".." })
                else {
                    throw ConfigError(path: ov.child(k), line: v.line,
                                      message: "override paths start with meta-data/, dynamic/ or user-data (relative to /latest/)")
                }
                switch v {
                case .null: list.append((k, nil))
                case .scalar(let s, _): list.append((k, s))
                default: throw ConfigError(path: ov.child(k), line: v.line, message: "expected a text value or null, found \(v.kindDescription)")
                }
                _ = ov.value(k)
            }
            try ov.finish()
            i.overrides = list
        }
        return i
    }

    /// `account-defaults:` as `ModifyInstanceMetadataDefaults` takes them; `no-preference` (or -1) clears one.
    static func decodeAccountDefaults(_ m: inout ConfigMap) throws(ConfigError) -> AccountDefaults {
        var d = AccountDefaults()
        let toggle = ["enabled", "disabled", "no-preference"]
        if let v = try m.choice("http-tokens", ["optional", "required", "no-preference"]) { d.httpTokens = .init(rawValue: v) }
        if let v = try m.choice("http-endpoint", toggle) { d.httpEndpoint = .init(rawValue: v) }
        if let v = try m.string("http-put-response-hop-limit", expected: "an integer") {
            guard let n = Int(v), n == -1 || MetadataOptions.hopLimitRange.contains(n) else {
                throw ConfigError(path: m.child("http-put-response-hop-limit"), line: m.pairs.first { $0.key == "http-put-response-hop-limit" }?.value.line,
                                  message: "'\(v)' is not allowed (allowed: an integer from 1 to 64, or -1 for no preference)")
            }
            d.httpPutResponseHopLimit = n == -1 ? nil : n
        }
        if let v = try m.choice("instance-metadata-tags", toggle) { d.instanceMetadataTags = .init(rawValue: v) }
        if let v = try m.choice("http-tokens-enforced", toggle) { d.httpTokensEnforced = .init(rawValue: v) }
        return d
    }

    /// `control-plane: {access-keys: [{access-key-id, secret-access-key, read-only}]}`.
    static func decodeControlPlane(_ m: inout ConfigMap) throws(ConfigError) -> ControlPlaneSettings {
        var settings = ControlPlaneSettings()
        guard let list = m.value("access-keys") else { return settings }
        guard case .sequence(let items, _) = list else {
            throw ConfigError(path: m.child("access-keys"), line: list.line,
                              message: "expected a list of {access-key-id, secret-access-key}, found \(list.kindDescription)")
        }
        for (index, item) in items.enumerated() {
            var k = try ConfigMap(item, path: "\(m.child("access-keys"))[\(index)]")
            guard let id = try k.string("access-key-id", pattern: { matches($0, "[A-Za-z0-9]{3,128}") },
                                        expected: "an access key id of 3 to 128 letters and digits, such as AKIAIOSFODNN7EXAMPLE") else {
                throw ConfigError(path: k.child("access-key-id"), line: k.line, message: "missing: every access key needs an access-key-id")
            }
            guard let secret = try k.string("secret-access-key", pattern: { $0.count >= 4 && !$0.contains(where: \.isWhitespace) },
                                            expected: "a secret of at least 4 characters without spaces", secret: true) else {
                throw ConfigError(path: k.child("secret-access-key"), line: k.line, message: "missing: every access key needs a secret-access-key")
            }
            let readOnly = try k.bool("read-only") ?? false
            try k.finish()
            guard !settings.accessKeys.contains(where: { $0.accessKeyID == id }) else {
                throw ConfigError(path: k.child("access-key-id"), line: k.line, message: "access key id '\(id)' is listed twice")
            }
            settings.accessKeys.append(ControlPlaneAccessKey(accessKeyID: id, secretAccessKey: secret, readOnly: readOnly))
        }
        return settings
    }

    static func decodeKeys(_ v: ConfigValue, path: String) throws(ConfigError) -> [Instance.PublicKey] {
        let isKey: (String) -> Bool = { matches($0, "(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?") }
        var keys: [Instance.PublicKey] = []
        switch v {
        case .mapping(let pairs, _):
            for (name, value) in pairs {
                guard case .scalar(let key, let line) = value, isKey(key) else {
                    throw ConfigError(path: "\(path).\(name)", line: value.line, message: "expected an OpenSSH public key such as 'ssh-ed25519 AAAA… comment'")
                }
                _ = line
                keys.append(.init(name: name, openSSHKey: key))
            }
        case .sequence: throw ConfigError(path: path, line: v.line, message: "expected a mapping of key name to OpenSSH public key")
        default: throw ConfigError(path: path, line: v.line, message: "expected a mapping of key name to OpenSSH public key, found \(v.kindDescription)")
        }
        return keys
    }

    static func decodeIAM(_ m: inout ConfigMap, base: Instance.IAM?, accountIDForARN: String = "123456789012") throws(ConfigError) -> Instance.IAM {
        let namePattern = "[A-Za-z0-9+=,.@_-]{1,64}"
        guard let role = try m.string("role", pattern: { matches($0, namePattern) }, expected: "an IAM role name") ?? base?.role else {
            throw ConfigError(path: m.child("role"), line: m.line, message: "missing: an instance with iam needs a role name")
        }
        var iam = Instance.IAM(role: role, credentials: base?.credentials ?? .init())
        if let v = try m.string("instance-profile", pattern: { matches($0, namePattern) }, expected: "an instance profile name") { iam.instanceProfileName = v }
        if let v = try m.string("instance-profile-id", pattern: { matches($0, "AIPA[A-Z0-9]{16,17}") }, expected: "an id such as AIPAVMQT32F2Q43IXV2TC") { iam.instanceProfileID = v }
        if var c = try m.map("credentials") {
            var s = iam.credentials
            let source = try c.choice("source", ["generated", "fixed", "assume-role"]) ?? "generated"
            if let v = try c.duration("lifetime", range: 600...43200) { s.lifetime = v }
            let explicitRotation = try c.duration("rotate-before-expiry", range: 300...43200)
            if let v = explicitRotation { s.rotateBeforeExpiry = v } else { s.rotateBeforeExpiry = min(3600, max(300, s.lifetime / 2)) }
            if let v = try c.bool("distinct-v1-credentials") { s.distinctV1Credentials = v }
            let akid = try c.string("access-key-id", pattern: { matches($0, "(ASIA|AKIA)[A-Z0-9]{12,124}") }, expected: "an access key id such as ASIAEXAMPLE123456789")
            let secret = try c.string("secret-access-key", pattern: { $0.count >= 16 }, expected: "a secret of at least 16 characters", secret: true)
            let token = try c.string("token", pattern: { !$0.isEmpty }, expected: "a session token", secret: true)
            if source == "assume-role" {
                guard akid == nil, secret == nil, token == nil else {
                    throw ConfigError(path: c.child("access-key-id"), line: nil, message: "assume-role takes source-access-key-id and source-secret-access-key, not fixed values")
                }
                guard let endpoint = try c.string("sts-endpoint", pattern: { $0.hasPrefix("http://") }, expected: "an http:// URL such as http://127.0.0.1:5000 (https is not supported)") else {
                    throw ConfigError(path: c.child("sts-endpoint"), line: c.line, message: "missing: the STS endpoint to call, e.g. http://127.0.0.1:5000")
                }
                guard let sak = try c.string("source-access-key-id", pattern: { !$0.isEmpty }, expected: "an access key id"),
                      let ssk = try c.string("source-secret-access-key", pattern: { !$0.isEmpty }, expected: "a secret access key", secret: true)
                else {
                    throw ConfigError(path: c.child("source-access-key-id"), line: c.line, message: "missing: assume-role needs source-access-key-id and source-secret-access-key (the credentials that call AssumeRole)")
                }
                let arn = try c.string("role-arn", pattern: { matches($0, "arn:aws[a-z-]*:iam::[0-9]{12}:role/.+") }, expected: "a role ARN such as arn:aws:iam::123456789012:role/app-role")
                s.source = .assumeRole(.init(
                    roleARN: arn ?? "arn:aws:iam::\(accountIDForARN):role/\(role)", stsEndpoint: endpoint,
                    region: try c.string("region", pattern: { matches($0, "[a-z]{2}(-[a-z0-9]+)+") }, expected: "a region") ?? "us-east-1",
                    sourceAccessKeyID: sak, sourceSecretAccessKey: ssk,
                    sourceSessionToken: try c.string("source-session-token"),
                    sessionName: try c.string("session-name", pattern: { matches($0, "[\\w+=,.@-]{2,64}") }, expected: "2-64 of letters, digits and +=,.@_-"),
                    externalID: try c.string("external-id")))
            } else if source == "fixed" {
                guard let akid, let secret, let token else {
                    throw ConfigError(path: c.child("source"), line: nil,
                                      message: "source 'fixed' needs access-key-id, secret-access-key and token")
                }
                s.source = .fixed(.init(accessKeyID: akid, secretAccessKey: secret, token: token))
            } else {
                guard akid == nil, secret == nil, token == nil else {
                    throw ConfigError(path: c.child("access-key-id"), line: nil, message: "fixed values need source: fixed")
                }
                s.source = .generated
            }
            guard s.rotateBeforeExpiry < s.lifetime else {
                throw ConfigError(path: c.child("rotate-before-expiry"), line: nil,
                                  message: "must be shorter than lifetime (\(s.lifetime)s); new credentials must appear before the old ones expire")
            }
            try c.finish()
            iam.credentials = s
        }
        return iam
    }
}
