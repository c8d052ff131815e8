@testable import IMDSCore
import Testing

/// The lean loop's parser on its own (the fuzzer's invariants as fixed cases; the differential test
/// against NIO is `LeanDataPlaneTests`). Each case: the same outcome, head and body length whether
/// the bytes arrive at once, split at every point, or one byte at a time.
@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    static func parse(_ pieces: [[UInt8]], maxBody: Int = 1024) -> (HTTPRequestParser.Outcome, HTTPRequestParser) {
        var parser = HTTPRequestParser(maxBody: maxBody)
        var outcome = HTTPRequestParser.Outcome.needMore
        for piece in pieces {
            outcome = piece.withUnsafeBytes { parser.feed($0) }
            if outcome != .needMore { break }
        }
        return (outcome, parser)
    }

    static func summary(_ r: (HTTPRequestParser.Outcome, HTTPRequestParser)) -> String {
        let p = r.1
        guard r.0 == .complete else { return "\(r.0)" }
        return "\(p.head.method) \(p.head.target) \(p.head.headers.map { "\($0.name)=\($0.value)" }) body \(p.bodyLength)"
    }

    static let cases: [(String, String)] = [
        ("PUT / HTTP/1.1\r\nContent-Len~th: 5\r\n\r\nhello", "PUT / [\"Content-Len~th=5\"] body 0"),
        ("PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "PUT / [\"Content-Length=5\"] body 5"),
        ("GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n", "GET /latest/meta-data/ [\"Host=x\"] body 0"),
        ("\r\n\r\nGET / HTTP/1.0\r\n\r\n", "GET / [] body 0"),
        ("GET / HTTP/1.1\nHost: x\n\n", "error(400)"),
        ("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "error(400)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
         "POST / [\"Transfer-Encoding=chunked\"] body 5"),
        ("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", "error(400)"),
        ("PUT / HTTP/1.1\r\nContent-Length: 2048\r\n\r\n", "error(413)"),
        ("BREW / HTTP/1.1\r\n\r\n", "error(400)"),
        ("GET / HTTP/2.0\r\n\r\n", "error(400)"),
        // Found by FuzzHTTPParser: no target trapped on an inverted range (a crash of the server).
        ("GET HTTP/1.1\r\nHost: x\r\n\r\n", "error(400)"),
        ("GET  HTTP/1.1\r\n\r\n", "error(400)"),
        ("GET   HTTP/1.0\r\n\r\n", "error(400)"),
    ]

    /// What followed the request in the read that completed it: nothing for one request however
    /// it arrives (the loop then sends the answer and the FIN in one segment), the rest of the
    /// read for a pipelined request or bytes after a body.
    @Test func excessIsWhatFollowedTheRequest() {
        let get = Array("GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(Self.parse([get]).1.excess == 0)
        #expect(Self.parse(get.map { [$0] }).1.excess == 0)
        #expect(Self.parse([Array(get[..<10]), Array(get[10...])]).1.excess == 0)
        let pipelined = Self.parse([get + get])
        #expect(pipelined.0 == .complete)
        #expect(pipelined.1.excess == get.count)
        let put = Array("PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".utf8)
        #expect(Self.parse([put]).1.excess == 0)
        #expect(Self.parse([put + Array("xyz".utf8)]).1.excess == 3)
        #expect(Self.parse([Array(put[..<20]), Array(put[20...]) + Array("GET".utf8)]).1.excess == 3)
        let chunked = Array("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET".utf8)
        #expect(Self.parse([chunked]).1.excess == 3)
    }

    @Test(arguments: cases.indices)
    func sameOutcomeHoweverTheBytesArrive(_ i: Int) {
        let (text, expected) = Self.cases[i]
        let bytes = Array(text.utf8) + (expected == "error(413)" ? Array(repeating: UInt8(120), count: 2048) : [])
        #expect(Self.summary(Self.parse([bytes])) == expected)
        for cut in 0...bytes.count {
            #expect(Self.summary(Self.parse([Array(bytes[..<cut]), Array(bytes[cut...])])) == expected, "split at \(cut)")
        }
        #expect(Self.summary(Self.parse(bytes.map { [$0] })) == expected, "byte by byte")
    }
}
