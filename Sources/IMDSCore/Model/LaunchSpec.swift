import Foundation

/// An EC2 instance state, with the codes `DescribeInstances` reports.
public enum InstanceState: String, Sendable, Equatable, Codable, CaseIterable {
    case pending, running
    case shuttingDown = "shutting-down"
    case terminated, stopping, stopped

    /// EC2's state code (the low byte; `pending` 0 … `stopped` 80).
    public var code: Int {
        switch self {
        case .pending: 0
        case .running: 16
        case .shuttingDown: 32
        case .terminated: 48
        case .stopping: 64
        case .stopped: 80
        }
    }

    /// Whether the data plane answers as an instance in this state (only a running one).
    public var isServed: Bool { self == .running }
}

/// An instance launched through the EC2 API (`RunInstances`): everything durable about its
/// launch. The rest of its description comes from the config file's first instance (the
/// template: account, zone, security groups, …), so a record stays small.
public struct LaunchSpec: Sendable, Equatable, Codable {
    public var instanceID: String
    public var reservationID: String
    public var imageID: String
    public var instanceType: String
    public var privateIPv4: String
    public var subnetID: String?
    public var availabilityZone: String?
    public var launchIndex: Int
    /// The options it launched with (explicit, then the AMI's, then the account defaults: resolved once).
    public var options: MetadataOptions
    public var role: String?
    public var instanceProfileName: String?
    public var userData: [UInt8]?
    public var tags: [InstanceTag]
    public var keyName: String?
    public var launchTime: Date

    public init(instanceID: String, reservationID: String, imageID: String, instanceType: String, privateIPv4: String,
                subnetID: String? = nil, availabilityZone: String? = nil, launchIndex: Int = 0, options: MetadataOptions,
                role: String? = nil, instanceProfileName: String? = nil, userData: [UInt8]? = nil, tags: [InstanceTag] = [],
                keyName: String? = nil, launchTime: Date) {
        self.instanceID = instanceID
        self.reservationID = reservationID
        self.imageID = imageID
        self.instanceType = instanceType
        self.privateIPv4 = privateIPv4
        self.subnetID = subnetID
        self.availabilityZone = availabilityZone
        self.launchIndex = launchIndex
        self.options = options
        self.role = role
        self.instanceProfileName = instanceProfileName
        self.userData = userData
        self.tags = tags
        self.keyName = keyName
        self.launchTime = launchTime
    }

    /// The instance this launch describes, over `template` (the config file's first instance).
    public func instance(template: Instance) -> Instance {
        var i = template
        i.instanceID = instanceID
        i.reservationIDOverride = reservationID
        i.amiID = imageID
        i.amiLaunchIndex = launchIndex
        i.instanceType = instanceType
        i.localIPv4 = privateIPv4
        i.publicIPv4 = nil
        i.ipv6Addresses = []
        i.callerAddresses = []
        let hex = Derive.hexID(from: "mac:" + instanceID, length: 10)
        i.mac = "0e:" + stride(from: 0, to: 10, by: 2).map { n in
            let a = hex.index(hex.startIndex, offsetBy: n)
            return String(hex[a..<hex.index(a, offsetBy: 2)])
        }.joined(separator: ":")
        i.interfaceIDOverride = nil
        i.hostnameOverride = nil
        i.publicHostnameOverride = nil
        if let subnetID { i.subnetIDOverride = subnetID }
        if let availabilityZone {
            i.availabilityZone = availabilityZone
            i.availabilityZoneIDOverride = nil
        }
        i.iam = role.map { Instance.IAM(role: $0, instanceProfileName: instanceProfileName) }
        i.userData = userData
        i.tags = tags.map { (key: $0.key, value: $0.value) }
        if let keyName {
            i.publicKeys = [Instance.PublicKey(name: keyName, openSSHKey: template.publicKeys.first?.openSSHKey ?? "")]
        } else {
            i.publicKeys = []
        }
        i.metadataOptions = PartialMetadataOptions(
            httpTokens: options.httpTokens, httpEndpoint: options.httpEndpoint,
            httpPutResponseHopLimit: options.httpPutResponseHopLimit, httpProtocolIPv6: options.httpProtocolIPv6,
            instanceMetadataTags: options.instanceMetadataTags)
        i.amiIMDSSupport = nil
        i.launchTime = launchTime
        i.eventTimeline = []
        i.overrides = []
        return i
    }
}
