import Crypto
import Foundation
import FuzzSupport
import IMDSControlPlane
import IMDSCore

// libFuzzer harness: random form-encoded bodies (and query strings) → the EC2 Query API
// (`POST /`, Action=…&Version=2016-11-15). It must not crash, must answer XML with a status below
// 500 (no state store here, so no persistence failure can explain a 500), with a correct
// Content-Length, and the data plane must stay consistent afterwards.

enum Fixture {
    static let secret = Array(repeating: UInt8(5), count: 32)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEC2Query(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The input is the body; a leading `?line\n` becomes the query string.
    var target = "/"
    var body = bytes
    if bytes.first == UInt8(ascii: "?"), let nl = bytes.firstIndex(of: 10) {
        target = "/" + String(decoding: bytes[..<nl], as: UTF8.self)
        body = Array(bytes[(nl + 1)...])
    }
    let request = IMDSRequest(
        method: "POST", target: target,
        headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Host", "127.0.0.1:1339")],
        peer: PeerAddress(ip: "127.0.0.1", port: 40000), bodyLength: body.count, body: body)
    let store = EmbeddedInstanceStore(config: .embeddedDefault, secret: Fixture.secret)
    let engine = DataPlane(engine: IMDSEngine(random: { 0 }), store: store)
    let ec2 = EC2ControlPlane(store: store)
    let response = FuzzInput.wait { await ec2.respond(to: request) }
    let context = "\(String(decoding: body.prefix(200), as: UTF8.self).debugDescription) → \(response.status)"
    FuzzInput.require((200..<500).contains(response.status), "EC2 API status: \(context)")
    FuzzInput.require(response.bodyText.hasPrefix("<?xml"), "EC2 API body is not XML: \(context)")
    FuzzInput.require(response.header("Content-Length") == String(response.body.count), "Content-Length mismatch: \(context)")
    for path in ["/latest/meta-data/instance-id", "/latest/meta-data/tags/instance/", "/latest/api/token"] {
        let get = IMDSRequest(method: path.hasSuffix("token") ? "PUT" : "GET", target: path,
                              headers: [("X-aws-ec2-metadata-token-ttl-seconds", "60")], peer: nil, bodyLength: 0, body: [])
        FuzzInput.checkDataPlane(get, engine.respond(to: get))
    }
    return 0
}
