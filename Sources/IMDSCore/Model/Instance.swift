import Foundation

/// An EC2 instance as the config file describes it. The metadata tree is derived from it
/// (``MetadataTreeBuilder``), so every item is consistent with every other.
public struct Instance: Sendable, Equatable {
    public struct PublicKey: Sendable, Equatable {
        public var name: String
        public var openSSHKey: String
        public init(name: String, openSSHKey: String) {
            self.name = name
            self.openSSHKey = openSSHKey
        }
    }

    public struct IAM: Sendable, Equatable {
        /// The role whose credentials are served under `iam/security-credentials/<role>`.
        public var role: String
        /// The instance profile's name (in `iam/info`'s ARN); defaults to the role name.
        public var instanceProfileName: String?
        /// `AIPA…` id of the instance profile; derived from the ARN when absent.
        public var instanceProfileID: String?
        public var credentials: CredentialSettings
        public init(role: String, instanceProfileName: String? = nil, instanceProfileID: String? = nil,
                    credentials: CredentialSettings = .init()) {
            self.role = role
            self.instanceProfileName = instanceProfileName
            self.instanceProfileID = instanceProfileID
            self.credentials = credentials
        }
    }

    public var instanceID: String
    public var accountID: String
    public var amiID: String
    public var amiLaunchIndex: Int
    public var amiManifestPath: String
    public var ancestorAMIIDs: [String]
    public var instanceType: String
    public var architecture: String
    public var availabilityZone: String
    /// Explicit region; derived from the availability zone when nil.
    public var regionOverride: String?
    public var availabilityZoneIDOverride: String?
    public var localIPv4: String?
    public var publicIPv4: String?
    public var ipv6Addresses: [String]
    public var mac: String
    public var securityGroups: [String]
    public var securityGroupIDsOverride: [String]?
    public var subnetIDOverride: String?
    public var vpcIDOverride: String?
    public var subnetIPv4CIDROverride: String?
    public var vpcIPv4CIDROverride: String?
    public var subnetIPv6CIDRs: [String]
    public var vpcIPv6CIDRs: [String]
    public var interfaceIDOverride: String?
    public var hostnameOverride: String?
    public var publicHostnameOverride: String?
    public var reservationIDOverride: String?
    public var kernelID: String?
    public var ramdiskID: String?
    public var productCodes: [String]
    public var marketplaceProductCodes: [String]
    public var billingProducts: [String]
    public var instanceLifeCycle: String
    public var profile: String
    /// Launch time (`pendingTime` in the identity document); the server's start when nil.
    public var launchTime: Date?
    public var publicKeys: [PublicKey]
    /// `block-device-mapping/` entries in order (`ami`, `root`, `ebs1`, ...).
    public var blockDevices: [(name: String, device: String)]
    public var placementGroup: String?
    public var partitionNumber: Int?
    public var hostID: String?
    public var userData: [UInt8]?
    public var iam: IAM?
    public var tags: [(key: String, value: String)]
    /// Metadata options stated in the config (absent ones come from AMI, account defaults, EC2 defaults).
    public var metadataOptions: PartialMetadataOptions
    /// The AMI's `ImdsSupport` (`v2.0`), if marked.
    public var amiIMDSSupport: String?
    /// `dynamic/fws/instance-monitoring`: `enabled` (detailed monitoring) or `disabled`.
    public var monitoring: String
    /// Extra or replaced paths, relative to the version root (`meta-data/foo` → value; nil removes).
    public var overrides: [(path: String, value: String?)]
    /// Events scheduled from the config (a timeline; relative times count from the server's start).
    public var eventTimeline: [EventSpec] = []
    /// Extra source addresses that are this instance's callers (`caller-addresses:`), besides its
    /// private IPv4 and IPv6 addresses: e.g. `127.0.0.2` for a fleet on loopback without root.
    public var callerAddresses: [String] = []

