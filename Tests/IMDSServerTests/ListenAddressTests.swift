import IMDSServer
import Testing

/// The keyless control plane may only bind loopback: decided on the numeric address that is bound,
/// never on how the name looks (issue 16.7).
@Suite("Listen addresses")
struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1", true), ("127.255.0.9", true), ("::1", true), ("0:0:0:0:0:0:0:1", true), ("::ffff:127.0.0.1", true),
        ("0.0.0.0", false), ("10.0.0.1", false), ("::", false), ("::2", false), ("::ffff:10.0.0.1", false), ("fe80::1%lo", false),
        ("128.0.0.1", false), ("1.127.0.0", false),
        // Names are never loopback by themselves, however they look.
        ("localhost", false), ("127.example.com", false), ("127.0.0.1.nip.io", false), ("::1.evil", false), ("", false),
    ])
    func loopbackIsNumeric(host: String, loopback: Bool) {
        #expect(ListenAddress(host: host, port: 1339).isLoopback == loopback)
    }

    @Test func namesResolveToTheAddressBound() throws {
        let local = try ListenAddress(host: "localhost", port: 0).resolved()
        #expect(local.isLoopback, "\(local)")
        #expect(local.host == "127.0.0.1" || local.host == "::1")
        #expect(try ListenAddress(host: "127.0.0.1", port: 1339).resolved() == ListenAddress(host: "127.0.0.1", port: 1339))
        #expect(try ListenAddress(host: "::1", port: 0).resolved() == ListenAddress(host: "::1", port: 0))
        #expect(try ListenAddress(host: "0.0.0.0", port: 0).resolved().isLoopback == false)
        #expect(throws: ListenAddress.ResolutionError.self) { try ListenAddress(host: "127.nowhere.invalid", port: 0).resolved() }
    }
}
