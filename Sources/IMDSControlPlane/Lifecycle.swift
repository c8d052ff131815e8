import AWSQuery
import Foundation
import IMDSCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - RunInstances

extension EC2ControlPlane {
    /// At most this many instances per `RunInstances` call, and in the whole fleet (EC2 answers
    /// `InstanceLimitExceeded` past an account's quota).
    static let maxLaunchPerCall = 1000
    static let maxFleetSize = 100_000
    /// EC2's limit on user data (before base64).
    static let maxUserDataBytes = 16_384

    static func isRunInstancesParameter(_ n: String) -> Bool {
        ["ImageId", "InstanceType", "MinCount", "MaxCount", "PrivateIpAddress", "SubnetId", "KeyName", "UserData",
         "DryRun", "ClientToken", "Placement.AvailabilityZone", "IamInstanceProfile.Name", "IamInstanceProfile.Arn",
         "MetadataOptions.HttpTokens", "MetadataOptions.HttpPutResponseHopLimit", "MetadataOptions.HttpEndpoint",
         "MetadataOptions.HttpProtocolIpv6", "MetadataOptions.InstanceMetadataTags"].contains(n)
            || isTagSpecificationField(n)
    }

    /// `TagSpecification.N.ResourceType` or `TagSpecification.N.Tag.M.Key|Value`.
    static func isTagSpecificationField(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "TagSpecification", let n = Int(parts[1]), n >= 1 else { return false }
        if parts.count == 3 { return parts[2] == "ResourceType" }
        return parts.count == 5 && parts[2] == "Tag" && (Int(parts[3]).map { $0 >= 1 } ?? false) && (parts[4] == "Key" || parts[4] == "Value")
    }

    /// The instance tags of `TagSpecification.N` whose resource type is `instance` (other resource
    /// types EC2 tags at launch, volumes and network interfaces, are accepted and not kept).
    static func launchTags(_ p: QueryParameters) throws(EC2Error) -> [InstanceTag] {
        var types: [Int: String] = [:]
        var fields: [Int: [Int: (key: String?, value: String?)]] = [:]
        for (name, value) in p.pairs where name.hasPrefix("TagSpecification.") {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count >= 3, let n = Int(parts[1]) else { continue }
            if parts.count == 3 { types[n] = types[n] ?? value; continue }
            guard parts.count == 5, let m = Int(parts[3]) else { continue }
            var t = fields[n, default: [:]][m] ?? (nil, nil)
            if parts[4] == "Key" { t.key = t.key ?? value } else { t.value = t.value ?? value }
            fields[n, default: [:]][m] = t
        }
        var tags: [InstanceTag] = []
        for n in Set(types.keys).union(fields.keys).sorted() {
            guard let type = types[n] else { throw .missingParameter("TagSpecification.\(n).ResourceType") }
            guard ["instance", "volume", "network-interface"].contains(type) else {
                throw EC2Error("InvalidParameterValue", "'\(type)' is not a valid taggable resource type for this operation.")
            }
            for (m, t) in (fields[n] ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let key = t.key else { throw .missingParameter("TagSpecification.\(n).Tag.\(m).Key") }
                let value = t.value ?? ""
                if let why = TagRules.problem(key: key, value: value) { throw EC2Error("InvalidParameterValue", why) }
                if type == "instance" {
                    tags.removeAll { $0.key == key }
                    tags.append(InstanceTag(key: key, value: value))
                }
            }
        }
        guard tags.count <= TagRules.maxTagsPerResource else {
            throw EC2Error("TagLimitExceeded", "The maximum number of tags per resource (\(TagRules.maxTagsPerResource)) would be exceeded")
        }
        return tags
    }

    /// What a `RunInstances` call asks for, checked before it sees the store.
    struct LaunchRequest {
        var imageID: String
        var instanceType: String?
        var minCount: Int
        var maxCount: Int
        var privateIPv4: String?
        var subnetID: String?
        var availabilityZone: String?
        var explicit: PartialMetadataOptions
        var role: String?
        var instanceProfileName: String?
        var userData: [UInt8]?
        var tags: [InstanceTag]
        var keyName: String?
    }

