import AWSQuery
import Foundation
import FuzzSupport
import IMDSControlPlane
import IMDSCore

// libFuzzer harness for the SigV4 verifier (issue 16.1). The input is a request (FuzzInput.request:
// `METHOD TARGET`, header lines, blank line, body). Invariants:
// - the request as fuzzed is refused (the fuzzer does not know the key) with a 4xx EC2 error;
// - the same method, target, headers and body signed with the key verifies;
// - that signature never verifies another body, with or without an X-Amz-Content-Sha256 header
//   naming the signed body's hash, nor with UNSIGNED-PAYLOAD.

enum Fixture {
    static let key = ControlPlaneAccessKey(accessKeyID: "AKIDFUZZ", secretAccessKey: "fuzz-secret-0123456789")
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
}

func outcome(_ request: IMDSRequest) -> Result<ControlPlaneAccessKey, EC2Error> {
    SigV4.verify(request, keys: [Fixture.key], now: Fixture.now)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSigV4(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let fuzzed = FuzzInput.request(Array(UnsafeBufferPointer(start: data, count: size)))
    let context = "\(fuzzed.method) \(fuzzed.target.debugDescription) headers \(fuzzed.headers.count) body \(fuzzed.body.count)"
    switch outcome(fuzzed) {
    case .success: FuzzInput.require(false, "an unsigned fuzzed request verified: \(context)")
    case .failure(let e): FuzzInput.require((400..<500).contains(e.status), "refusal status \(e.status): \(context)")
    }

    // Sign what was fuzzed: header names that are tokens (SignedHeaders cannot carry others), without
    // the signature's own headers, plus Host.
    var headers = fuzzed.headers.filter { h in
        !h.name.isEmpty && h.name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
            && !["authorization", "x-amz-date", "x-amz-content-sha256"].contains(h.name.lowercased())
    }
    if !headers.contains(where: { $0.name.lowercased() == "host" }) { headers.append(("Host", "127.0.0.1:1339")) }
    let hash = SigV4.payloadHash(fuzzed.body)
    guard SigV4.canonicalRequest(method: fuzzed.method, target: fuzzed.target, headers: headers,
                                 signedHeaders: ["host"], payloadHash: hash) != nil
    else { return 0 }  // a target no client could sign (malformed percent-encoding)
    let signature = SigV4.sign(method: fuzzed.method, target: fuzzed.target, headers: headers, body: fuzzed.body,
                               accessKeyID: Fixture.key.accessKeyID, secretAccessKey: Fixture.key.secretAccessKey,
                               region: "us-east-1", date: Fixture.now)
    func request(headers extra: [(name: String, value: String)] = [], body: [UInt8]) -> IMDSRequest {
        IMDSRequest(method: fuzzed.method, target: fuzzed.target, headers: headers + signature + extra,
                    peer: fuzzed.peer, bodyLength: body.count, body: body)
    }
    if case .failure(let e) = outcome(request(body: fuzzed.body)) {
        FuzzInput.require(false, "a correctly signed request was refused (\(e.code)): \(context)")
    }
    FuzzInput.require((try? outcome(request(headers: [("X-Amz-Content-Sha256", hash)], body: fuzzed.body)).get()) != nil,
                      "a matching X-Amz-Content-Sha256 was refused: \(context)")
    var other = fuzzed.body
    if other.isEmpty { other = [0x41] } else { other[other.count / 2] ^= 0x01 }
    for extra in [[], [("X-Amz-Content-Sha256", hash)], [("X-Amz-Content-Sha256", hash.uppercased())],
                  [("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")], [("X-Amz-Content-Sha256", SigV4.payloadHash(other))]] as [[(name: String, value: String)]] {
        FuzzInput.require((try? outcome(request(headers: extra, body: other)).get()) == nil,
                          "a signature verified another body (\(extra.first?.value ?? "no header")): \(context)")
    }
    FuzzInput.require((try? outcome(request(headers: [("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")], body: fuzzed.body)).get()) == nil,
                      "UNSIGNED-PAYLOAD verified: \(context)")
    return 0
}
