import Foundation
import Synchronization
import IMDSCore
import IMDSTesting
import Testing

/// Fleet mode, in the core: many instances in one store, each request answered as the instance
/// that owns the caller's source address.
@Suite("Fleet")
struct FleetTests {
    static let fleetYAML = """
        instances:
          - instance-id: i-0aaaaaaaaaaaaaaa1
            local-ipv4: 10.0.1.31
            ipv6: ["2001:db8::31"]
            caller-addresses: [127.0.0.2]
            iam: {role: role-a}
            user-data: "a"
            tags: {Name: a}
          - instance-id: i-0bbbbbbbbbbbbbbb2
            local-ipv4: 10.0.1.32
            caller-addresses: [127.0.0.3]
            iam: {role: role-b}
            user-data: "b"
            tags: {Name: b}
            metadata-options: {http-tokens: required, http-put-response-hop-limit: 2}
          - instance-id: i-0ccccccccccccccc3
            local-ipv4: 10.0.1.33
            caller-addresses: [127.0.0.4]
            iam: null
            user-data: "c"
        """

    static func fleet() throws -> TestIMDS { try TestIMDS(yaml: fleetYAML) }

    @Test func eachCallerSeesItsOwnInstance() throws {
        let imds = try Self.fleet()
        let table: [(from: String, id: String)] = [
            ("127.0.0.2", "i-0aaaaaaaaaaaaaaa1"), ("10.0.1.31", "i-0aaaaaaaaaaaaaaa1"),
            ("2001:db8::31", "i-0aaaaaaaaaaaaaaa1"), ("2001:0db8:0:0::0031", "i-0aaaaaaaaaaaaaaa1"),
            ("::ffff:127.0.0.2", "i-0aaaaaaaaaaaaaaa1"), ("::FFFF:10.0.1.31", "i-0aaaaaaaaaaaaaaa1"),
            ("127.0.0.3", "i-0bbbbbbbbbbbbbbb2"), ("10.0.1.32", "i-0bbbbbbbbbbbbbbb2"),
            ("127.0.0.4", "i-0ccccccccccccccc3"), ("10.0.1.33", "i-0ccccccccccccccc3"),
        ]
        for row in table {
            guard let token = imds.token(from: row.from) else {
                Issue.record("no token for \(row.from)")
                continue
            }
            let r = imds.request("GET", "/latest/meta-data/instance-id", headers: [(IMDSHeader.token, token)], from: row.from)
            #expect(r.status == 200, "\(row.from)")
            #expect(r.bodyText == row.id, "\(row.from)")
            #expect(r.outcome.instanceID == row.id)
        }
    }

    @Test func nothingLeaksAcrossInstances() throws {
        let imds = try Self.fleet()
        func get(_ path: String, _ from: String) -> IMDSResponse {
            let token = imds.token(from: from) ?? ""
            return imds.request("GET", path, headers: [(IMDSHeader.token, token)], from: from)
        }
        #expect(get("/latest/user-data", "127.0.0.2").bodyText == "a")
        #expect(get("/latest/user-data", "127.0.0.3").bodyText == "b")
        #expect(get("/latest/meta-data/iam/security-credentials/", "127.0.0.2").bodyText == "role-a")
        #expect(get("/latest/meta-data/iam/security-credentials/", "127.0.0.3").bodyText == "role-b")
        #expect(get("/latest/meta-data/iam/security-credentials/", "127.0.0.4").status == 404)
        #expect(get("/latest/meta-data/iam/security-credentials/role-a", "127.0.0.3").status == 404)
        let docA = get("/latest/dynamic/instance-identity/document", "127.0.0.2").bodyText
        let docB = get("/latest/dynamic/instance-identity/document", "127.0.0.3").bodyText
        #expect(docA.contains("i-0aaaaaaaaaaaaaaa1") && !docA.contains("i-0bbbbbbbbbbbbbbb2"))
        #expect(docB.contains("i-0bbbbbbbbbbbbbbb2") && docB.contains("10.0.1.32"))
        let credA = get("/latest/meta-data/iam/security-credentials/role-a", "127.0.0.2").bodyText
        let credB = get("/latest/meta-data/iam/security-credentials/role-b", "127.0.0.3").bodyText
        #expect(credA.contains("AccessKeyId") && credB.contains("AccessKeyId") && credA != credB)
    }