    public static func == (a: Instance, b: Instance) -> Bool {
        // Tuples are not Equatable; compare their flattened forms.
        a.instanceID == b.instanceID && a.accountID == b.accountID && a.amiID == b.amiID
            && a.amiLaunchIndex == b.amiLaunchIndex && a.amiManifestPath == b.amiManifestPath
            && a.ancestorAMIIDs == b.ancestorAMIIDs && a.instanceType == b.instanceType
            && a.architecture == b.architecture && a.availabilityZone == b.availabilityZone
            && a.regionOverride == b.regionOverride && a.availabilityZoneIDOverride == b.availabilityZoneIDOverride
            && a.localIPv4 == b.localIPv4 && a.publicIPv4 == b.publicIPv4 && a.ipv6Addresses == b.ipv6Addresses
            && a.mac == b.mac && a.securityGroups == b.securityGroups
            && a.securityGroupIDsOverride == b.securityGroupIDsOverride && a.subnetIDOverride == b.subnetIDOverride
            && a.vpcIDOverride == b.vpcIDOverride && a.subnetIPv4CIDROverride == b.subnetIPv4CIDROverride
            && a.vpcIPv4CIDROverride == b.vpcIPv4CIDROverride && a.subnetIPv6CIDRs == b.subnetIPv6CIDRs
            && a.vpcIPv6CIDRs == b.vpcIPv6CIDRs && a.interfaceIDOverride == b.interfaceIDOverride
            && a.hostnameOverride == b.hostnameOverride && a.publicHostnameOverride == b.publicHostnameOverride
            && a.reservationIDOverride == b.reservationIDOverride && a.kernelID == b.kernelID
            && a.ramdiskID == b.ramdiskID && a.productCodes == b.productCodes
            && a.marketplaceProductCodes == b.marketplaceProductCodes && a.billingProducts == b.billingProducts
            && a.instanceLifeCycle == b.instanceLifeCycle && a.profile == b.profile && a.launchTime == b.launchTime
            && a.publicKeys == b.publicKeys && a.blockDevices.map { [$0.name, $0.device] } == b.blockDevices.map { [$0.name, $0.device] }
            && a.placementGroup == b.placementGroup && a.partitionNumber == b.partitionNumber && a.hostID == b.hostID
            && a.userData == b.userData && a.iam == b.iam && a.tags.map { [$0.key, $0.value] } == b.tags.map { [$0.key, $0.value] }
            && a.metadataOptions == b.metadataOptions && a.amiIMDSSupport == b.amiIMDSSupport
            && a.monitoring == b.monitoring
            && a.overrides.map { [$0.path, $0.value ?? "\u{0}"] } == b.overrides.map { [$0.path, $0.value ?? "\u{0}"] }
            && a.eventTimeline == b.eventTimeline && a.callerAddresses == b.callerAddresses
    }
}

// MARK: - Derived values

extension Instance {
    /// The region: explicit, or the availability zone without its final letter.
    public var region: String {
        if let regionOverride { return regionOverride }
        return Derive.region(fromAvailabilityZone: availabilityZone)
    }

    public var availabilityZoneID: String {
        availabilityZoneIDOverride ?? Derive.availabilityZoneID(availabilityZone: availabilityZone, region: region)
    }

    public var partition: String { Derive.partition(region: region) }
    public var domain: String { partition == "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com" }

    /// `ip-10-0-1-23.ap-northeast-1.compute.internal` (`ec2.internal` in us-east-1).
    public var localHostname: String? {
        if let hostnameOverride { return hostnameOverride }
        guard let localIPv4 else { return nil }
        let suffix = region == "us-east-1" ? "ec2.internal" : "\(region).compute.internal"
        return "ip-\(localIPv4.replacingOccurrences(of: ".", with: "-")).\(suffix)"
    }

    /// `ec2-203-0-113-10.ap-northeast-1.compute.amazonaws.com`; nil without a public IPv4.
    public var publicHostname: String? {
        guard let publicIPv4 else { return nil }
        if let publicHostnameOverride { return publicHostnameOverride }
        let dashed = publicIPv4.replacingOccurrences(of: ".", with: "-")
        let middle = region == "us-east-1" ? "compute-1" : "\(region).compute"
        return "ec2-\(dashed).\(middle).\(domain)"
    }