    static func launchRequest(_ p: QueryParameters) throws(EC2Error) -> LaunchRequest {
        guard let image = p["ImageId"] else { throw .missingParameter("ImageId") }
        guard image.range(of: "^ami-[0-9a-f]{8,17}$", options: .regularExpression) != nil else {
            throw EC2Error("InvalidAMIID.Malformed", "Invalid id: \"\(image)\" (expecting \"ami-...\")")
        }
        func count(_ name: String) throws(EC2Error) -> Int {
            guard let raw = p[name] else { throw .missingParameter(name) }
            guard let n = Int(raw), n >= 1 else {
                throw EC2Error("InvalidParameterValue", "Invalid value '\(raw)' for \(name). Specify an integer of 1 or more.")
            }
            return n
        }
        let minCount = try count("MinCount"), maxCount = try count("MaxCount")
        guard minCount <= maxCount else {
            throw EC2Error("InvalidParameterValue", "MinCount (\(minCount)) must be less than or equal to MaxCount (\(maxCount)).")
        }
        guard minCount <= maxLaunchPerCall else {
            throw EC2Error("InstanceLimitExceeded", "You have requested more instances (\(minCount)) than your current instance limit of \(maxLaunchPerCall) allows for one request.")
        }
        if let t = p["InstanceType"], t.range(of: "^[a-z0-9-]+\\.[a-z0-9-]+$", options: .regularExpression) == nil {
            throw EC2Error("InvalidParameterValue", "Invalid value '\(t)' for InstanceType.")
        }
        let ip = p["PrivateIpAddress"]
        if let ip {
            var a = in_addr()
            guard inet_pton(AF_INET, ip, &a) == 1 else {
                throw EC2Error("InvalidParameterValue", "Invalid value '\(ip)' for PrivateIpAddress: expected an IPv4 address")
            }
            guard maxCount == 1 else {
                throw EC2Error("InvalidParameterCombination", "A private IP address can only be specified when launching one instance (MaxCount=1).")
            }
        }
        if let s = p["SubnetId"], s.range(of: "^subnet-[0-9a-f]{8,17}$", options: .regularExpression) == nil {
            throw EC2Error("InvalidSubnetID.Malformed", "Invalid id: \"\(s)\" (expecting \"subnet-...\")")
        }
        if let z = p["Placement.AvailabilityZone"], z.range(of: "^[a-z]{2}(-[a-z0-9]+)+[a-z]$", options: .regularExpression) == nil {
            throw EC2Error("InvalidParameterValue", "Invalid availability zone: [\(z)]")
        }
        var explicit = PartialMetadataOptions()
        let o = QueryParameters(p.pairs.compactMap { pair in
            pair.name.hasPrefix("MetadataOptions.") ? (name: String(pair.name.dropFirst("MetadataOptions.".count)), value: pair.value) : nil
        })
        explicit.httpTokens = try choice(o, "HttpTokens", tokensValues).flatMap(MetadataOptions.HTTPTokens.init(rawValue:))
        if case .some(let n) = try hopLimit(o, allowNoPreference: false) { explicit.httpPutResponseHopLimit = n }
        explicit.httpEndpoint = try choice(o, "HttpEndpoint", toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))
        explicit.httpProtocolIPv6 = try choice(o, "HttpProtocolIpv6", toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))
        explicit.instanceMetadataTags = try choice(o, "InstanceMetadataTags", toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))
        var role: String?, profile: String?
        let namePattern = "^[A-Za-z0-9+=,.@_-]{1,128}$"
        if let name = p["IamInstanceProfile.Name"] ?? p["IamInstanceProfile.Arn"].map({ String($0.split(separator: "/").last ?? "") }) {
            guard name.range(of: namePattern, options: .regularExpression) != nil else {
                throw EC2Error("InvalidParameterValue", "Value (\(name)) for parameter iamInstanceProfile.name is invalid.")
            }
            role = name
            profile = name
        }
        var userData: [UInt8]?
        if let raw = p["UserData"] {
            guard let data = Data(base64Encoded: raw) else {
                throw EC2Error("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
            }
            guard data.count <= maxUserDataBytes else {
                throw EC2Error("InvalidParameterValue", "User data is limited to \(maxUserDataBytes) bytes.")
            }
            userData = Array(data)
        }
        let tags = try launchTags(p)
        if let key = p["KeyName"], key.isEmpty || key.count > 255 {
            throw EC2Error("InvalidParameterValue", "Invalid value '\(key)' for KeyName.")
        }
        return LaunchRequest(
            imageID: image, instanceType: p["InstanceType"], minCount: minCount, maxCount: maxCount, privateIPv4: ip,
            subnetID: p["SubnetId"], availabilityZone: p["Placement.AvailabilityZone"], explicit: explicit, role: role,
            instanceProfileName: profile, userData: userData, tags: tags, keyName: p["KeyName"])
    }

    func runInstances(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let request = try Self.launchRequest(call.params)
        let now = Date(timeIntervalSince1970: clock.now().timeIntervalSince1970.rounded(.down))
        let launched = try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: [LaunchSpec]) in
            let specs = try Self.launchSpecs(request, in: snapshot, now: now)
            return (specs.map(StoreChange.launch), specs)
        }
        // The batch is durable and published: the data plane answers as every new instance now.
        let snapshot = store.snapshot
        let items = launched.compactMap { snapshot.instance($0.instanceID) }.map { InstanceDescription.xml($0, state: .pending) }
        let owner = snapshot.primary.instance.accountID
        return [
            .leaf("reservationId", launched.first?.reservationID ?? ""),
            .leaf("ownerId", owner),
            .node("groupSet", []),
            .list("instancesSet", items),
        ]
    }

    /// The instances `request` launches over `snapshot`: addresses allocated from the template's
    /// subnet, options resolved as EC2 does (explicit, then the AMI's `ImdsSupport`, then the account
    /// defaults), `HttpTokensEnforced` checked.
    static func launchSpecs(_ request: LaunchRequest, in snapshot: StoreSnapshot, now: Date) throws(EC2Error) -> [LaunchSpec] {
        let template = snapshot.primary.instance
        guard snapshot.instanceCount + request.minCount <= maxFleetSize else {
            throw EC2Error("InstanceLimitExceeded", "Your quota allows for \(max(0, maxFleetSize - snapshot.instanceCount)) more running instance(s). You requested at least \(request.minCount).")
        }
        if let subnet = request.subnetID, subnet != template.subnetID {
            throw EC2Error("InvalidSubnetID.NotFound", "The subnet ID '\(subnet)' does not exist")
        }
        if let zone = request.availabilityZone, !zone.hasPrefix(template.region) {
            throw EC2Error("InvalidParameterValue", "Invalid availability zone: [\(zone)]")
        }
        guard let subnet = IPv4Subnet(template.subnetIPv4CIDR ?? "") else {
            throw EC2Error("InvalidSubnetID.NotFound", "The configured instance has no IPv4 subnet to allocate addresses from")
        }
        let addresses: [String]
        if let ip = request.privateIPv4 {
            guard subnet.contains(ip) else {
                throw EC2Error("InvalidParameterValue", "Address \(ip) does not fall within the subnet's address range")
            }
            guard snapshot.instanceID(forCaller: ip) == nil else { throw EC2Error("InvalidIPAddress.InUse", "Address \(ip) is in use.") }
            addresses = [ip]
        } else {
            addresses = subnet.free(count: request.maxCount) { snapshot.instanceID(forCaller: $0) == nil }
            guard addresses.count >= request.minCount else {
                throw EC2Error(
                    "InsufficientFreeAddressesInSubnet",
                    "There are not enough free addresses in subnet '\(template.subnetID)' to satisfy the requested number of instances (\(request.minCount) requested, \(addresses.count) free).")
            }
        }
        var probe = template
        probe.amiID = request.imageID
        probe.amiIMDSSupport = request.imageID == template.amiID ? template.amiIMDSSupport : nil
        probe.metadataOptions = request.explicit
        let options = LaunchOptions.resolve(instance: probe, accountDefaults: snapshot.accountDefaults)
        if snapshot.accountDefaults.httpTokensEnforced == .enabled && options.httpTokens == .optional {
            throw EC2Error(
                "UnsupportedOperation",
                "The account's instance metadata defaults enforce IMDSv2 (HttpTokensEnforced=enabled): launch with MetadataOptions.HttpTokens=required.")
        }
        if options.instanceMetadataTags == .enabled, let bad = request.tags.first(where: { !TagRules.isMetadataSafe($0.key) }) {
            throw EC2Error("InvalidParameterValue", "The tag key '\(bad.key)' is not allowed while instance metadata tags are enabled.")
        }
        let reservation = "r-" + randomHex(17)
        var ids = Set<String>()
        return addresses.enumerated().map { index, address in
            var id = "i-" + randomHex(17)
            while snapshot.instance(id) != nil || ids.contains(id) { id = "i-" + randomHex(17) }
            ids.insert(id)
            return LaunchSpec(
                instanceID: id, reservationID: reservation, imageID: request.imageID,
                instanceType: request.instanceType ?? template.instanceType, privateIPv4: address, subnetID: request.subnetID,
                availabilityZone: request.availabilityZone, launchIndex: index, options: options, role: request.role,
                instanceProfileName: request.instanceProfileName, userData: request.userData, tags: request.tags,
                keyName: request.keyName, launchTime: now)
        }
    }

    static func randomHex(_ digits: Int) -> String {
        var out = ""
        var rng = SystemRandomNumberGenerator()
        while out.count < digits { out += String(UInt8.random(in: 0...15, using: &rng), radix: 16) }
        return out
    }
}