    @Test func optionsArePerInstance() throws {
        let imds = try Self.fleet()
        // B requires tokens: v1 refused there, served at A.
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.3").status == 401)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.2").status == 200)
        // Hop limit per instance on the token PUT.
        let put = [(IMDSHeader.tokenTTLRequest, "60")]
        #expect(imds.request("PUT", "/latest/api/token", headers: put, from: "127.0.0.3").hopLimit == 2)
        #expect(imds.request("PUT", "/latest/api/token", headers: put, from: "127.0.0.2").hopLimit == 1)
    }

    @Test func aTokenIsBoundToItsInstance() throws {
        let imds = try Self.fleet()
        let tokenA = try #require(imds.token(from: "127.0.0.2"))
        let atA = imds.request("GET", "/latest/meta-data/instance-id", headers: [(IMDSHeader.token, tokenA)], from: "127.0.0.2")
        #expect(atA.status == 200)
        for other in ["127.0.0.3", "127.0.0.4", "10.0.1.32"] {
            let r = imds.request("GET", "/latest/meta-data/instance-id", headers: [(IMDSHeader.token, tokenA)], from: other)
            #expect(r.status == 401, "A's token at \(other)")
        }
    }

    @Test func anUnknownCallerGets404OnEveryPath() throws {
        let imds = try Self.fleet()
        let notFound = imds.request("GET", "/latest/meta-data/no-such-path", from: "127.0.0.2")
        for (method, path) in [("GET", "/"), ("GET", "/latest/meta-data/instance-id"), ("PUT", "/latest/api/token"),
                               ("GET", "/latest/user-data"), ("POST", "/latest/meta-data/"), ("HEAD", "/latest/")] {
            let r = imds.request(method, path, headers: [(IMDSHeader.tokenTTLRequest, "60")], from: "127.0.0.9")
            #expect(r.status == 404, "\(method) \(path)")
            #expect(r.outcome.unknownCaller)
            #expect(r.outcome.instanceID == nil)
            if method != "HEAD" { #expect(r.body == notFound.body, "EC2's 404 page") }
        }
        // No peer at all is no instance's either.
        #expect(imds.respond(to: IMDSRequest(method: "GET", target: "/latest/meta-data/instance-id")).status == 404)
    }

    @Test func headersNeverChangeTheCaller() throws {
        let imds = try Self.fleet()
        let spoof: [(String, String)] = [
            ("X-Forwarded-For", "127.0.0.2"), ("X-Real-IP", "127.0.0.2"), ("Forwarded", "for=127.0.0.2"),
            ("X-Client-IP", "10.0.1.31"), ("True-Client-IP", "127.0.0.2"),
        ]
        let fromB = imds.request("GET", "/latest/meta-data/local-ipv4", headers: spoof, from: "127.0.0.4")
        #expect(fromB.bodyText == "10.0.1.33")
        #expect(imds.request("GET", "/latest/meta-data/instance-id", headers: spoof, from: "127.0.0.9").status == 404)
    }

    @Test func oneInstanceAnswersEveryCaller() throws {
        let imds = TestIMDS()
        for from in ["127.0.0.1", "127.0.0.9", "::1", "192.0.2.7"] {
            #expect(imds.request("GET", "/latest/meta-data/instance-id", from: from).bodyText == "i-0abc1234def567890")
        }
        // `instances:` with one entry is a single instance too.
        let one = try TestIMDS(yaml: "instances:\n  - instance-id: i-0123456789abcdef0\n")
        #expect(one.request("GET", "/latest/meta-data/instance-id", from: "198.51.100.1").bodyText == "i-0123456789abcdef0")
    }

    @Test func aTagNamesMoreCallerAddresses() async throws {
        let imds = try Self.fleet()
        let c = "i-0ccccccccccccccc3"
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.7").status == 404)
        try await imds.store.apply([.setTags(instanceID: c, [InstanceTag(key: CallerAddress.tagKey, value: "127.0.0.7, ::ffff:127.0.0.8")])])
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.7").bodyText == c)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.8").bodyText == c)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.4").bodyText == c, "config addresses stay")
        // An address another instance answers for, or no address at all, is refused; nothing changes.
        await #expect(throws: StoreError.self) {
            try await imds.store.apply([.setTags(instanceID: c, [InstanceTag(key: CallerAddress.tagKey, value: "127.0.0.2")])])
        }
        await #expect(throws: StoreError.self) {
            try await imds.store.apply([.setTags(instanceID: c, [InstanceTag(key: CallerAddress.tagKey, value: "not-an-ip")])])
        }
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.2").bodyText == "i-0aaaaaaaaaaaaaaa1")
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.7").bodyText == c)
        // Removing the tag removes the addresses at once.
        try await imds.store.apply([.setTags(instanceID: c, [])])
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.7").status == 404)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.4").bodyText == c)
    }

    /// Counts signatures (each one is an RSA operation).
    final class CountingSigner: IdentityDocumentSigner {
        let count = Mutex(0)
        func sign(document: [UInt8]) -> IdentitySignatures? {
            count.withLock { $0 += 1 }
            return IdentitySignatures(signature: "sig", rsa2048: "rsa", pkcs7: "p7")
        }
    }

    @Test func nothingIsRenderedOrSignedUntilAsked() async throws {
        let signer = CountingSigner()
        let store = EmbeddedInstanceStore(config: try IMDSConfig.parse(Data(Self.fleetYAML.utf8), isJSON: false), signer: signer)
        let imds = TestIMDS(store: store, engine: IMDSEngine())
        let (a, b, c) = ("i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3")
        func rendered() -> [String] { store.snapshot.allInstances.filter(\.isTreeRendered).map(\.instance.instanceID) }
        #expect(rendered().isEmpty, "opening renders nothing")
        #expect(signer.count.withLock { $0 } == 0, "opening signs nothing")
        #expect(imds.request("GET", "/latest/dynamic/instance-identity/signature", from: "127.0.0.2").bodyText == "sig")
        #expect(rendered() == [a], "only the instance asked is rendered")
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.2").bodyText == a)
        #expect(signer.count.withLock { $0 } == 1, "rendered once, then reused")
        // A change that is not in the tree keeps it; a tag change renders it again on the next request only.
        try await store.apply([.invalidateTokens(instanceID: a)])
        #expect(rendered() == [a])
        try await store.apply([.setTags(instanceID: a, [InstanceTag(key: "Name", value: "a2")])])
        #expect(rendered().isEmpty)
        #expect(signer.count.withLock { $0 } == 1)
        // Many first requests at once all see one tree.
        let bodies = await withTaskGroup(of: String.self) { group in
            for _ in 0..<16 {
                group.addTask { imds.request("GET", "/latest/dynamic/instance-identity/document", from: "127.0.0.4").bodyText }
            }
            return await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(bodies.count == 1 && bodies.first?.contains(c) == true)
        #expect(rendered() == [c])
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.3").status == 401)
        #expect(rendered() == [c], "a refused request renders nothing: \(b) stays idle")
    }

    @Test func modifyingOneInstanceLeavesTheOthers() async throws {
        let imds = try Self.fleet()
        let a = "i-0aaaaaaaaaaaaaaa1"
        let tokenB = try #require(imds.token(from: "127.0.0.3"))
        var o = imds.store.snapshot.instance(a)!.options
        o.httpTokens = .required
        try await imds.store.apply([.setOptions(instanceID: a, o), .invalidateTokens(instanceID: a)])
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.2").status == 401)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "127.0.0.4").status == 200)
        let b = imds.request("GET", "/latest/meta-data/instance-id", headers: [(IMDSHeader.token, tokenB)], from: "127.0.0.3")
        #expect(b.status == 200, "B's token survives A's invalidation")
    }

    @Test func configRefusesAmbiguousFleets() {
        let cases: [(yaml: String, says: String)] = [
            ("instances:\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n    local-ipv4: 10.0.0.9\n", "listed twice"),
            ("instances:\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n    local-ipv4: 10.0.0.9\n  - instance-id: i-0bbbbbbbbbbbbbbb2\n    local-ipv4: 10.0.0.9\n", "already"),
            ("instances:\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n    caller-addresses: ['::ffff:127.0.0.2']\n  - instance-id: i-0bbbbbbbbbbbbbbb2\n    local-ipv4: 10.0.0.8\n    caller-addresses: [127.0.0.2]\n", "already"),
            ("instances: []\n", "at least one"),
            ("instances: {instance-id: i-0aaaaaaaaaaaaaaa1}\n", "expected a list"),
            ("instances:\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n    caller-addresses: [localhost]\n", "IPv4 or IPv6"),
            ("instances:\n  - instance-id: i-0aaaaaaaaaaaaaaa1\n    color: red\n", "color"),
        ]
        for c in cases {
            do {
                _ = try IMDSConfig.parse(Data(c.yaml.utf8), isJSON: false)
                Issue.record("accepted: \(c.yaml)")
            } catch {
                #expect("\(error)".contains(c.says), "\(error)")
            }
        }
    }

    @Test func singleAndFleetFormsTogether() throws {
        let yaml = """
            instance: {instance-id: i-0aaaaaaaaaaaaaaa1, local-ipv4: 10.0.0.1}
            instances:
              - {instance-id: i-0bbbbbbbbbbbbbbb2, local-ipv4: 10.0.0.2}
            """
        let c = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
        #expect(c.instances.map(\.instanceID) == ["i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"])
        #expect(c.instance.instanceID == "i-0aaaaaaaaaaaaaaa1")
        let imds = TestIMDS(config: c)
        #expect(imds.store.snapshot.instanceIDs.count == 2)
        #expect(imds.request("GET", "/latest/meta-data/instance-id", from: "10.0.0.2").bodyText == "i-0bbbbbbbbbbbbbbb2")
    }

    @Test func canonicalAddresses() {
        #expect(CallerAddress.canonical("127.0.0.2") == "127.0.0.2")
        #expect(CallerAddress.canonical("::ffff:127.0.0.2") == "127.0.0.2")
        #expect(CallerAddress.canonical("2001:0DB8::0001") == "2001:db8::1")
        #expect(CallerAddress.canonical("fe80::1%eth0") == "fe80::1")
        #expect(CallerAddress.canonical("localhost") == nil)
        #expect(CallerAddress.canonical("") == nil)
        #expect(CallerAddress.canonical("1.2.3.4.5") == nil)
    }
}
