import AWSQuery
import Foundation
import IMDSCore

/// An instance as `DescribeInstances` shows it (element names are the EC2 model's locationNames).
enum InstanceDescription {
    /// `<name><state>…</state><httpTokens>…</httpTokens>…</name>` (`InstanceMetadataOptionsResponse`).
    static func optionsXML(_ name: String, _ o: MetadataOptions, state: String) -> XMLNode {
        .node(name, [
            .leaf("state", state),
            .leaf("httpTokens", o.httpTokens.rawValue),
            .leaf("httpPutResponseHopLimit", String(o.httpPutResponseHopLimit)),
            .leaf("httpEndpoint", o.httpEndpoint.rawValue),
            .leaf("httpProtocolIpv6", o.httpProtocolIPv6.rawValue),
            .leaf("instanceMetadataTags", o.instanceMetadataTags.rawValue),
        ])
    }

    /// EC2's timestamp format in XML: `2026-01-02T03:04:05.000Z`.
    static func timestamp(_ d: Date) -> String {
        let iso = TimeFormat.iso8601(d)
        return String(iso.dropLast()) + ".000Z"
    }

    /// Changes are applied before ModifyInstanceMetadataOptions replies, so by the time anyone can
    /// describe the instance, the data plane already serves them: the state is always `applied`.
    static let appliedState = "applied"

    /// `vol-…` id of a block device, derived from the instance and device so that it is stable.
    static func volumeID(_ i: Instance, device: String) -> String { "vol-" + Derive.hexID(from: "volume:\(i.instanceID):\(device)") }

    /// - Parameter state: the state to report (default: the instance's; `RunInstances` reports `pending`).
    static func xml(_ rt: InstanceRuntime, state: InstanceState? = nil) -> [XMLNode] {
        let i = rt.instance
        let state = state ?? rt.state
        var x: [XMLNode] = [
            .leaf("instanceId", i.instanceID),
            .leaf("imageId", i.amiID),
            .node("instanceState", [.leaf("code", String(state.code)), .leaf("name", state.rawValue)]),
            .leaf("privateDnsName", i.localHostname ?? ""),
            .leaf("dnsName", i.publicHostname ?? ""),
            .node("reason", []),
        ]
        if let key = i.publicKeys.first { x.append(.leaf("keyName", key.name)) }
        x.append(.leaf("amiLaunchIndex", String(i.amiLaunchIndex)))
        let codes = i.productCodes.map { [XMLNode.leaf("productCode", $0), .leaf("type", "devpay")] }
            + i.marketplaceProductCodes.map { [XMLNode.leaf("productCode", $0), .leaf("type", "marketplace")] }
        x.append(.list("productCodes", codes))
        x.append(.leaf("instanceType", i.instanceType))
        x.append(.leaf("launchTime", timestamp(rt.launchTime)))
        var placement: [XMLNode] = [.leaf("availabilityZoneId", i.availabilityZoneID), .leaf("availabilityZone", i.availabilityZone),
                                    .leaf("groupName", i.placementGroup ?? "")]
        if let n = i.partitionNumber { placement.append(.leaf("partitionNumber", String(n))) }
        if let h = i.hostID { placement.append(.leaf("hostId", h)) }
        placement.append(.leaf("tenancy", i.hostID == nil ? "default" : "host"))
        x.append(.node("placement", placement))
        if let k = i.kernelID { x.append(.leaf("kernelId", k)) }
        if let r = i.ramdiskID { x.append(.leaf("ramdiskId", r)) }
        x.append(.node("monitoring", [.leaf("state", i.monitoring)]))
        x.append(.leaf("subnetId", i.subnetID))
        x.append(.leaf("vpcId", i.vpcID))
        if let ip = i.localIPv4 { x.append(.leaf("privateIpAddress", ip)) }
        if let ip = i.publicIPv4 { x.append(.leaf("ipAddress", ip)) }
        x.append(.leaf("sourceDestCheck", "true"))
        let groups = zip(i.securityGroupIDs, i.securityGroups).map { [XMLNode.leaf("groupId", $0.0), .leaf("groupName", $0.1)] }
        x.append(.list("groupSet", groups))
        x.append(.leaf("architecture", i.architecture))
        x.append(.leaf("rootDeviceType", "ebs"))
        let root = i.blockDevices.first { $0.name == "root" }?.device ?? i.blockDevices.first { $0.name == "ami" }?.device
        if let root { x.append(.leaf("rootDeviceName", root)) }
        let ebs = i.blockDevices.filter { $0.name == "root" || $0.name.hasPrefix("ebs") }
        x.append(.list("blockDeviceMapping", ebs.map { d in [
            .leaf("deviceName", d.device),
            .node("ebs", [.leaf("volumeId", volumeID(i, device: d.device)), .leaf("status", "attached"),
                          .leaf("attachTime", timestamp(rt.launchTime)), .leaf("deleteOnTermination", d.name == "root" ? "true" : "false")]),
        ] }))
        x.append(.leaf("virtualizationType", "hvm"))
        if i.instanceLifeCycle == "spot" || i.instanceLifeCycle == "scheduled" || i.instanceLifeCycle == "capacity-block" {
            x.append(.leaf("instanceLifecycle", i.instanceLifeCycle))
        }
        if !rt.tags.isEmpty {
            x.append(.list("tagSet", rt.tags.map { [.leaf("key", $0.key), .leaf("value", $0.value)] }))
        }
        x.append(.leaf("hypervisor", "xen"))
        x.append(.list("networkInterfaceSet", [networkInterface(i, launchTime: rt.launchTime, groups: groups)]))
        if let arn = i.instanceProfileARN, let id = i.instanceProfileID {
            x.append(.node("iamInstanceProfile", [.leaf("arn", arn), .leaf("id", id)]))
        }
        x.append(.leaf("ebsOptimized", "false"))
        x.append(.leaf("enaSupport", "true"))
        x.append(optionsXML("metadataOptions", rt.options, state: appliedState))
        x.append(.leaf("platformDetails", "Linux/UNIX"))
        x.append(.leaf("usageOperation", "RunInstances"))
        return x
    }

