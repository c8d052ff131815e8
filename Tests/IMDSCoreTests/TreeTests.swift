import Crypto
import Foundation
import IMDSCore
import IMDSTesting
import Testing

@Suite("Metadata tree")
struct TreeTests {
    @Test func topLevelListing() async throws {
        let r = try makeIMDS().get("/latest/meta-data/")
        #expect(r.bodyText == """
            ami-id
            ami-launch-index
            ami-manifest-path
            block-device-mapping/
            events/
            hostname
            iam/
            identity-credentials/
            instance-action
            instance-id
            instance-life-cycle
            instance-type
            local-hostname
            local-ipv4
            mac
            metrics/
            network/
            placement/
            profile
            public-hostname
            public-ipv4
            public-keys/
            reservation-id
            security-groups
            services/
            tags/
            """)
        #expect(!r.bodyText.hasSuffix("\n"))
        #expect(r.headers.map(\.name) == [
            "Content-Type", "Accept-Ranges", "Last-Modified", "Content-Length", "Date", "Server", "Connection",
        ])
    }

    @Test(arguments: [
        ("/latest/", "dynamic\nmeta-data\nuser-data"),
        ("/latest", "dynamic\nmeta-data\nuser-data"),
        ("/latest/meta-data/placement/", "availability-zone\navailability-zone-id\nregion"),
        ("/latest/meta-data/hostname", "ip-10-0-1-23.ap-northeast-1.compute.internal"),
        ("/latest/meta-data/local-hostname", "ip-10-0-1-23.ap-northeast-1.compute.internal"),
        ("/latest/meta-data/public-hostname", "ec2-203-0-113-10.ap-northeast-1.compute.amazonaws.com"),
        ("/latest/meta-data/placement/", "availability-zone\navailability-zone-id\nregion"),
        ("/latest/meta-data/placement/region", "ap-northeast-1"),
        ("/latest/meta-data/placement/availability-zone-id", "apne1-az1"),
        ("/latest/meta-data/services/domain", "amazonaws.com"),
        ("/latest/meta-data/services/partition", "aws"),
        ("/latest/meta-data/security-groups", "default"),
        ("/latest/meta-data/ami-manifest-path", "(unknown)"),
        ("/latest/meta-data/ami-launch-index", "0"),
        ("/latest/meta-data/instance-action", "none"),
        ("/latest/meta-data/instance-life-cycle", "on-demand"),
        ("/latest/meta-data/mac", "0e:12:34:56:78:9a"),
        ("/latest/meta-data/iam/", "info\nsecurity-credentials/\nsecurity-credentials-extended/"),
        ("/latest/meta-data/iam/security-credentials/", "app-role"),
        ("/latest/meta-data/network/interfaces/macs/", "0e:12:34:56:78:9a/"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/local-ipv4s", "10.0.1.23"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/public-ipv4s", "203.0.113.10"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/ipv4-associations/203.0.113.10", "10.0.1.23"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/owner-id", "123456789012"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/device-number", "0"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/subnet-ipv4-cidr-block", "10.0.1.0/24"),
        ("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/vpc-ipv4-cidr-block", "10.0.0.0/16"),
        ("/latest/meta-data/block-device-mapping/", "ami\nroot"),
        ("/latest/meta-data/block-device-mapping/root", "/dev/xvda"),
        ("/latest/meta-data/public-keys/", "0=imds-default"),
        ("/latest/meta-data/public-keys/0/", "openssh-key"),
        ("/latest/meta-data/events/", "maintenance/"),
        ("/latest/meta-data/events/maintenance/scheduled", "[]"),
        ("/latest/meta-data/events/maintenance/history", "[]"),
        ("/latest/dynamic/", "fws/\ninstance-identity/"),
        ("/latest/dynamic/fws/instance-monitoring", "disabled"),
        ("/latest/meta-data/identity-credentials/ec2/", "info\nsecurity-credentials/"),
    ])
    func values(path: String, expected: String) throws {
        let r = try makeIMDS().get(path)
        #expect(r.status == 200)
        #expect(r.bodyText == expected)
    }

    @Test(arguments: [
        "/latest/meta-data/ipv6", "/latest/meta-data/kernel-id", "/latest/meta-data/ramdisk-id",
        "/latest/meta-data/spot/instance-action", "/latest/meta-data/spot/termination-time",
        "/latest/meta-data/events/recommendations/rebalance", "/latest/meta-data/placement/group-name",
        "/latest/meta-data/placement/partition-number", "/latest/meta-data/placement/host-id",
        "/latest/meta-data/autoscaling/target-lifecycle-state", "/latest/meta-data/product-codes",
        "/latest/meta-data/ancestor-ami-ids",
    ])
    func notApplicableIs404(path: String) throws {
        #expect(try makeIMDS().get(path).status == 404)
    }

    @Test func noPublicIPv4() async throws {
        let imds = try makeIMDS(productExampleYAML.replacingOccurrences(of: "  public-ipv4: 203.0.113.10                 # omit: public-ipv4 and public-hostname answer 404\n", with: ""))
        #expect(imds.get("/latest/meta-data/public-ipv4").status == 200)  // the default instance has one
        let none = try makeIMDS("instance:\n  public-ipv4: null\n")
        #expect(none.get("/latest/meta-data/public-ipv4").status == 404)
        #expect(none.get("/latest/meta-data/public-hostname").status == 404)
        #expect(!none.get("/latest/meta-data/").bodyText.contains("public-ipv4"))
        #expect(none.get("/latest/meta-data/network/interfaces/macs/0e:12:34:56:78:9a/public-ipv4s").status == 404)
    }

    @Test func noRoleMeans404UnderIAM() async throws {
        let imds = try makeIMDS("instance:\n  iam: null\n")
        for p in ["/latest/meta-data/iam/", "/latest/meta-data/iam/info", "/latest/meta-data/iam/security-credentials/",
                  "/latest/meta-data/iam/security-credentials/app-role"] {
            #expect(imds.get(p).status == 404, "\(p)")
        }
        #expect(!imds.get("/latest/meta-data/").bodyText.contains("iam/"))
    }

    @Test func noUserData() async throws {
        let imds = try makeIMDS("instance:\n  user-data: null\n")
        #expect(imds.get("/latest/user-data").status == 404)
        #expect(imds.get("/latest/").bodyText == "dynamic\nmeta-data")
    }

    @Test func userDataIsRawBytes() async throws {
        let imds = try makeIMDS("instance:\n  user-data-base64: AAEC/w==\n")
        let r = imds.get("/latest/user-data")
        #expect(r.body == [0, 1, 2, 255])
        #expect(r.header("Content-Type") == "application/octet-stream")
    }

    @Test func tagsDisabledIs404() async throws {
        let imds = try makeIMDS(productExampleYAML.replacingOccurrences(of: "instance-metadata-tags: enabled", with: "instance-metadata-tags: disabled"))
        #expect(imds.get("/latest/meta-data/tags/instance/").status == 404)
        #expect(imds.get("/latest/meta-data/tags/instance/Name").status == 404)
        #expect(!imds.get("/latest/meta-data/").bodyText.contains("tags/"))
    }

    @Test func tagsFollowRuntimeChanges() async throws {
        let imds = try makeIMDS()
        try await imds.store.apply([.setTags(instanceID: "i-0abc1234def567890", [InstanceTag(key: "Team", value: "core")])])
        #expect(imds.get("/latest/meta-data/tags/instance/").bodyText == "Team")
        #expect(imds.get("/latest/meta-data/tags/instance/Name").status == 404)
    }

    @Test func identityDocumentShape() async throws {
        let imds = try makeIMDS("instance:\n  launch-time: 2025-10-05T23:09:26Z\n")
        let r = imds.get("/latest/dynamic/instance-identity/document")
        #expect(r.header("Content-Type") == "text/plain")
        #expect(r.bodyText == """
            {
              "accountId" : "123456789012",
              "architecture" : "x86_64",
              "availabilityZone" : "ap-northeast-1a",
              "billingProducts" : null,
              "devpayProductCodes" : null,
              "marketplaceProductCodes" : null,
              "imageId" : "ami-0123456789abcdef0",
              "instanceId" : "i-0abc1234def567890",
              "instanceType" : "t3.micro",
              "kernelId" : null,
              "pendingTime" : "2025-10-05T23:09:26Z",
              "privateIp" : "10.0.1.23",
              "ramdiskId" : null,
              "region" : "ap-northeast-1",
              "version" : "2017-09-30"
            }
            """)
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        #expect(json?["region"] as? String == "ap-northeast-1")
    }

    @Test func identityDocumentArraysInline() async throws {
        let imds = try makeIMDS("instance:\n  marketplace-product-codes: [1abc2defghijklm3nopqrs4tu]\n")
        #expect(imds.get("/latest/dynamic/instance-identity/document").bodyText
            .contains("\"marketplaceProductCodes\" : [ \"1abc2defghijklm3nopqrs4tu\" ],"))
    }

    @Test func credentialsJSONShape() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
        let imds = try makeIMDS(clock: clock)
        let r = imds.get("/latest/meta-data/iam/security-credentials/app-role")
        #expect(r.header("Content-Type") == "text/plain")
        let text = r.bodyText
        let keys = text.split(separator: "\n").dropFirst().dropLast().map { $0.split(separator: "\"")[1] }
        #expect(keys == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"])
        #expect(text.hasPrefix("{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \""))
        #expect(!text.hasSuffix("\n"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: String])
        let akid = try #require(json["AccessKeyId"])
        #expect(akid.hasPrefix("ASIA") && akid.count == 20)
        #expect(json["SecretAccessKey"]?.count == 40)
        #expect((json["Token"]?.count ?? 0) > 800)
        let expiration = try #require(json["Expiration"].flatMap(TimeFormat.parseISO8601))
        #expect(expiration.timeIntervalSince(clock.now()) > 300)
        // Extended variant adds AccountId.
        let ext = imds.get("/latest/meta-data/iam/security-credentials-extended/app-role").bodyText
        #expect(ext.hasSuffix(",\n  \"AccountId\" : \"123456789012\"\n}"))
    }

    @Test func iamInfoShape() async throws {
        let r = try makeIMDS().get("/latest/meta-data/iam/info")
        let lines = r.bodyText.split(separator: "\n")
        #expect(lines.count == 6)
        #expect(lines[3] == "  \"InstanceProfileArn\" : \"arn:aws:iam::123456789012:instance-profile/app-role\",")
        #expect(lines[4].hasPrefix("  \"InstanceProfileId\" : \"AIPA"))
    }

    @Test func overridesAddAndRemovePaths() async throws {
        let imds = try makeIMDS("""
            instance:
              overrides:
                meta-data/custom/thing: hello
                meta-data/profile: null
                meta-data/instance-type: m5.large
            """)
        #expect(imds.get("/latest/meta-data/custom/thing").bodyText == "hello")
        #expect(imds.get("/latest/meta-data/custom/").bodyText == "thing")
        #expect(imds.get("/latest/meta-data/profile").status == 404)
        #expect(imds.get("/latest/meta-data/instance-type").bodyText == "m5.large")
    }

    @Test func redirectLocationUsesHost() async throws {
        let imds = try makeIMDS()
        var r = imds.request("GET", "/latest/meta-data/iam", headers: [("Host", "169.254.169.254")])
        #expect(r.status == 301)
        #expect(r.header("Location") == "http://169.254.169.254/latest/meta-data/iam/")
        #expect(r.header("Content-Length") == "0")
        r = imds.request("GET", "/latest/meta-data/placement", headers: [("Host", "127.0.0.1:1338")])
        #expect(r.header("Location") == "http://127.0.0.1:1338/latest/meta-data/placement/")
        // Shallow directories answer their listing without the slash.
        #expect(imds.request("GET", "/latest/meta-data").status == 200)
        #expect(imds.request("GET", "/latest/dynamic").status == 200)
        r = imds.request("GET", "/latest/meta-data/placement")
        #expect(r.header("Location") == "http://169.254.169.254/latest/meta-data/placement/")
        r = imds.request("GET", "/latest/meta-data/iam", headers: [("Host", "evil.example/\r\nX: y")])
        #expect(r.header("Location") == "http://169.254.169.254/latest/meta-data/iam/")
    }

    @Test func versionsFilterCategories() async throws {
        let imds = try makeIMDS()
        #expect(!imds.get("/2016-09-02/meta-data/").bodyText.contains("tags/"))
        #expect(imds.get("/2016-09-02/meta-data/placement/").bodyText == "availability-zone")
        #expect(imds.get("/2021-07-15/meta-data/placement/").bodyText == "availability-zone\navailability-zone-id\nregion")
        #expect(imds.get("/1.0/").bodyText == "meta-data\nuser-data")
        #expect(imds.get("/1.0/meta-data/instance-id").bodyText == "i-0abc1234def567890")
    }

    @Test func versionListing() async throws {
        let body = try makeIMDS().get("/").bodyText
        #expect(body.hasPrefix("1.0\n2007-01-19\n"))
        #expect(body.hasSuffix("2024-04-11\nlatest"))
    }

    @Test func derivations() async {
        #expect(Derive.availabilityZoneID(availabilityZone: "us-east-1d", region: "us-east-1") == "use1-az4")
        #expect(Derive.availabilityZoneID(availabilityZone: "eu-west-2a", region: "eu-west-2") == "euw2-az1")
        #expect(Derive.availabilityZoneID(availabilityZone: "ap-southeast-2b", region: "ap-southeast-2") == "apse2-az2")
        #expect(Derive.partition(region: "cn-north-1") == "aws-cn")
        #expect(Derive.partition(region: "us-gov-west-1") == "aws-us-gov")
        #expect(Derive.cidr("10.1.2.194", prefix: 24) == "10.1.2.0/24")
    }

    @Test func usEast1Hostnames() async throws {
        let imds = try makeIMDS("instance:\n  availability-zone: us-east-1a\n")
        #expect(imds.get("/latest/meta-data/hostname").bodyText == "ip-10-0-1-23.ec2.internal")
        #expect(imds.get("/latest/meta-data/public-hostname").bodyText == "ec2-203-0-113-10.compute-1.amazonaws.com")
    }
}

@Suite("Credential rotation")
struct RotationTests {
    static let settings = [
        CredentialSettings(),
        CredentialSettings(lifetime: 600, rotateBeforeExpiry: 300),
        CredentialSettings(lifetime: 900, rotateBeforeExpiry: 450, distinctV1Credentials: false),
    ]

    /// Never a gap, never a credential within five minutes of expiry, Expiration always in the
    /// future, the same values within a period and new ones (with a new LastUpdated) after it.
    @Test(arguments: settings)
    func invariants(settings: CredentialSettings) async {
        let issuer = CredentialIssuer(secret: .init(size: .bits256))
        var t = Date(timeIntervalSince1970: 1_800_000_000)
        var previous: RoleCredentials?
        var rotations = 0
        for _ in 0..<3000 {
            let c = issuer.credentials(instanceID: "i-0abc1234def567890", role: "r", delivery: .v2, settings: settings, now: t)
            #expect(c.expiration.timeIntervalSince(t) >= TimeInterval(settings.rotateBeforeExpiry))
            #expect(c.expiration.timeIntervalSince(t) >= 300)
            #expect(c.lastUpdated <= t)
            #expect(c.accessKeyID.count == 20 && c.accessKeyID.hasPrefix("ASIA"))
            if let p = previous {
                if p.lastUpdated == c.lastUpdated {
                    #expect(p == c)
                } else {
                    rotations += 1
                    #expect(c.lastUpdated > p.lastUpdated)
                    #expect(c.accessKeyID != p.accessKeyID)
                    // The new set appeared before the old one expired.
                    #expect(c.lastUpdated < p.expiration)
                    #expect(p.expiration.timeIntervalSince(c.lastUpdated) >= 300)
                }
            }
            previous = c
            t = t.addingTimeInterval(TimeInterval(Int.random(in: 1...Swift.max(2, settings.rotationPeriod / 7))))
        }
        #expect(rotations > 10)
    }

    @Test func v1AndV2Deliveries() async {
        let issuer = CredentialIssuer(secret: .init(size: .bits256))
        let now = Date()
        let v1 = issuer.credentials(instanceID: "i-0abc1234def567890", role: "r", delivery: .v1, settings: .init(), now: now)
        let v2 = issuer.credentials(instanceID: "i-0abc1234def567890", role: "r", delivery: .v2, settings: .init(), now: now)
        #expect(v1.accessKeyID != v2.accessKeyID)
        let same = CredentialSettings(distinctV1Credentials: false)
        #expect(issuer.credentials(instanceID: "i-0abc1234def567890", role: "r", delivery: .v1, settings: same, now: now)
            == issuer.credentials(instanceID: "i-0abc1234def567890", role: "r", delivery: .v2, settings: same, now: now))
    }

    @Test func fixedCredentials() async throws {
        let imds = try makeIMDS("""
            instance:
              iam:
                role: app-role
                credentials:
                  source: fixed
                  access-key-id: ASIAFIXEDEXAMPLE0001
                  secret-access-key: fixedsecretfixedsecret
                  token: fixed-token
            """)
        let body = imds.get("/latest/meta-data/iam/security-credentials/app-role").bodyText
        #expect(body.contains("\"AccessKeyId\" : \"ASIAFIXEDEXAMPLE0001\""))
        #expect(body.contains("\"Token\" : \"fixed-token\""))
    }
}