/// An IPv4 subnet to allocate instance addresses from: as EC2, the first four addresses and the
/// last one are reserved.
struct IPv4Subnet {
    let network: UInt32
    let prefix: Int

    init?(_ cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let p = Int(parts[1]), (16...28).contains(p), let n = Self.parse(String(parts[0])) else { return nil }
        let mask: UInt32 = p == 0 ? 0 : ~UInt32(0) << (32 - p)
        network = n & mask
        prefix = p
    }

    static func parse(_ ip: String) -> UInt32? {
        var a = in_addr()
        guard inet_pton(AF_INET, ip, &a) == 1 else { return nil }
        return UInt32(bigEndian: a.s_addr)
    }

    static func text(_ v: UInt32) -> String { "\(v >> 24).\((v >> 16) & 255).\((v >> 8) & 255).\(v & 255)" }

    var size: UInt32 { UInt32(1) << (32 - prefix) }
    var usable: ClosedRange<UInt32> { (network + 4)...(network + size - 2) }

    func contains(_ ip: String) -> Bool { Self.parse(ip).map(usable.contains) ?? false }

    /// Up to `count` free addresses in order; `isFree` is asked at most once per usable address.
    func free(count: Int, isFree: (String) -> Bool) -> [String] {
        var out: [String] = []
        for v in usable {
            guard out.count < count else { break }
            let t = Self.text(v)
            if isFree(t) { out.append(t) }
        }
        return out
    }
}

