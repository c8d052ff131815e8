import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

@Suite("Launch precedence and config")
struct LaunchAndConfigTests {
    static func instance(explicit: PartialMetadataOptions = .init(), ami: Bool = false) -> Instance {
        var i = IMDSConfig.embeddedDefault.instance
        i.metadataOptions = explicit
        i.amiIMDSSupport = ami ? "v2.0" : nil
        return i
    }

    /// explicit config options > AMI `ImdsSupport=v2.0` (required, hop 2) > account defaults > EC2 defaults.
    @Test(arguments: [
        // nothing: EC2 defaults
        (PartialMetadataOptions(), false, AccountDefaults(), MetadataOptions.HTTPTokens.optional, 1, MetadataOptions.Toggle.enabled),
        // account defaults over EC2's
        (PartialMetadataOptions(), false, AccountDefaults(httpTokens: .required, httpPutResponseHopLimit: 3, httpEndpoint: .disabled), .required, 3, .disabled),
        // AMI over EC2's
        (PartialMetadataOptions(), true, AccountDefaults(), .required, 2, .enabled),
        // AMI over the account
        (PartialMetadataOptions(), true, AccountDefaults(httpTokens: .optional, httpPutResponseHopLimit: 5, httpEndpoint: .disabled), .required, 2, .disabled),
        // explicit over the AMI
        (PartialMetadataOptions(httpTokens: .optional, httpPutResponseHopLimit: 7), true, AccountDefaults(), .optional, 7, .enabled),
        // explicit over the account
        (PartialMetadataOptions(httpEndpoint: .enabled), false, AccountDefaults(httpTokens: .required, httpEndpoint: .disabled), .required, 1, .enabled),
    ])
    func precedence(explicit: PartialMetadataOptions, ami: Bool, account: AccountDefaults,
                    tokens: MetadataOptions.HTTPTokens, hop: Int, endpoint: MetadataOptions.Toggle) {
        let o = LaunchOptions.resolve(instance: Self.instance(explicit: explicit, ami: ami), accountDefaults: account)
        #expect(o.httpTokens == tokens)
        #expect(o.httpPutResponseHopLimit == hop)
        #expect(o.httpEndpoint == endpoint)
    }

    @Test func launchPolicy() async {
        let enforced = AccountDefaults(httpTokensEnforced: .enabled)
        #expect(LaunchPolicy.violation(instance: Self.instance(), accountDefaults: enforced) != nil)
        #expect(LaunchPolicy.violation(instance: Self.instance(), accountDefaults: AccountDefaults()) == nil)
        #expect(LaunchPolicy.violation(instance: Self.instance(ami: true), accountDefaults: enforced) == nil)
        #expect(LaunchPolicy.violation(instance: Self.instance(), accountDefaults: AccountDefaults(httpTokens: .required, httpTokensEnforced: .enabled)) == nil)
    }

    @Test func accountDefaultsFromTheConfigFile() async throws {
        let c = try IMDSConfig.parse(Data("""
            account-defaults:
              http-tokens: required
              http-put-response-hop-limit: 3
              http-endpoint: no-preference
              instance-metadata-tags: enabled
              http-tokens-enforced: disabled
            """.utf8), isJSON: false)
        #expect(c.accountDefaults == AccountDefaults(httpTokens: .required, httpPutResponseHopLimit: 3, instanceMetadataTags: .enabled, httpTokensEnforced: .disabled))
        let h = Harness(config: c, accountDefaults: c.accountDefaults!)
        #expect(h.store.snapshot.instance(Harness.instanceID)?.options.httpTokens == .required)
        let x = expectOK(await h.action("GetInstanceMetadataDefaults"), "GetInstanceMetadataDefaults")
        #expect(x?.value("accountLevel/httpTokens") == "required")
        #expect(try IMDSConfig.parse(Data("account-defaults:\n  http-put-response-hop-limit: -1\n".utf8), isJSON: false).accountDefaults == AccountDefaults())
    }

    @Test func controlPlaneKeysFromTheConfigFile() async throws {
        let c = try IMDSConfig.parse(Data("""
            control-plane:
              access-keys:
                - access-key-id: AKIAIOSFODNN7EXAMPLE
                  secret-access-key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
                - access-key-id: AKIDREADER
                  secret-access-key: reader-secret
                  read-only: true
            """.utf8), isJSON: false)
        #expect(c.controlPlane.accessKeys == [
            ControlPlaneAccessKey(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ControlPlaneAccessKey(accessKeyID: "AKIDREADER", secretAccessKey: "reader-secret", readOnly: true),
        ])
        #expect(!c.controlPlane.description.contains("wJalr"))
    }

    @Test(arguments: [
        ("account-defaults:\n  http-tokens: maybe\n", "account-defaults.http-tokens"),
        ("account-defaults:\n  http-put-response-hop-limit: 65\n", "account-defaults.http-put-response-hop-limit"),
        ("account-defaults:\n  http-put-response-hop-limit: 0\n", "account-defaults.http-put-response-hop-limit"),
        ("account-defaults:\n  http-protocol-ipv6: enabled\n", "unknown key 'http-protocol-ipv6'"),
        ("control-plane:\n  access-keys: AKID\n", "control-plane.access-keys"),
        ("control-plane:\n  access-keys:\n    - access-key-id: AKID\n", "secret-access-key"),
        ("control-plane:\n  access-keys:\n    - secret-access-key: abcdefgh\n", "access-key-id"),
        ("control-plane:\n  access-keys:\n    - {access-key-id: AKID, secret-access-key: abcd, colour: red}\n", "unknown key 'colour'"),
        ("control-plane:\n  access-keys:\n    - {access-key-id: AKID, secret-access-key: abcd}\n    - {access-key-id: AKID, secret-access-key: efgh}\n", "listed twice"),
        ("control-plane:\n  keys: []\n", "unknown key 'keys'"),
    ])
    func configErrors(yaml: String, fragment: String) {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("expected an error for \(yaml)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }
}
