import AWSQuery
import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

@Suite("EC2 actions")
struct ActionTests {
    let id = Harness.instanceID

    @Test func describeInstancesShape() async throws {
        let h = Harness()
        let x = try #require(expectOK(await h.action("DescribeInstances", [("InstanceId.1", id)]), "DescribeInstances"))
        #expect(x.childNames == ["requestId", "reservationSet"])
        let reservations = try #require(x.child("reservationSet"))
        #expect(reservations.childNames == ["item"])
        let r = reservations.children[0]
        #expect(r.childNames == ["reservationId", "ownerId", "groupSet", "instancesSet"])
        #expect(r.value("ownerId") == "123456789012")
        #expect(r.value("reservationId")?.hasPrefix("r-") == true)
        let i = try #require(r.at("instancesSet")?.children.first)
        #expect(r.at("instancesSet")?.childNames == ["item"])
        #expect(i.name == "item")
        #expect(i.value("instanceId") == id)
        #expect(i.value("imageId") == "ami-0123456789abcdef0")
        #expect(i.value("instanceType") == "t3.micro")
        #expect(i.value("instanceState/code") == "16")
        #expect(i.value("instanceState/name") == "running")
        #expect(i.value("placement/availabilityZone") == "ap-northeast-1a")
        #expect(i.value("privateIpAddress") == "10.0.1.23")
        #expect(i.value("ipAddress") == "203.0.113.10")
        #expect(i.value("privateDnsName") == "ip-10-0-1-23.ap-northeast-1.compute.internal")
        #expect(i.value("dnsName") == "ec2-203-0-113-10.ap-northeast-1.compute.amazonaws.com")
        #expect(i.value("keyName") == "imds-default")
        #expect(i.value("launchTime")?.hasSuffix(".000Z") == true)
        #expect(i.at("tagSet")?.children.map { [$0.value("key"), $0.value("value")] } == [["Name", "web-1"], ["Env", "dev"]])
        #expect(i.at("groupSet")?.children.first?.value("groupName") == "default")
        #expect(i.value("iamInstanceProfile/arn") == "arn:aws:iam::123456789012:instance-profile/app-role")
        let mo = try #require(i.child("metadataOptions"))
        #expect(mo.childNames == ["state", "httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "httpProtocolIpv6", "instanceMetadataTags"])
        #expect(mo.children.map(\.text) == ["applied", "optional", "1", "enabled", "disabled", "disabled"])
        // Every element name is lowerCamel (PascalCase is silently dropped by botocore).
        func check(_ n: XMLElementNode) {
            #expect(n.name.first?.isLowercase == true, "element \(n.name)")
            n.children.forEach(check)
        }
        x.children.forEach(check)
    }

    @Test func describeWithoutIDsListsTheServedInstance() async {
        let h = Harness()
        let x = expectOK(await h.action("DescribeInstances"), "DescribeInstances")
        #expect(x?.value("reservationSet/item/instancesSet/item/instanceId") == id)
    }

    @Test(arguments: [
        ("instance-id", ["i-0abc1234def567890"], true),
        ("instance-id", ["i-00000000"], false),
        ("instance-id", ["i-0abc*"], true),
        ("instance-state-name", ["running"], true),
        ("instance-state-name", ["stopped", "running"], true),
        ("instance-type", ["t3.?icro"], true),
        ("image-id", ["ami-0123456789abcdef0"], true),
        ("availability-zone", ["ap-northeast-1c"], false),
        ("tag:Name", ["web-1"], true),
        ("tag:Name", ["web-2"], false),
        ("tag-key", ["Env"], true),
        ("metadata-options.http-tokens", ["optional"], true),
        ("metadata-options.http-tokens", ["required"], false),
        ("metadata-options.http-put-response-hop-limit", ["1"], true),
        ("metadata-options.http-endpoint", ["enabled"], true),
        ("metadata-options.http-protocol-ipv4", ["enabled"], true),
        ("metadata-options.http-protocol-ipv6", ["disabled"], true),
        ("metadata-options.instance-metadata-tags", ["enabled"], false),
        ("metadata-options.state", ["applied"], true),
        ("metadata-options.state", ["pending"], false),
    ])
    func filters(name: String, values: [String], matches: Bool) async {
        let h = Harness()
        var params = [("Filter.1.Name", name)]
        for (n, v) in values.enumerated() { params.append(("Filter.1.Value.\(n + 1)", v)) }
        let x = expectOK(await h.action("DescribeInstances", params), "DescribeInstances")
        #expect(x?.at("reservationSet")?.children.count == (matches ? 1 : 0))
    }

