import Foundation

/// Derives the metadata tree (the contents of `/latest/`) from an ``Instance``.
public enum MetadataTreeBuilder {
    /// The version root: `dynamic/`, `meta-data/` and `user-data`.
    /// - Parameters:
    ///   - tags: the instance's tags as they are now (they can change at runtime).
    ///   - tagsVisible: whether `InstanceMetadataTags` is `enabled`.
    ///   - launchTime: the resolved launch time (`pendingTime`).
    public static func build(
        instance i: Instance, tags: [(key: String, value: String)], tagsVisible: Bool, launchTime: Date,
        signer: (any IdentityDocumentSigner)? = nil
    ) -> MetadataDirectory {
        var md = MetadataDirectory()
        func put(_ path: String, _ node: MetadataNode?) {
            md.set(path.split(separator: "/").map(String.init)[...], node)
        }
        func text(_ path: String, _ value: String?) { if let value { put(path, .text(value)) } }
        func list(_ path: String, _ values: [String]) { if !values.isEmpty { put(path, .text(values.joined(separator: "\n"))) } }

        text("ami-id", i.amiID)
        text("ami-launch-index", String(i.amiLaunchIndex))
        text("ami-manifest-path", i.amiManifestPath)
        list("ancestor-ami-ids", i.ancestorAMIIDs)
        if !i.blockDevices.isEmpty {
            var bdm = MetadataDirectory()
            for d in i.blockDevices { bdm.children[d.name] = .text(d.device) }
            md.children["block-device-mapping"] = .directory(bdm)
        }
        // events/: maintenance history and scheduled are always present ([] when empty).
        if BehaviourChoices.emptyMaintenanceIsEmptyArray {
            text("events/maintenance/history", "[]")
            text("events/maintenance/scheduled", "[]")
        }
        text("hostname", i.localHostname)
        if let iam = i.iam {
            put("iam/info", .leaf(.dynamic(.iamInfo)))
            put("iam/security-credentials/\(iam.role)", .leaf(.dynamic(.roleCredentials(extended: false))))
            put("iam/security-credentials-extended/\(iam.role)", .leaf(.dynamic(.roleCredentials(extended: true))))
        }
        put("identity-credentials/ec2/info", .leaf(.dynamic(.identityCredentialsInfo)))
        put("identity-credentials/ec2/security-credentials/ec2-instance", .leaf(.dynamic(.identityCredentials)))
        text("instance-action", "none")
        text("instance-id", i.instanceID)
        text("instance-life-cycle", i.instanceLifeCycle)
        text("instance-type", i.instanceType)
        text("ipv6", i.ipv6Addresses.first)
        text("kernel-id", i.kernelID)
        text("local-hostname", i.localHostname)
        text("local-ipv4", i.localIPv4)
        text("mac", i.mac)
        text("metrics/vhostmd", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")

        // network/interfaces/macs/<mac>/
        let eni = "network/interfaces/macs/\(i.mac)"
        text("\(eni)/device-number", "0")
        text("\(eni)/interface-id", i.interfaceID)
        if let pub = i.publicIPv4, let priv = i.localIPv4 { text("\(eni)/ipv4-associations/\(pub)", priv) }
        list("\(eni)/ipv6s", i.ipv6Addresses)
        text("\(eni)/local-hostname", i.localHostname)
        text("\(eni)/local-ipv4s", i.localIPv4)
        text("\(eni)/mac", i.mac)
        text("\(eni)/network-card-index", "0")
        text("\(eni)/owner-id", i.accountID)
        text("\(eni)/public-hostname", i.publicHostname)
        text("\(eni)/public-ipv4s", i.publicIPv4)
        list("\(eni)/security-group-ids", i.securityGroupIDs)
        list("\(eni)/security-groups", i.securityGroups)
        text("\(eni)/subnet-id", i.subnetID)
        text("\(eni)/subnet-ipv4-cidr-block", i.subnetIPv4CIDR)
        list("\(eni)/subnet-ipv6-cidr-blocks", i.subnetIPv6CIDRs)
        text("\(eni)/vpc-id", i.vpcID)
        text("\(eni)/vpc-ipv4-cidr-block", i.vpcIPv4CIDR)
        list("\(eni)/vpc-ipv4-cidr-blocks", i.vpcIPv4CIDR.map { [$0] } ?? [])
        list("\(eni)/vpc-ipv6-cidr-blocks", i.vpcIPv6CIDRs)

        text("placement/availability-zone", i.availabilityZone)
        text("placement/availability-zone-id", i.availabilityZoneID)
        text("placement/group-name", i.placementGroup)
        text("placement/host-id", i.hostID)
        text("placement/partition-number", i.partitionNumber.map(String.init))
        text("placement/region", i.region)
        list("product-codes", i.productCodes)
        text("profile", i.profile)
        text("public-hostname", i.publicHostname)
        text("public-ipv4", i.publicIPv4)
        if !i.publicKeys.isEmpty {
            var keys = MetadataDirectory()
            for (index, key) in i.publicKeys.enumerated() {
                keys.children[String(index)] = .directory(MetadataDirectory(["openssh-key": .text(key.openSSHKey)]))
                keys.displayNames[String(index)] = "\(index)=\(key.name)"
            }
            keys.order = i.publicKeys.indices.map(String.init)
            md.children["public-keys"] = .directory(keys)
        }
        text("ramdisk-id", i.ramdiskID)
        text("reservation-id", i.reservationID)
        list("security-groups", i.securityGroups)
        text("services/domain", i.domain)
        text("services/partition", i.partition)
        if tagsVisible {
            var dir = MetadataDirectory()
            for tag in tags { dir.children[tag.key] = .text(tag.value) }
            // An instance without tags still has an (empty) tags/instance/ listing.
            md.children["tags"] = .directory(MetadataDirectory(["instance": .directory(dir)]))
        }

        // The version root lists its directories without a trailing slash: `dynamic\nmeta-data\nuser-data`.
        var root = MetadataDirectory(displayNames: ["dynamic": "dynamic", "meta-data": "meta-data"])
        root.children["meta-data"] = .directory(md)
        root.children["dynamic"] = .directory(dynamic(instance: i, launchTime: launchTime, signer: signer))
        if let ud = i.userData { root.children["user-data"] = .leaf(.bytes(ud)) }

        for o in i.overrides {
            let parts = o.path.split(separator: "/").map(String.init)
            root.set(parts[...], o.value.map { .text($0) })
        }
        return root
    }

    static func dynamic(instance i: Instance, launchTime: Date, signer: (any IdentityDocumentSigner)?) -> MetadataDirectory {
        let document = identityDocument(instance: i, launchTime: launchTime)
        var identity = MetadataDirectory(["document": .text(document)])
        if let sigs = signer?.sign(document: Array(document.utf8)) {
            identity.children["signature"] = .text(sigs.signature)
            identity.children["rsa2048"] = .text(sigs.rsa2048)
            identity.children["pkcs7"] = .text(sigs.pkcs7)
        }
        identity.order = ["rsa2048", "pkcs7", "document", "signature", "dsa2048"]
        var dyn = MetadataDirectory()
        dyn.children["instance-identity"] = .directory(identity)
        dyn.children["fws"] = .directory(MetadataDirectory(["instance-monitoring": .text(i.monitoring)]))
        return dyn
    }

    /// `dynamic/instance-identity/document` with the key order of current instances.
    public static func identityDocument(instance i: Instance, launchTime: Date) -> String {
        func nullable(_ a: [String]) -> JSONValue { a.isEmpty ? .null : .strings(a) }
        return EC2JSON.pretty([
            ("accountId", .string(i.accountID)),
            ("architecture", .string(i.architecture)),
            ("availabilityZone", .string(i.availabilityZone)),
            ("billingProducts", nullable(i.billingProducts)),
            ("devpayProductCodes", .null),
            ("marketplaceProductCodes", nullable(i.marketplaceProductCodes)),
            ("imageId", .string(i.amiID)),
            ("instanceId", .string(i.instanceID)),
            ("instanceType", .string(i.instanceType)),
            ("kernelId", i.kernelID.map { .string($0) } ?? .null),
            ("pendingTime", .string(TimeFormat.iso8601(launchTime))),
            ("privateIp", i.localIPv4.map { .string($0) } ?? .null),
            ("ramdiskId", i.ramdiskID.map { .string($0) } ?? .null),
            ("region", .string(i.region)),
            ("version", .string("2017-09-30")),
        ])
    }
}
