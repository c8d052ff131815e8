import Benchmark
import Crypto
import Foundation
import IMDSCore
import IMDSObservability

// Micro-benchmarks of the transport-free core (docs/benchmarks.md). Instructions and malloc counts
// are the metrics with thresholds: wall-clock time on 2 shared cores is noise. A manual clock keeps
// every iteration's work identical (same dates, same credentials window). Names have no spaces or
// slashes: the plugin writes threshold files with those replaced by `_` but reads them back with the
// name as it is (ordo-one/benchmark 1.38.1), so a name with a space never finds its thresholds.

enum Fixture {
    static let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
    /// The engine over an in-memory store, as listeners run it (one snapshot read per request).
    static let engine = DataPlane(
        engine: IMDSEngine(clock: clock),
        store: EmbeddedInstanceStore(config: .embeddedDefault, clock: clock, secret: Array(repeating: UInt8(9), count: 32)))
    static let authority = TokenAuthority(secret: SymmetricKey(data: Array(repeating: UInt8(9), count: 32)))
    static let instanceID = engine.store.snapshot.primaryInstanceID
    static let token = authority.issue(instanceID: instanceID, ttl: 21600, now: clock.now(), nonce: 7)
    static let engineToken = engine.respond(to: request("PUT", "/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "21600")])).bodyText

    static func request(_ method: String, _ target: String, _ headers: [(String, String)] = []) -> IMDSRequest {
        IMDSRequest(method: method, target: target, headers: headers.map { ($0.0, $0.1) },
                    peer: PeerAddress(ip: "127.0.0.1", port: 40000), bodyLength: 0, body: [])
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.instructions, .mallocCountTotal, .wallClock, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1000,
        thresholds: [
            .instructions: BenchmarkThresholds(relative: [.p90: 5.0]),
            .mallocCountTotal: BenchmarkThresholds(relative: [.p90: 5.0], absolute: [.p90: 2]),
        ])

    let now = Fixture.clock.now()

    Benchmark("Token_issue") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Fixture.authority.issue(instanceID: Fixture.instanceID, ttl: 21600, now: now, nonce: 7))
        }
    }

    Benchmark("Token_validate") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Fixture.authority.validate(Fixture.token, instanceID: Fixture.instanceID, now: now))
        }
    }

    Benchmark("Credentials_JSON_render") { benchmark in
        let fields: [(String, JSONValue)] = [
            ("Code", .string("Success")), ("LastUpdated", .string(TimeFormat.iso8601(now))), ("Type", .string("AWS-HMAC")),
            ("AccessKeyId", .string("ASIAEXAMPLEEXAMPLE01")), ("SecretAccessKey", .string(String(repeating: "s", count: 40))),
            ("Token", .string(String(repeating: "t", count: 300))), ("Expiration", .string(TimeFormat.iso8601(now.addingTimeInterval(21600)))),
        ]
        for _ in benchmark.scaledIterations {
            blackHole(EC2JSON.pretty(fields))
        }
    }

    Benchmark("HTTP_date") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(TimeFormat.http(now))
        }
    }

    // Whole requests through the engine: parsing the target, authentication, tree lookup, rendering.
    let cases: [(String, IMDSRequest)] = [
        ("Respond_v1_GET_leaf", Fixture.request("GET", "/latest/meta-data/instance-id")),
        ("Respond_v2_GET_leaf", Fixture.request("GET", "/latest/meta-data/instance-id", [("X-aws-ec2-metadata-token", Fixture.engineToken)])),
        ("Respond_token_PUT", Fixture.request("PUT", "/latest/api/token", [("X-aws-ec2-metadata-token-ttl-seconds", "21600")])),
        ("Respond_listing_meta-data_", Fixture.request("GET", "/latest/meta-data/")),
        ("Respond_deep_path_lookup", Fixture.request("GET", "/latest/meta-data/network/interfaces/macs/")),
        ("Respond_credentials_JSON", Fixture.request("GET", "/latest/meta-data/iam/security-credentials/app-role", [("X-aws-ec2-metadata-token", Fixture.engineToken)])),
        ("Respond_404", Fixture.request("GET", "/latest/meta-data/no-such-thing")),
    ]
    for (name, request) in cases {
        Benchmark(name) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(Fixture.engine.respond(to: request))
            }
        }
    }

    Benchmark("Respond_v1_GET_leaf_+_serialize") { benchmark in
        let request = Fixture.request("GET", "/latest/meta-data/instance-id")
        for _ in benchmark.scaledIterations {
            blackHole(Fixture.engine.respond(to: request).serialized())
        }
    }

    // The lean loop's whole per-request path without the socket: the bytes an SDK sends, parsed
    // (HTTPRequestParser), answered by the engine and serialized to the bytes written.
    let sdkRequest = Array(("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        + "User-Agent: aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22 md/GOOS#linux md/GOARCH#amd64\r\n"
        + "X-aws-ec2-metadata-token: \(Fixture.engineToken)\r\nAccept-Encoding: gzip\r\n\r\n").utf8)
    Benchmark("Parse_v2_GET") { benchmark in
        for _ in benchmark.scaledIterations {
            var parser = HTTPRequestParser(maxBody: 1024)
            blackHole(sdkRequest.withUnsafeBytes { parser.feed($0) })
            blackHole(parser)
        }
    }

    Benchmark("Parse_respond_serialize_v2_GET") { benchmark in
        let peer = PeerAddress(ip: "127.0.0.1", port: 40000)
        for _ in benchmark.scaledIterations {
            var parser = HTTPRequestParser(maxBody: 1024)
            _ = sdkRequest.withUnsafeBytes { parser.feed($0) }
            let head = parser.head
            let request = IMDSRequest(method: head.method, target: head.target, headers: head.headers, peer: peer, bodyLength: parser.bodyLength)
            blackHole(Fixture.engine.respond(to: request).serialized())
        }
    }

    // What the data plane reports after each response (metrics, caller table, traffic window; no
    // access-log file, no attribution), and the access log's path redaction on its own.
    Benchmark("Observe_v2_GET") { benchmark in
        let observability = Observability(now: { Date(timeIntervalSince1970: 1_800_000_000) })
        let request = Fixture.request("GET", "/latest/meta-data/instance-id", [("X-aws-ec2-metadata-token", Fixture.engineToken)])
        let response = Fixture.engine.respond(to: request)
        for _ in benchmark.scaledIterations {
            observability.requestCompleted(request, response, seconds: 0.0001, connection: nil)
        }
    }

    Benchmark("Redact_request_path") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(Redaction.redact("/latest/meta-data/iam/security-credentials/app-role", known: [Fixture.engineToken]))
        }
    }
}