    static func networkInterface(_ i: Instance, launchTime: Date, groups: [[XMLNode]]) -> [XMLNode] {
        var n: [XMLNode] = [
            .leaf("networkInterfaceId", i.interfaceID),
            .leaf("subnetId", i.subnetID),
            .leaf("vpcId", i.vpcID),
            .node("description", []),
            .leaf("ownerId", i.accountID),
            .leaf("status", "in-use"),
            .leaf("macAddress", i.mac),
        ]
        if let ip = i.localIPv4 { n.append(.leaf("privateIpAddress", ip)) }
        if let h = i.localHostname { n.append(.leaf("privateDnsName", h)) }
        n.append(.leaf("sourceDestCheck", "true"))
        n.append(.list("groupSet", groups))
        n.append(.node("attachment", [
            .leaf("attachmentId", "eni-attach-" + Derive.hexID(from: "eni-attach:" + i.interfaceID)),
            .leaf("deviceIndex", "0"), .leaf("status", "attached"), .leaf("attachTime", timestamp(launchTime)),
            .leaf("deleteOnTermination", "true"), .leaf("networkCardIndex", "0"),
        ]))
        let association: [XMLNode]? = i.publicIPv4.map { ip in
            [.leaf("publicIp", ip), .leaf("publicDnsName", i.publicHostname ?? ""), .leaf("ipOwnerId", "amazon")]
        }
        if let association { n.append(.node("association", association)) }
        if let ip = i.localIPv4 {
            var item: [XMLNode] = [.leaf("privateIpAddress", ip)]
            if let h = i.localHostname { item.append(.leaf("privateDnsName", h)) }
            item.append(.leaf("primary", "true"))
            if let association { item.append(.node("association", association)) }
            n.append(.list("privateIpAddressesSet", [item]))
        }
        n.append(.list("ipv6AddressesSet", i.ipv6Addresses.map { [.leaf("ipv6Address", $0)] }))
        n.append(.leaf("interfaceType", "interface"))
        return n
    }

    /// The values `DescribeInstances` filters compare against; nil for a filter name EC2 does not know here.
    static func filterValues(_ rt: InstanceRuntime) -> (String) -> [String]? {
        let i = rt.instance
        let o = rt.options
        return { name in
            if name.hasPrefix("tag:") {
                let key = String(name.dropFirst(4))
                return rt.tags.filter { $0.key == key }.map(\.value)
            }
            switch name {
            case "instance-id": return [i.instanceID]
            case "image-id": return [i.amiID]
            case "instance-type": return [i.instanceType]
            case "availability-zone": return [i.availabilityZone]
            case "availability-zone-id": return [i.availabilityZoneID]
            case "instance-state-name": return [rt.state.rawValue]
            case "instance-state-code": return [String(rt.state.code)]
            case "reservation-id": return [i.reservationID]
            case "owner-id": return [i.accountID]
            case "private-ip-address": return i.localIPv4.map { [$0] } ?? []
            case "ip-address": return i.publicIPv4.map { [$0] } ?? []
            case "private-dns-name": return i.localHostname.map { [$0] } ?? []
            case "dns-name": return i.publicHostname.map { [$0] } ?? []
            case "subnet-id": return [i.subnetID]
            case "vpc-id": return [i.vpcID]
            case "architecture": return [i.architecture]
            case "key-name": return i.publicKeys.map(\.name)
            case "network-interface.network-interface-id": return [i.interfaceID]
            case "network-interface.mac-address": return [i.mac]
            case "instance.group-id": return i.securityGroupIDs
            case "instance.group-name": return i.securityGroups
            case "iam-instance-profile.arn": return i.instanceProfileARN.map { [$0] } ?? []
            case "tag-key": return rt.tags.map(\.key)
            case "tag-value": return rt.tags.map(\.value)
            case "metadata-options.http-tokens": return [o.httpTokens.rawValue]
            case "metadata-options.http-put-response-hop-limit": return [String(o.httpPutResponseHopLimit)]
            case "metadata-options.http-endpoint": return [o.httpEndpoint.rawValue]
            // IPv4 is on whenever the endpoint is (EC2 has no separate switch for it).
            case "metadata-options.http-protocol-ipv4": return [o.httpEndpoint.rawValue]
            case "metadata-options.http-protocol-ipv6": return [o.httpProtocolIPv6.rawValue]
            case "metadata-options.instance-metadata-tags": return [o.instanceMetadataTags.rawValue]
            case "metadata-options.state": return [appliedState]
            default: return nil
            }
        }
    }
}
