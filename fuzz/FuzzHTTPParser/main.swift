import IMDSCore

// libFuzzer harness: raw bytes → HTTPRequestParser (the lean data-plane loop's parser). It must not
// crash, must answer only 400, 413 or 431 when it refuses, must never count more body than it
// allows, and must reach the same outcome, head and body length whether the bytes arrive at once,
// split in two at a point the first two input bytes choose, or one byte at a time (up to 4 KiB).

func parse(_ pieces: [ArraySlice<UInt8>]) -> (HTTPRequestParser.Outcome, HTTPRequestParser) {
    var parser = HTTPRequestParser(maxBody: 1024)
    var outcome = HTTPRequestParser.Outcome.needMore
    for piece in pieces {
        outcome = Array(piece).withUnsafeBytes { parser.feed($0) }
        if outcome != .needMore { break }
    }
    return (outcome, parser)
}

func same(_ a: HTTPRequestParser, _ b: HTTPRequestParser) -> Bool {
    a.head.method == b.head.method && a.head.target == b.head.target && a.bodyLength == b.bodyLength
        && a.head.headers.count == b.head.headers.count
        && zip(a.head.headers, b.head.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    guard all.count >= 2 else { return 0 }
    let bytes = all[2...]
    let (whole, w) = parse([bytes])
    if case .error(let status) = whole, ![400, 413, 431].contains(status) { fatalError("invariant violated: status \(status)") }
    if case .complete = whole, w.bodyLength > 1024 { fatalError("invariant violated: body \(w.bodyLength) past the limit") }
    let cut = bytes.startIndex + (Int(all[0]) << 8 | Int(all[1])) % (bytes.count + 1)
    let (two, t) = parse([bytes[..<cut], bytes[cut...]])
    guard two == whole, whole != .complete || same(w, t) else {
        fatalError("invariant violated: split at \(cut - bytes.startIndex) gives \(two), whole gives \(whole)")
    }
    if bytes.count <= 4096 {
        let (single, s) = parse(bytes.indices.map { bytes[$0...$0] })
        guard single == whole, whole != .complete || same(w, s) else {
            fatalError("invariant violated: byte by byte gives \(single), whole gives \(whole)")
        }
    }
    return 0
}
