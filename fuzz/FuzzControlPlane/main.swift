import Crypto
import Foundation
import FuzzSupport
import IMDSAdmin
import IMDSCore

// libFuzzer harness: random method, target (with a query string) and JSON body → the admin API
// (/admin/v1/...). It must not crash, must answer a JSON body with a status below 500, and the
// data plane must stay consistent afterwards (5xx there only from a fault the input added).
// The EC2 Query API's form parsing has its own harness, FuzzEC2Query.

enum Fixture {
    static let secret = Array(repeating: UInt8(3), count: 32)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlPlane(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var request = FuzzInput.request(bytes)
    if !request.target.hasPrefix("/admin/v1") { request.target = "/admin/v1" + request.target }
    let store = EmbeddedInstanceStore(config: .embeddedDefault, secret: Fixture.secret)
    let engine = DataPlane(engine: IMDSEngine(random: { 0 }), store: store)
    let admin = AdminAPI(store: store)
    let req = request
    let response = FuzzInput.wait { await admin.respond(to: req) }
    let context = "\(request.method) \(request.target.debugDescription) → \(response.status)"
    FuzzInput.require((200..<500).contains(response.status), "admin API status: \(context)")
    FuzzInput.require((try? JSONSerialization.jsonObject(with: Data(response.body))) != nil, "admin API body is not JSON: \(context)")
    FuzzInput.require(response.header("Content-Length") == String(response.body.count), "Content-Length mismatch: \(context)")
    for path in ["/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/app-role",
                 "/latest/meta-data/spot/instance-action", "/latest/meta-data/events/maintenance/scheduled"] {
        let get = IMDSRequest(method: "GET", target: path, headers: [], peer: nil, bodyLength: 0, body: [])
        FuzzInput.checkDataPlane(get, engine.respond(to: get))
    }
    return 0
}
