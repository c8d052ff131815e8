import Crypto
import Foundation
import FuzzSupport
import IMDSCore

// libFuzzer harness: random bytes → IMDSConfig.parse, as YAML and as JSON. Parsing must fail with
// a ConfigError or succeed; a config that parses must give an engine that answers its own tree
// without a 5xx.

enum Fixture {
    static let secret = Array(repeating: UInt8(2), count: 32)
    static let probes = ["/", "/latest/meta-data/", "/latest/meta-data/instance-id", "/latest/meta-data/iam/security-credentials/",
              "/latest/dynamic/instance-identity/document", "/latest/user-data", "/latest/meta-data/tags/instance/",
              "/latest/meta-data/events/maintenance/scheduled", "/latest/meta-data/spot/instance-action"]
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Data(bytes: data, count: size)
    for isJSON in [false, true] {
        let config: IMDSConfig
        do {
            config = try IMDSConfig.parse(input, isJSON: isJSON)
        } catch {
            FuzzInput.require(!error.message.isEmpty, "a ConfigError without a message")
            continue
        }
        let engine = DataPlane(engine: IMDSEngine(), store: EmbeddedInstanceStore(config: config, secret: Fixture.secret))
        for path in Fixture.probes {
            let request = IMDSRequest(method: "GET", target: path, headers: [], peer: nil, bodyLength: 0, body: [])
            FuzzInput.checkDataPlane(request, engine.respond(to: request))
        }
    }
    return 0
}
