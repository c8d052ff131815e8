import AWSQuery
import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

/// RunInstances, TerminateInstances, StopInstances, StartInstances: EC2's shapes and errors, and
/// what the data plane serves after each.
@Suite("Instance lifecycle")
struct LifecycleTests {
    /// A data-plane GET from `ip` (IMDSv1).
    func get(_ h: Harness, _ path: String, from ip: String) -> IMDSResponse {
        h.dataPlane.respond(to: IMDSRequest(method: "GET", target: path, peer: PeerAddress(ip: ip, port: 40000)))
    }

    func run(_ h: Harness, _ params: [(String, String)]) async -> IMDSResponse {
        await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "1"), ("MaxCount", "1")] + params)
    }

    @Test func runInstancesShapeAndServing() async throws {
        let h = Harness()
        let userData = Data("#!/bin/sh\necho web-2\n".utf8).base64EncodedString()
        let r = await run(h, [
            ("InstanceType", "t3.small"), ("PrivateIpAddress", "10.0.1.24"),
            ("MetadataOptions.HttpTokens", "required"), ("MetadataOptions.HttpPutResponseHopLimit", "2"),
            ("IamInstanceProfile.Name", "web-role"), ("UserData", userData), ("KeyName", "deploy"),
            ("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web-2"),
        ])
        let x = try #require(expectOK(r, "RunInstances"))
        #expect(x.childNames == ["requestId", "reservationId", "ownerId", "groupSet", "instancesSet"])
        let item = try #require(x.at("instancesSet")?.children.first)
        #expect(item.value("instanceState/name") == "pending")
        #expect(item.value("instanceState/code") == "0")
        #expect(item.value("privateIpAddress") == "10.0.1.24")
        #expect(item.value("instanceType") == "t3.small")
        #expect(item.value("keyName") == "deploy")
        #expect(item.value("metadataOptions/httpTokens") == "required")
        #expect(item.value("metadataOptions/httpPutResponseHopLimit") == "2")
        #expect(item.value("iamInstanceProfile/arn")?.hasSuffix("instance-profile/web-role") == true)
        let id = try #require(item.value("instanceId"))
        #expect(InstanceIDs.isWellFormed(id) && id.count == 19)
        // The reply came after the data plane answers as the new instance.
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.24").status == 401, "HttpTokens=required")
        let token = h.dataPlane.respond(to: IMDSRequest(method: "PUT", target: "/latest/api/token",
            headers: [("X-aws-ec2-metadata-token-ttl-seconds", "60")], peer: PeerAddress(ip: "10.0.1.24", port: 1))).bodyText
        func v2(_ path: String) -> String {
            h.dataPlane.respond(to: IMDSRequest(method: "GET", target: path, headers: [("X-aws-ec2-metadata-token", token)],
                                                peer: PeerAddress(ip: "10.0.1.24", port: 1))).bodyText
        }
        #expect(v2("/latest/meta-data/instance-id") == id)
        #expect(v2("/latest/user-data") == "#!/bin/sh\necho web-2\n")
        #expect(v2("/latest/meta-data/iam/security-credentials/") == "web-role")
        #expect(v2("/latest/meta-data/instance-type") == "t3.small")
        #expect(v2("/latest/meta-data/public-keys/") == "0=deploy")
        // The config's instance is still its own.
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.23").bodyText == Harness.instanceID)
        // DescribeInstances shows both, the new one running.
        let d = try #require(expectOK(await h.action("DescribeInstances", [("InstanceId.1", id)]), "DescribeInstances"))
        #expect(d.value("reservationSet/item/instancesSet/item/instanceState/name") == "running")
        #expect(d.at("reservationSet/item/instancesSet/item/tagSet")?.children.first?.value("value") == "web-2")
    }

    @Test func launchOptionPrecedence() async throws {
        // AMI ImdsSupport v2.0 over the account; explicit over the AMI.
        let h = try Harness(yaml: "instance:\n  ami-imds-support: v2.0\n")
        func launched(_ params: [(String, String)], image: String = "ami-0123456789abcdef0") async -> XMLElementNode? {
            expectOK(await h.action("RunInstances", [("ImageId", image), ("MinCount", "1"), ("MaxCount", "1")] + params), "RunInstances")?
                .at("instancesSet/item/metadataOptions")
        }
        let fromAMI = await launched([])
        #expect(fromAMI?.value("httpTokens") == "required")
        #expect(fromAMI?.value("httpPutResponseHopLimit") == "2")
        let explicit = await launched([("MetadataOptions.HttpTokens", "optional")])
        #expect(explicit?.value("httpTokens") == "optional")
        let otherAMI = await launched([], image: "ami-0fedcba9876543210")
        #expect(otherAMI?.value("httpTokens") == "optional")
        // Account defaults apply to an AMI without ImdsSupport; HttpTokensEnforced refuses v1 launches.
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpPutResponseHopLimit", "3")]), "ModifyInstanceMetadataDefaults")
        #expect(await launched([], image: "ami-0fedcba9876543210")?.value("httpPutResponseHopLimit") == "3")
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokensEnforced", "enabled")]), "ModifyInstanceMetadataDefaults")
        expectError(await h.action("RunInstances", [("ImageId", "ami-0fedcba9876543210"), ("MinCount", "1"), ("MaxCount", "1")]),
                    "UnsupportedOperation")
        #expect(await launched([("MetadataOptions.HttpTokens", "required")], image: "ami-0fedcba9876543210")?.value("httpTokens") == "required")
    }

    @Test(arguments: [
        ([("PrivateIpAddress", "10.0.1.23")], "InvalidIPAddress.InUse"),
        ([("PrivateIpAddress", "10.9.9.9")], "InvalidParameterValue"),
        ([("PrivateIpAddress", "not-an-ip")], "InvalidParameterValue"),
        ([("MetadataOptions.HttpTokens", "maybe")], "InvalidParameterValue"),
        ([("MetadataOptions.HttpPutResponseHopLimit", "65")], "InvalidParameterValue"),
        ([("MetadataOptions.HttpEndpoint", "on")], "InvalidParameterValue"),
        ([("SubnetId", "subnet-0123456789abcdef0")], "InvalidSubnetID.NotFound"),
        ([("SubnetId", "nope")], "InvalidSubnetID.Malformed"),
        ([("UserData", "***")], "InvalidParameterValue"),
        ([("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Key", "aws:x")], "InvalidParameterValue"),
        ([("Bogus", "1")], "UnknownParameter"),
    ] as [([(String, String)], String)])
    func runInstancesErrors(params: [(String, String)], code: String) async {
        let h = Harness()
        expectError(await run(h, params), code)
        #expect(h.store.snapshot.instanceCount == 1, "nothing launched")
    }

    @Test func countsAndTheSubnet() async throws {
        let h = try Harness(yaml: "instance:\n  subnet-ipv4-cidr-block: 10.0.1.0/28\n")
        // A /28 has 16 addresses: 5 reserved by EC2, one the config's instance's (10.0.1.23 is outside).
        expectError(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "12"), ("MaxCount", "12")]),
                    "InsufficientFreeAddressesInSubnet")
        expectError(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "3"), ("MaxCount", "2")]),
                    "InvalidParameterValue")
        expectError(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "2"), ("MaxCount", "2"),
                                                     ("PrivateIpAddress", "10.0.1.5")]), "InvalidParameterCombination")
        let x = try #require(expectOK(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "2"), ("MaxCount", "20")]), "RunInstances"))
        let items = x.at("instancesSet")?.children ?? []
        #expect(items.count == 11, "as many as the subnet holds, at least MinCount")
        #expect(items.compactMap { $0.value("privateIpAddress") }.first == "10.0.1.4")
        #expect(Set(items.compactMap { $0.value("instanceId") }).count == 11)
        #expect(items.map { $0.value("amiLaunchIndex") } == (0..<11).map { String($0) })
        expectError(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "1"), ("MaxCount", "1")]),
                    "InsufficientFreeAddressesInSubnet")
    }

    @Test func stopStartTerminate() async throws {
        let h = Harness()
        let x = try #require(expectOK(await run(h, [("PrivateIpAddress", "10.0.1.30")]), "RunInstances"))
        let id = try #require(x.value("instancesSet/item/instanceId"))
        func states(_ action: String, _ ids: [String] = [id]) async -> [String?] {
            let r = await h.action(action, ids.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) })
            let x = expectOK(r, action)
            return (x?.at("instancesSet")?.children ?? []).flatMap { [$0.value("currentState/name"), $0.value("previousState/name")] }
        }
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.30").bodyText == id)
        #expect(await states("StopInstances") == ["stopping", "running"])
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.30").status == 404, "a stopped instance is not served")
        #expect(await states("StopInstances") == ["stopped", "stopped"])
        expectError(await run(h, [("PrivateIpAddress", "10.0.1.30")]), "InvalidIPAddress.InUse")
        #expect(await states("StartInstances") == ["pending", "stopped"])
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.30").bodyText == id)
        #expect(await states("TerminateInstances") == ["shutting-down", "running"])
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.30").status == 404, "terminated: gone at once")
        #expect(await states("TerminateInstances") == ["terminated", "terminated"])
        expectError(await h.action("StartInstances", [("InstanceId.1", id)]), "IncorrectInstanceState")
        expectError(await h.action("StopInstances", [("InstanceId.1", id)]), "IncorrectInstanceState")
        expectError(await h.action("TerminateInstances", [("InstanceId.1", "i-0123456789abcdef9")]), "InvalidInstanceID.NotFound")
        expectError(await h.action("TerminateInstances", [("InstanceId.1", "x-1")]), "InvalidInstanceID.Malformed")
        expectError(await h.action("TerminateInstances"), "MissingParameter")
        let d = try #require(expectOK(await h.action("DescribeInstances", [("InstanceId.1", id)]), "DescribeInstances"))
        #expect(d.value("reservationSet/item/instancesSet/item/instanceState/name") == "terminated")
        // Its address is free again.
        expectOK(await run(h, [("PrivateIpAddress", "10.0.1.30")]), "RunInstances")
        // The config's instance was untouched throughout.
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.23").bodyText == Harness.instanceID)
    }

    @Test func describePagination() async throws {
        let h = Harness()
        expectOK(await h.action("RunInstances", [("ImageId", "ami-0123456789abcdef0"), ("MinCount", "12"), ("MaxCount", "12")]), "RunInstances")
        var seen: [String] = []
        var token: String?
        for _ in 0..<10 {
            var params = [("MaxResults", "5")]
            if let token { params.append(("NextToken", token)) }
            let x = try #require(expectOK(await h.action("DescribeInstances", params), "DescribeInstances"))
            seen += (x.at("reservationSet")?.children ?? []).compactMap { $0.value("instancesSet/item/instanceId") }
            token = x.value("nextToken")
            if token == nil { break }
        }
        #expect(seen.count == 13)
        #expect(Set(seen).count == 13)
        #expect(seen == seen.sorted())
        expectError(await h.action("DescribeInstances", [("NextToken", "garbage")]), "InvalidParameterValue")
    }

    @Test func launchesSurviveARestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imds-lifecycle-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let open: (IMDSConfig, ManualClock) throws -> EmbeddedInstanceStore = { config, clock in
            try StateDirectory.open(dir, config: config, clock: clock)
        }
        var a = "", b = ""
        do {
            let h = try Harness(open: open)
            a = try #require(expectOK(await run(h, [("PrivateIpAddress", "10.0.1.40")]), "RunInstances")?.value("instancesSet/item/instanceId"))
            b = try #require(expectOK(await run(h, [("PrivateIpAddress", "10.0.1.41")]), "RunInstances")?.value("instancesSet/item/instanceId"))
            expectOK(await h.action("TerminateInstances", [("InstanceId.1", b)]), "TerminateInstances")
            h.store.close()
        }
        let h = try Harness(open: open)
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.40").bodyText == a)
        #expect(get(h, "/latest/meta-data/instance-id", from: "10.0.1.41").status == 404)
        #expect(h.store.snapshot.instance(b)?.state == .terminated)
    }
}