    @Test func filtersAreANDed() async {
        let h = Harness()
        let x = expectOK(await h.action("DescribeInstances", [
            ("Filter.1.Name", "instance-state-name"), ("Filter.1.Value.1", "running"),
            ("Filter.2.Name", "metadata-options.http-tokens"), ("Filter.2.Value.1", "required"),
        ]), "DescribeInstances")
        #expect(x?.at("reservationSet")?.children.isEmpty == true)
        // The empty list is rendered as an empty element.
        #expect(await h.action("DescribeInstances", [("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", "i-00000000")]).bodyText.contains("<reservationSet/>"))
    }

    /// Wildcards that backtrack exponentially in a recursive matcher get the right answer; filter
    /// and parameter counts are bounded with a clear error (issue 16.3).
    @Test func pathologicalFiltersAndLimits() async throws {
        let h = Harness()
        func reservations(_ params: [(String, String)]) async -> Int? {
            expectOK(await h.action("DescribeInstances", params), "DescribeInstances")?.at("reservationSet")?.children.count
        }
        let starQ = String(repeating: "*?", count: 2000)
        #expect(await reservations([("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", starQ + "!")]) == 0)
        #expect(await reservations([("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", String(repeating: "*?", count: 9) + "*")]) == 1)
        #expect(await reservations([("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", "i-*?*?*?*?*?*?*?*?0")]) == 1)
        #expect(await reservations([("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", "i-*?*?*?*?*?*?*?*?!")]) == 0)
        #expect(await reservations((1...50).flatMap { [("Filter.\($0).Name", "instance-id"), ("Filter.\($0).Value.1", "i-*")] }) == 1)
        #expect(await reservations([("Filter.1.Name", "instance-id")] + (1...200).map { ("Filter.1.Value.\($0)", "i-*\($0)") }) == 1)
        let tags = await h.action("DescribeTags", [("Filter.1.Name", "value"), ("Filter.1.Value.1", starQ + "!")])
        #expect(expectOK(tags, "DescribeTags")?.at("tagSet")?.children.count == 0)

        expectError(await h.action("DescribeInstances", (1...51).flatMap { [("Filter.\($0).Name", "instance-id"), ("Filter.\($0).Value.1", "i-*")] }),
                    "FilterLimitExceeded")
        expectError(await h.action("DescribeInstances", (1...20_000).flatMap { [("Filter.\($0).Name", "instance-id"), ("Filter.\($0).Value.1", "*?*?!")] }),
                    "InvalidRequest")
        expectError(await h.action("DescribeInstances", (1...4_000).flatMap { [("Filter.\($0).Name", "instance-id"), ("Filter.\($0).Value.1", "*?*?!")] }),
                    "FilterLimitExceeded")
        expectError(await h.action("DescribeInstances", [("Filter.1.Name", "instance-id")] + (1...201).map { ("Filter.1.Value.\($0)", "x") }),
                    "FilterLimitExceeded")
        expectError(await h.action("DescribeTags", (1...51).flatMap { [("Filter.\($0).Name", "key"), ("Filter.\($0).Value.1", "*")] }),
                    "FilterLimitExceeded")
        expectError(await h.action("DescribeInstances", (1...EC2ControlPlane.maxParameters).map { ("InstanceId.\($0)", "i-0abc1234def567890") }),
                    "InvalidRequest")
    }

