import Foundation
import IMDSCore
import IMDSTesting
import Testing

/// `forwarding-proxy:`: a trusted proxy names the instance in a signed `X-Instance-ID` (Nova's
/// metadata proxy); nobody else can.
@Suite("Signed forwarding-proxy resolver")
struct ProxyResolverTests {
    static let yaml = """
        instances:
          - {instance-id: i-0aaaaaaaaaaaaaaa1, local-ipv4: 10.0.1.31, caller-addresses: [127.0.0.2], user-data: "a"}
          - {instance-id: i-0bbbbbbbbbbbbbbb2, local-ipv4: 10.0.1.32, caller-addresses: [127.0.0.3], user-data: "b"}
        forwarding-proxy: {addresses: [127.0.0.9, "::ffff:127.0.0.10"], shared-secret: 0123456789abcdef-proxy}
        """

    static func imds() throws -> (TestIMDS, SignedProxyResolver) {
        let config = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
        let settings = try #require(config.forwardingProxy)
        let resolver = SignedProxyResolver(settings)
        let store = EmbeddedInstanceStore(config: config, signer: TestIMDS.identity)
        return (TestIMDS(store: store, engine: IMDSEngine(resolver: resolver)), resolver)
    }

    @Test func theProxyNamesTheInstanceItSigns() throws {
        let (imds, resolver) = try Self.imds()
        let b = "i-0bbbbbbbbbbbbbbb2"
        func viaProxy(_ id: String, _ signature: String, from: String = "127.0.0.9") -> IMDSResponse {
            imds.request("GET", "/latest/user-data", headers: [("X-Instance-ID", id), ("X-Instance-ID-Signature", signature)], from: from)
        }
        #expect(viaProxy(b, resolver.sign(b)).bodyText == "b")
        #expect(viaProxy(b, resolver.sign(b).uppercased()).bodyText == "b", "hex in either case")
        #expect(viaProxy(b, resolver.sign(b), from: "127.0.0.10").bodyText == "b", "the second proxy, configured IPv4-mapped")
        #expect(viaProxy("i-0aaaaaaaaaaaaaaa1", resolver.sign("i-0aaaaaaaaaaaaaaa1")).bodyText == "a")
        // A token the proxy fetched for B is B's: refused when the proxy names A with it.
        let token = imds.request("PUT", "/latest/api/token", headers: [("X-Instance-ID", b), ("X-Instance-ID-Signature", resolver.sign(b)),
                                                                      (IMDSHeader.tokenTTLRequest, "60")], from: "127.0.0.9").bodyText
        let a = "i-0aaaaaaaaaaaaaaa1"
        #expect(imds.request("GET", "/latest/meta-data/instance-id", headers: [("X-Instance-ID", a), ("X-Instance-ID-Signature", resolver.sign(a)),
                                                                              (IMDSHeader.token, token)], from: "127.0.0.9").status == 401)
    }

    @Test func aBadOrMissingSignatureIsAnUnknownCaller() throws {
        let (imds, resolver) = try Self.imds()
        let b = "i-0bbbbbbbbbbbbbbb2"
        let cases: [[(String, String)]] = [
            [("X-Instance-ID", b), ("X-Instance-ID-Signature", resolver.sign("i-0aaaaaaaaaaaaaaa1"))],
            [("X-Instance-ID", b), ("X-Instance-ID-Signature", String(resolver.sign(b).dropLast()))],
            [("X-Instance-ID", b)],
            [("X-Instance-ID-Signature", resolver.sign(b))],
            [],
            [("X-Instance-ID", "i-0000000000000dead"), ("X-Instance-ID-Signature", resolver.sign("i-0000000000000dead"))],
        ]
        for headers in cases {
            let r = imds.request("GET", "/latest/user-data", headers: headers, from: "127.0.0.9")
            #expect(r.status == 404 && r.outcome.unknownCaller, "\(headers.map(\.0))")
        }
        let other = SignedProxyResolver(ForwardingProxySettings(addresses: ["127.0.0.9"], sharedSecret: "another-secret-of-16"))
        #expect(imds.request("GET", "/latest/user-data", headers: [("X-Instance-ID", b), ("X-Instance-ID-Signature", other.sign(b))],
                             from: "127.0.0.9").status == 404, "signed with another secret")
    }

    @Test func nobodyButTheProxyCanNameAnInstance() throws {
        let (imds, resolver) = try Self.imds()
        let b = "i-0bbbbbbbbbbbbbbb2"
        let signed = [("X-Instance-ID", b), ("X-Instance-ID-Signature", resolver.sign(b))]
        // A's caller sending B's correctly signed headers is still A; an unknown address stays unknown.
        #expect(imds.request("GET", "/latest/user-data", headers: signed, from: "127.0.0.2").bodyText == "a")
        #expect(imds.request("GET", "/latest/user-data", headers: signed, from: "127.0.0.7").status == 404)
    }

    @Test(arguments: [
        ("forwarding-proxy: {shared-secret: 0123456789abcdef}", "forwarding-proxy.addresses"),
        ("forwarding-proxy: {addresses: [not-an-ip], shared-secret: 0123456789abcdef}", "forwarding-proxy.addresses"),
        ("forwarding-proxy: {addresses: [10.0.0.5]}", "forwarding-proxy.shared-secret"),
        ("forwarding-proxy: {addresses: [10.0.0.5], shared-secret: short}", "at least 16 bytes"),
        ("forwarding-proxy: {addresses: [10.0.0.5], shared-secret: 0123456789abcdef, header: X}", "header"),
    ])
    func badSettingsAreClearErrors(yaml: String, names: String) {
        #expect(!ThrottleTests.configError(yaml, names: names).contains("0123456789abcdef"), "the secret is never shown")
    }

    @Test func theSecretIsRedacted() throws {
        let config = try IMDSConfig.parse(Data(Self.yaml.utf8), isJSON: false)
        #expect(config.secrets.contains("0123456789abcdef-proxy"))
    }
}