    public var reservationID: String { reservationIDOverride ?? "r-" + Derive.hexID(from: "reservation:" + instanceID) }
    public var interfaceID: String { interfaceIDOverride ?? "eni-" + Derive.hexID(from: "eni:" + instanceID + mac) }
    public var subnetID: String { subnetIDOverride ?? "subnet-" + Derive.hexID(from: "subnet:" + (subnetIPv4CIDR ?? availabilityZone)) }
    public var vpcID: String { vpcIDOverride ?? "vpc-" + Derive.hexID(from: "vpc:" + (vpcIPv4CIDR ?? region)) }
    public var securityGroupIDs: [String] {
        securityGroupIDsOverride ?? securityGroups.map { "sg-" + Derive.hexID(from: "sg:" + accountID + $0) }
    }
    /// The local IPv4's /24, unless stated.
    public var subnetIPv4CIDR: String? {
        subnetIPv4CIDROverride ?? localIPv4.flatMap { Derive.cidr($0, prefix: 24) }
    }
    /// The local IPv4's /16, unless stated.
    public var vpcIPv4CIDR: String? {
        vpcIPv4CIDROverride ?? localIPv4.flatMap { Derive.cidr($0, prefix: 16) }
    }

    public var instanceProfileName: String? { iam.map { $0.instanceProfileName ?? $0.role } }
    public var instanceProfileARN: String? {
        instanceProfileName.map { "arn:\(partition):iam::\(accountID):instance-profile/\($0)" }
    }
    public var instanceProfileID: String? {
        guard let iam else { return nil }
        return iam.instanceProfileID ?? "AIPA" + Derive.base32ID(from: "profile:" + (instanceProfileARN ?? ""), length: 17)
    }
}

/// Deterministic derivations, so that a config without ids still gives stable, realistic ones.
public enum Derive {
    public static func region(fromAvailabilityZone az: String) -> String {
        guard let last = az.last, last.isLetter else { return az }
        return String(az.dropLast())
    }

    /// `apne1-az1` style id: region code + zone letter's index.
    public static func availabilityZoneID(availabilityZone: String, region: String) -> String {
        let words: [String: String] = [
            "north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
            "northeast": "ne", "southeast": "se", "northwest": "nw", "southwest": "sw", "gov": "g",
        ]
        let parts = region.split(separator: "-").map(String.init)
        var code = parts.first ?? region
        for part in parts.dropFirst() {
            if let w = words[part] { code += w } else if part.allSatisfy(\.isNumber) { code += part } else { code += String(part.prefix(1)) }
        }
        let letter = availabilityZone.last.flatMap { $0.asciiValue } ?? 97
        let index = max(1, Int(letter) - 96)
        return "\(code)-az\(index)"
    }

    public static func partition(region: String) -> String {
        if region.hasPrefix("cn-") { return "aws-cn" }
        if region.hasPrefix("us-gov-") { return "aws-us-gov" }
        return "aws"
    }

    /// 17 lower-case hex characters derived from a seed (the length of modern EC2 ids).
    public static func hexID(from seed: String, length: Int = 17) -> String {
        let digest = stableHash(seed)
        let hex = digest.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
        return String(hex.prefix(length))
    }

    /// Upper-case base32-ish id characters (`A-Z2-7`), as IAM unique ids use.
    public static func base32ID(from seed: String, length: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        let digest = stableHash(seed) + stableHash(seed + "#")
        return String(digest.prefix(length).map { alphabet[Int($0) % 32] })
    }

    /// SHA-256 of the seed: stable across runs and platforms.
    static func stableHash(_ seed: String) -> [UInt8] {
        Array(SHA256Digest.of(Array(seed.utf8)))
    }

    /// The network address of `ip/prefix` (`10.0.1.23`, 24 → `10.0.1.0/24`).
    public static func cidr(_ ip: String, prefix: Int) -> String? {
        let parts = ip.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 < 256 }) else { return nil }
        let value = parts.reduce(0) { $0 << 8 | $1 }
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix))
        let net = value & mask
        return "\(net >> 24).\((net >> 16) & 255).\((net >> 8) & 255).\(net & 255)/\(prefix)"
    }
}