    /// Input echoed in an error message never makes the XML invalid: control characters that XML 1.0
    /// forbids become U+FFFD, markup is escaped (the expectError helper parses every response).
    @Test func errorXMLIsValidXMLWhateverTheInput() async throws {
        let h = Harness()
        let hostile = "X\u{0}\u{1}\u{8}\u{B}\u{C}\u{1B}\u{1F}\u{7F}\u{FFFE}\u{FFFF}<a>&'\"\tY"
        expectError(await h.action(hostile), "InvalidAction")
        expectError(await h.action("DescribeTags", [("NextToken", hostile)]), "InvalidPaginationToken")
        expectError(await h.action("DescribeInstances", [("InstanceId.1", hostile)]), "InvalidInstanceID.Malformed")
        expectError(await h.action("DescribeInstances", [(hostile, "x")]), "UnknownParameter")
        let text = await h.action(hostile).bodyText
        for c in (0..<32).filter({ $0 != 9 && $0 != 10 && $0 != 13 }) {
            #expect(!text.unicodeScalars.contains(Unicode.Scalar(UInt8(c))), "raw control \(c) in \(text)")
        }
        #expect(!text.contains("\u{FFFE}") && !text.contains("\u{FFFF}"))
        #expect(text.contains("X\u{FFFD}\u{FFFD}"))
        #expect(XML.escape("plain text") == "plain text")
        #expect(XML.escape("a\u{1}b<\r\n") == "a\u{FFFD}b&lt;\r\n")
    }