// MARK: - TerminateInstances, StopInstances, StartInstances

extension EC2ControlPlane {
    /// A state change EC2 reports as (current, previous) per instance.
    enum Transition {
        case terminate, stop, start

        /// The state stored, what the reply calls the current state, and whether `from` allows it
        /// (nil: it does not).
        func apply(from: InstanceState) -> (stored: InstanceState, reported: InstanceState)? {
            switch (self, from) {
            case (.terminate, .terminated): (.terminated, .terminated)
            case (.terminate, _): (.terminated, .shuttingDown)
            case (.stop, .stopped): (.stopped, .stopped)
            case (.stop, .running), (.stop, .pending): (.stopped, .stopping)
            case (.stop, _): nil
            case (.start, .running): (.running, .running)
            case (.start, .stopped): (.running, .pending)
            case (.start, _): nil
            }
        }

        var verb: String {
            switch self {
            case .terminate: "terminated"
            case .stop: "stopped"
            case .start: "started"
            }
        }
    }

    func changeState(_ call: Call, _ transition: Transition) async throws(EC2Error) -> [XMLNode] {
        let ids = call.params.list("InstanceId")
        guard !ids.isEmpty else { throw .missingParameter("InstanceId") }
        try Self.instanceIDs(ids)
        let results = try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: [(String, InstanceState, InstanceState)]) in
            let missing = ids.filter { snapshot.instance($0) == nil }
            if !missing.isEmpty { throw .instanceNotFound(missing) }
            var changes: [StoreChange] = []
            var results: [(String, InstanceState, InstanceState)] = []
            var seen = Set<String>()
            for id in ids where seen.insert(id).inserted {
                let from = try Self.runtime(id, in: snapshot).state
                guard let next = transition.apply(from: from) else {
                    throw EC2Error("IncorrectInstanceState", "The instance '\(id)' is not in a state from which it can be \(transition.verb).")
                }
                let (stored, reported) = next
                if stored != from { changes.append(.setState(instanceID: id, stored)) }
                results.append((id, reported, from))
            }
            return (changes, results)
        }
        return [.list("instancesSet", results.map { r in [
            .leaf("instanceId", r.0),
            .node("currentState", [.leaf("code", String(r.1.code)), .leaf("name", r.1.rawValue)]),
            .node("previousState", [.leaf("code", String(r.2.code)), .leaf("name", r.2.rawValue)]),
        ] })]
    }
}
