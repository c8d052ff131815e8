import Crypto
import Foundation
import FuzzSupport
import IMDSCore

// libFuzzer harness: random method, target and headers → IMDSEngine.respond. It must not crash,
// must not answer 5xx (no fault is configured), and must keep its responses well formed.
// The first byte picks one of three engines: the default instance, `http-tokens: required`, and
// the default instance with a spot interruption and a rebalance recommendation scheduled.

/// Statics, not globals: main.swift globals are initialised by top-level code, which libFuzzer's
/// own main never runs.
enum Fixture {
    static let engines: [DataPlane] = {
        let secret = Array(repeating: UInt8(1), count: 32)
        func plane(_ config: IMDSConfig) -> DataPlane {
            DataPlane(engine: IMDSEngine(), store: EmbeddedInstanceStore(config: config, secret: secret))
        }
        let plain = plane(.embeddedDefault)
        let required = plane(try! IMDSConfig.parse(Data("instance:\n  metadata-options:\n    http-tokens: required\n".utf8), isJSON: false))
        var withEvents = IMDSConfig.embeddedDefault
        for type in ["spot-interruption", "rebalance-recommendation"] {
            withEvents.instance.eventTimeline.append(try! EventSpec.decode(json: Data("{\"type\":\"\(type)\"}".utf8)))
        }
        return [plain, required, plane(withEvents)]
    }()

    /// A token valid on every engine (same secret, same instance id), substituted for `$TOKEN`.
    static let token = engines[0].respond(to: IMDSRequest(
        method: "PUT", target: "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
        peer: nil, bodyLength: 0, body: [])).bodyText
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngine(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let engine = Fixture.engines[Int(first) % Fixture.engines.count]
    var request = FuzzInput.request(Array(bytes.dropFirst()))
    request.headers = request.headers.map { ($0.name, $0.value.replacingOccurrences(of: "$TOKEN", with: Fixture.token)) }
    let response = engine.respond(to: request)
    FuzzInput.checkDataPlane(request, response)
    return 0
}