    @Test func modifyRepliesPendingAndAppliesAtOnce() async throws {
        let h = Harness()
        #expect(h.dataStatus() == 200)
        let x = try #require(expectOK(await h.action("ModifyInstanceMetadataOptions", [
            ("InstanceId", id), ("HttpTokens", "required"), ("HttpEndpoint", "enabled"),
        ]), "ModifyInstanceMetadataOptions"))
        #expect(x.childNames == ["requestId", "instanceId", "instanceMetadataOptions"])
        #expect(x.value("instanceId") == id)
        #expect(x.at("instanceMetadataOptions")?.childNames == ["state", "httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "httpProtocolIpv6", "instanceMetadataTags"])
        #expect(x.at("instanceMetadataOptions")?.children.map(\.text) == ["pending", "required", "1", "enabled", "disabled", "disabled"])
        #expect(h.dataStatus() == 401)
        let d = expectOK(await h.action("DescribeInstances", [("InstanceId.1", id)]), "DescribeInstances")
        #expect(d?.value("reservationSet/item/instancesSet/item/metadataOptions/state") == "applied")
        #expect(d?.value("reservationSet/item/instancesSet/item/metadataOptions/httpTokens") == "required")

        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpEndpoint", "disabled")]), "ModifyInstanceMetadataOptions")
        #expect(h.dataStatus() == 403)
        #expect(h.dataStatus("/latest/user-data") == 403)
        // Omitted parameters kept their value.
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .required)

        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpEndpoint", "enabled"), ("HttpTokens", "optional")]),
                 "ModifyInstanceMetadataOptions")
        #expect(h.dataStatus() == 200)
    }

    @Test func modifyEveryParameter() async {
        let h = Harness()
        let x = expectOK(await h.action("ModifyInstanceMetadataOptions", [
            ("InstanceId", id), ("HttpTokens", "required"), ("HttpPutResponseHopLimit", "64"), ("HttpEndpoint", "enabled"),
            ("HttpProtocolIpv6", "enabled"), ("InstanceMetadataTags", "enabled"),
        ]), "ModifyInstanceMetadataOptions")
        #expect(x?.at("instanceMetadataOptions")?.children.map(\.text) == ["pending", "required", "64", "enabled", "enabled", "enabled"])
        #expect(h.store.snapshot.instance(id)?.options == MetadataOptions(
            httpTokens: .required, httpEndpoint: .enabled, httpPutResponseHopLimit: 64, httpProtocolIPv6: .enabled, instanceMetadataTags: .enabled))
    }

    @Test(arguments: [
        ([("HttpTokens", "maybe")], "InvalidParameterValue"),
        ([("HttpPutResponseHopLimit", "0")], "InvalidParameterValue"),
        ([("HttpPutResponseHopLimit", "65")], "InvalidParameterValue"),
        ([("HttpPutResponseHopLimit", "-1")], "InvalidParameterValue"),
        ([("HttpPutResponseHopLimit", "two")], "InvalidParameterValue"),
        ([("HttpEndpoint", "on")], "InvalidParameterValue"),
        ([("HttpProtocolIpv6", "Enabled")], "InvalidParameterValue"),
        ([("InstanceMetadataTags", "")], "InvalidParameterValue"),
        ([("DryRun", "yes")], "InvalidParameterValue"),
        ([("HttpTokenz", "required")], "UnknownParameter"),
    ] as [([(String, String)], String)])
    func modifyRejectsBadValues(extra: [(String, String)], code: String) async {
        let h = Harness()
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id)] + extra), code)
        #expect(h.store.snapshot.instance(id)?.options == MetadataOptions.ec2Defaults)
    }

    @Test(arguments: [
        ("i-0123456789abcdef1", "InvalidInstanceID.NotFound"),
        ("i-0000000a", "InvalidInstanceID.NotFound"),
        ("i-0abc1234def56789", "InvalidInstanceID.Malformed"),
        ("i-0ABC1234DEF567890", "InvalidInstanceID.Malformed"),
        ("foo", "InvalidInstanceID.Malformed"),
        ("", "InvalidInstanceID.Malformed"),
    ])
    func instanceIDErrors(instance: String, code: String) async {
        let h = Harness()
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", instance), ("HttpTokens", "required")]), code)
        expectError(await h.action("DescribeInstances", [("InstanceId.1", instance)]), code)
    }

    @Test func notFoundMessages() async {
        let h = Harness()
        let one = await h.action("DescribeInstances", [("InstanceId.1", "i-0badbadbadbadbad0")])
        #expect(one.bodyText.contains("<Message>The instance ID &apos;i-0badbadbadbadbad0&apos; does not exist</Message>"))
        let two = await h.action("DescribeInstances", [("InstanceId.1", "i-0badbadbadbadbad0"), ("InstanceId.2", id), ("InstanceId.3", "i-0badbadbadbadbad1")])
        expectError(two, "InvalidInstanceID.NotFound")
        #expect(XMLElementNode.parse(two.bodyText)?.value("Errors/Error/Message") == "The instance IDs 'i-0badbadbadbadbad0, i-0badbadbadbadbad1' do not exist")
    }

    @Test func requestLevelErrors() async {
        let h = Harness()
        expectError(await h.call([("Version", "2016-11-15")]), "MissingAction")
        expectError(await h.call([("Action", "RebootInstances"), ("Version", "2016-11-15")]), "InvalidAction")
        #expect(XMLElementNode.parse(await h.call([("Action", "RebootInstances"), ("Version", "2016-11-15")]).bodyText)?.value("Errors/Error/Message")
                == "The action RebootInstances is not valid for this web service.")
        expectError(await h.call([("Action", "DescribeInstances")]), "MissingParameter")
        expectError(await h.call([("Action", "DescribeInstances"), ("Version", "2014-01-01")]), "NoSuchVersion")
        expectError(await h.action("ModifyInstanceMetadataOptions", [("HttpTokens", "required")]), "MissingParameter")
        expectError(await h.action("DescribeInstances", [("Filter.1.Name", "flavour"), ("Filter.1.Value.1", "x")]), "InvalidParameterValue")
        expectError(await h.action("DescribeInstances", [("Filter.1.Name", "instance-id")]), "InvalidParameterValue")
        expectError(await h.action("DescribeInstances", [("Bogus", "1")]), "UnknownParameter")
        expectError(await h.action("DescribeInstances", [("MaxResults", "3")]), "InvalidParameterValue")
        expectError(await h.action("DescribeInstances", [("MaxResults", "5"), ("InstanceId.1", id)]), "InvalidParameterCombination")
        expectError(await h.post("Action=DescribeInstances&Version=2016-11-15&x=%zz"), "MalformedQueryString")
        let put = await h.controlPlane.handle(IMDSRequest(method: "PUT", target: "/", headers: [("Host", "x")]))
        expectError(put, "UnsupportedOperation")
    }

    @Test func getRequestsWork() async {
        let h = Harness()
        let r = await h.controlPlane.handle(IMDSRequest(method: "GET", target: "/?Action=GetInstanceMetadataDefaults&Version=2016-11-15"))
        expectOK(r, "GetInstanceMetadataDefaults")
    }

    @Test func dryRun() async {
        let h = Harness()
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("DryRun", "true")]),
                    "DryRunOperation", status: 412)
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .optional)
        #expect(h.store.snapshot.revision == 1)  // only the secret (revision 1): the dry run wrote nothing
        expectError(await h.action("DescribeInstances", [("DryRun", "true")]), "DryRunOperation", status: 412)
        expectError(await h.action("GetInstanceMetadataDefaults", [("DryRun", "true")]), "DryRunOperation", status: 412)
        expectError(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokens", "required"), ("DryRun", "true")]), "DryRunOperation", status: 412)
        #expect(h.store.snapshot.accountDefaults == AccountDefaults())
        expectError(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "a"), ("DryRun", "true")]), "DryRunOperation", status: 412)
        expectError(await h.action("DeleteTags", [("ResourceId.1", id), ("DryRun", "true")]), "DryRunOperation", status: 412)
        expectError(await h.action("DescribeTags", [("DryRun", "true")]), "DryRunOperation", status: 412)
        #expect(h.store.snapshot.instance(id)?.tags.count == 2)
        // A dry run of an invalid request reports the problem, not DryRunOperation.
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", "i-0123456789abcdef1"), ("DryRun", "true")]), "InvalidInstanceID.NotFound")
        // DryRun=false is an ordinary call.
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("DryRun", "false")]), "ModifyInstanceMetadataOptions")
    }

    @Test func readOnlyKeysGetUnauthorizedOperation() async {
        let key = ControlPlaneAccessKey(accessKeyID: "AKIDREADONLY", secretAccessKey: "secret-ro", readOnly: true)
        let h = Harness(accessKeys: [key])
        func signed(_ params: [(String, String)]) async -> IMDSResponse {
            let body = Array(params.map { "\($0.0)=\($0.1)" }.joined(separator: "&").utf8)
            let headers: [(name: String, value: String)] = [("Host", "127.0.0.1:1339"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
            let auth = SigV4.sign(method: "POST", target: "/", headers: headers, body: body, accessKeyID: key.accessKeyID,
                                  secretAccessKey: key.secretAccessKey, region: "us-east-1", date: h.clock.now())
            return await h.controlPlane.handle(IMDSRequest(method: "POST", target: "/", headers: headers + auth, body: body))
        }
        expectOK(await signed([("Action", "DescribeInstances"), ("Version", "2016-11-15")]), "DescribeInstances")
        expectError(await signed([("Action", "ModifyInstanceMetadataOptions"), ("Version", "2016-11-15"), ("InstanceId", id), ("HttpTokens", "required")]),
                    "UnauthorizedOperation", status: 403)
        expectError(await signed([("Action", "ModifyInstanceMetadataOptions"), ("Version", "2016-11-15"), ("InstanceId", id), ("HttpTokens", "required"), ("DryRun", "true")]),
                    "UnauthorizedOperation", status: 403)
        expectError(await signed([("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("DryRun", "true")]), "DryRunOperation", status: 412)
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .optional)
    }

    // MARK: Account defaults

    @Test func defaultsRoundTrip() async throws {
        let h = Harness()
        var x = try #require(expectOK(await h.action("GetInstanceMetadataDefaults"), "GetInstanceMetadataDefaults"))
        #expect(x.childNames == ["requestId", "accountLevel"])
        #expect(x.at("accountLevel")?.childNames == ["managedBy"])
        #expect(x.value("accountLevel/managedBy") == "account")

        let m = try #require(expectOK(await h.action("ModifyInstanceMetadataDefaults", [
            ("HttpTokens", "required"), ("HttpPutResponseHopLimit", "2"), ("HttpEndpoint", "enabled"),
            ("InstanceMetadataTags", "enabled"), ("HttpTokensEnforced", "enabled"),
        ]), "ModifyInstanceMetadataDefaults"))
        #expect(m.childNames == ["requestId", "return"])
        #expect(m.value("return") == "true")
        x = try #require(expectOK(await h.action("GetInstanceMetadataDefaults"), "GetInstanceMetadataDefaults"))
        #expect(x.at("accountLevel")?.childNames == ["httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "instanceMetadataTags", "managedBy", "httpTokensEnforced"])
        #expect(x.at("accountLevel")?.children.map(\.text) == ["required", "2", "enabled", "enabled", "account", "enabled"])
        // Existing instances are unaffected.
        #expect(h.store.snapshot.instance(id)?.options == MetadataOptions.ec2Defaults)
        #expect(h.dataStatus() == 200)

        // Omitted parameters keep their value; no-preference and -1 clear one.
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokens", "no-preference"), ("HttpPutResponseHopLimit", "-1")]), "ModifyInstanceMetadataDefaults")
        #expect(h.store.snapshot.accountDefaults == AccountDefaults(httpEndpoint: .enabled, instanceMetadataTags: .enabled, httpTokensEnforced: .enabled))
    }

    @Test(arguments: [
        ("HttpTokens", "maybe"), ("HttpPutResponseHopLimit", "0"), ("HttpPutResponseHopLimit", "65"), ("HttpPutResponseHopLimit", "-2"),
        ("HttpEndpoint", "off"), ("InstanceMetadataTags", "yes"), ("HttpTokensEnforced", "true"),
    ])
    func defaultsRejectBadValues(name: String, value: String) async {
        let h = Harness()
        expectError(await h.action("ModifyInstanceMetadataDefaults", [(name, value)]), "InvalidParameterValue")
        #expect(h.store.snapshot.accountDefaults == AccountDefaults())
    }

    @Test func tokensEnforcedBlocksReturnToOptional() async {
        let h = Harness()
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")]), "ModifyInstanceMetadataOptions")
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokensEnforced", "enabled")]), "ModifyInstanceMetadataDefaults")
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional")]), "UnsupportedOperation")
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .required)
        // Other changes still work.
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpPutResponseHopLimit", "3")]), "ModifyInstanceMetadataOptions")
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokensEnforced", "disabled")]), "ModifyInstanceMetadataDefaults")
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional")]), "ModifyInstanceMetadataOptions")
    }

    @Test func defaultsApplyAtTheNextLaunchOnly() async throws {
        let h = Harness()
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokens", "required"), ("HttpPutResponseHopLimit", "3")]), "ModifyInstanceMetadataDefaults")
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .optional)
        var next = IMDSConfig.embeddedDefault
        next.instance.instanceID = "i-0fedcba9876543210"
        try await h.controlPlane.reload(next)
        #expect(h.store.snapshot.instance("i-0fedcba9876543210")?.options.httpTokens == .required)
        #expect(h.store.snapshot.instance("i-0fedcba9876543210")?.options.httpPutResponseHopLimit == 3)
    }

    @Test func enforcedDefaultsRefuseAnIMDSv1Launch() async throws {
        let h = Harness()
        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokensEnforced", "enabled")]), "ModifyInstanceMetadataDefaults")
        var next = IMDSConfig.embeddedDefault
        next.instance.instanceID = "i-0fedcba9876543210"
        await #expect(throws: EC2Error.self) { try await h.controlPlane.reload(next) }
        #expect(h.store.snapshot.instanceIDs == [id])
        next.instance.amiIMDSSupport = "v2.0"
        try await h.controlPlane.reload(next)
        #expect(h.store.snapshot.instance("i-0fedcba9876543210")?.options.httpTokens == .required)
    }

    @Test func reloadKeepsControlPlaneChanges() async throws {
        let h = Harness()
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")]), "ModifyInstanceMetadataOptions")
        expectOK(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "Team"), ("Tag.1.Value", "a")]), "CreateTags")
        var same = IMDSConfig.embeddedDefault
        same.instance.instanceType = "t3.large"
        try await h.controlPlane.reload(same)
        #expect(h.store.snapshot.instance(id)?.instance.instanceType == "t3.large")
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .required)
        #expect(h.store.snapshot.instance(id)?.tags.map(\.key) == ["Name", "Env", "Team"])
    }

    // MARK: Tags

    @Test func tagsFollowLiveOnTheDataPlane() async {
        let h = Harness()
        #expect(h.dataStatus("/latest/meta-data/tags/instance/Name") == 404)
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("InstanceMetadataTags", "enabled")]), "ModifyInstanceMetadataOptions")
        #expect(h.dataBody("/latest/meta-data/tags/instance/Name") == "web-1")
        let c = expectOK(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "Team"), ("Tag.1.Value", "payments"),
                                                  ("Tag.2.Key", "Name"), ("Tag.2.Value", "web-2"), ("Tag.3.Key", "Empty")]), "CreateTags")
        #expect(c?.childNames == ["requestId", "return"])
        #expect(h.dataBody("/latest/meta-data/tags/instance/Team") == "payments")
        #expect(h.dataBody("/latest/meta-data/tags/instance/Name") == "web-2")
        #expect(h.dataBody("/latest/meta-data/tags/instance/Empty") == "")
        #expect(h.dataBody("/latest/meta-data/tags/instance/") == "Empty\nEnv\nName\nTeam")

        expectOK(await h.action("DeleteTags", [("ResourceId.1", id), ("Tag.1.Key", "Team"), ("Tag.2.Key", "Name"), ("Tag.2.Value", "not-this")]), "DeleteTags")
        #expect(h.dataStatus("/latest/meta-data/tags/instance/Team") == 404)
        #expect(h.dataBody("/latest/meta-data/tags/instance/Name") == "web-2")
        expectOK(await h.action("DeleteTags", [("ResourceId.1", id)]), "DeleteTags")
        #expect(h.dataBody("/latest/meta-data/tags/instance/") == "")
        #expect(h.store.snapshot.instance(id)?.tags.isEmpty == true)
    }

    @Test func describeTags() async throws {
        let h = Harness()
        let x = try #require(expectOK(await h.action("DescribeTags"), "DescribeTags"))
        #expect(x.childNames == ["requestId", "tagSet"])
        #expect(x.at("tagSet")?.children.map { $0.childNames } == [["resourceId", "resourceType", "key", "value"], ["resourceId", "resourceType", "key", "value"]])
        #expect(x.at("tagSet")?.children.map { $0.value("key") } == ["Env", "Name"])
        #expect(x.at("tagSet")?.children.first?.value("resourceType") == "instance")
        let f = expectOK(await h.action("DescribeTags", [("Filter.1.Name", "key"), ("Filter.1.Value.1", "Na*"), ("Filter.2.Name", "resource-id"), ("Filter.2.Value.1", id)]), "DescribeTags")
        #expect(f?.at("tagSet")?.children.map { $0.value("value") } == ["web-1"])
        expectError(await h.action("DescribeTags", [("Filter.1.Name", "colour"), ("Filter.1.Value.1", "x")]), "InvalidParameterValue")
        // Pagination.
        expectOK(await h.action("CreateTags", [("ResourceId.1", id)] + (1...6).flatMap { [("Tag.\($0).Key", "k\($0)"), ("Tag.\($0).Value", "v")] }), "CreateTags")
        let p1 = try #require(expectOK(await h.action("DescribeTags", [("MaxResults", "5")]), "DescribeTags"))
        #expect(p1.at("tagSet")?.children.count == 5)
        let token = try #require(p1.value("nextToken"))
        let p2 = try #require(expectOK(await h.action("DescribeTags", [("MaxResults", "5"), ("NextToken", token)]), "DescribeTags"))
        #expect(p2.at("tagSet")?.children.count == 3)
        #expect(p2.child("nextToken") == nil)
        expectError(await h.action("DescribeTags", [("NextToken", "abc")]), "InvalidPaginationToken")
        // The end of the list is a valid (empty) page; anything past it, however large, is refused
        // (NextToken=Int.max with MaxResults used to overflow `offset + maxResults` and kill the process).
        let end = try #require(expectOK(await h.action("DescribeTags", [("MaxResults", "5"), ("NextToken", "8")]), "DescribeTags"))
        #expect(end.at("tagSet")?.children.count == 0)
        for token in ["9", "9223372036854775807", "9223372036854775806", "4611686018427387904", "-1", "-0", "+1", "99999999999999999999999", "1e3", " 5"] {
            expectError(await h.action("DescribeTags", [("MaxResults", "5"), ("NextToken", token)]), "InvalidPaginationToken")
            expectError(await h.action("DescribeTags", [("NextToken", token)]), "InvalidPaginationToken")
        }
        for max in ["9223372036854775807", "-9223372036854775808", "4", "1001", "1e3", "99999999999999999999"] {
            expectError(await h.action("DescribeTags", [("MaxResults", max)]), "InvalidParameterValue")
            expectError(await h.action("DescribeInstances", [("MaxResults", max)]), "InvalidParameterValue")
        }
    }

    @Test(arguments: [
        ([("Tag.1.Key", "a")], "MissingParameter"),                                       // no ResourceId
        ([("ResourceId.1", "i-0abc1234def567890")], "MissingParameter"),                  // no Tag
        ([("ResourceId.1", "i-0abc1234def567890"), ("Tag.1.Value", "v")], "MissingParameter"),
        ([("ResourceId.1", "i-0123456789abcdef1"), ("Tag.1.Key", "a")], "InvalidInstanceID.NotFound"),
        ([("ResourceId.1", "i-xyz"), ("Tag.1.Key", "a")], "InvalidInstanceID.Malformed"),
        ([("ResourceId.1", "ami-0123456789abcdef0"), ("Tag.1.Key", "a")], "InvalidID"),
        ([("ResourceId.1", "i-0abc1234def567890"), ("Tag.1.Key", "aws:owner")], "InvalidParameterValue"),
        ([("ResourceId.1", "i-0abc1234def567890"), ("Tag.1.Key", String(repeating: "k", count: 129))], "InvalidParameterValue"),
        ([("ResourceId.1", "i-0abc1234def567890"), ("Tag.1.Key", "k"), ("Tag.1.Value", String(repeating: "v", count: 257))], "InvalidParameterValue"),
    ] as [([(String, String)], String)])
    func createTagsErrors(params: [(String, String)], code: String) async {
        let h = Harness()
        expectError(await h.action("CreateTags", params), code)
        #expect(h.store.snapshot.instance(id)?.tags.count == 2)
    }

    @Test func tagLimitAndMetadataSafeKeys() async {
        let h = Harness()
        expectError(await h.action("CreateTags", [("ResourceId.1", id)] + (1...49).flatMap { [("Tag.\($0).Key", "k\($0)")] }), "TagLimitExceeded")
        // Spaces are fine while tags are not in metadata…
        expectOK(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "cost center"), ("Tag.1.Value", "x")]), "CreateTags")
        // …but then metadata tags cannot be enabled,
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("InstanceMetadataTags", "enabled")]), "InvalidParameterValue")
        expectOK(await h.action("DeleteTags", [("ResourceId.1", id), ("Tag.1.Key", "cost center")]), "DeleteTags")
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("InstanceMetadataTags", "enabled")]), "ModifyInstanceMetadataOptions")
        // …and while they are, such keys are refused.
        expectError(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "a/b")]), "InvalidParameterValue")
        expectError(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "_index")]), "InvalidParameterValue")
    }

    @Test func xmlEscaping() async {
        let h = Harness()
        expectOK(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "note"), ("Tag.1.Value", "<a & 'b'>\"")]), "CreateTags")
        let r = await h.action("DescribeTags", [("Filter.1.Name", "key"), ("Filter.1.Value.1", "note")])
        #expect(r.bodyText.contains("<value>&lt;a &amp; &apos;b&apos;&gt;&quot;</value>"))
        #expect(XMLElementNode.parse(r.bodyText)?.value("tagSet/item/value") == "<a & 'b'>\"")
    }

    @Test func responseHeaders() async {
        let h = Harness()
        let r = await h.action("DescribeInstances")
        #expect(r.headers.map(\.name) == ["x-amzn-RequestId", "Content-Type", "Content-Length", "Date", "Server", "Connection"])
        #expect(r.header("Date") == "Fri, 02 Jan 2026 03:04:05 GMT")
        #expect(r.bodyText.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n    <requestId>"))
    }
}
