import Foundation
import IMDSAdmin
import IMDSCore
import IMDSTesting
import Testing

/// Inputs that the libFuzzer harnesses (fuzz/, scripts/test-fuzz.sh) found crashing, kept as tests.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    /// FuzzControlPlane: a query pair that is only `=` (`?=`, `?a=1&=`) indexed an empty split and
    /// crashed the control plane.
    @Test(arguments: ["/admin/v1/events?=", "/admin/v1/events?a=1&=", "/admin/v1/health?==", "/admin/v1/faults?&=&"])
    func emptyQueryPairsAreNotACrash(target: String) async {
        let imds = TestIMDS()
        let admin = AdminAPI(store: imds.store)
        let r = await admin.respond(to: IMDSRequest(method: "GET", target: target, headers: [], peer: nil, bodyLength: 0, body: []))
        #expect(r.status == 200)
    }
}
