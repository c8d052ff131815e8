/// A small strict HTTP/1.1 request parser for the lean data-plane loop (`LeanDataListener` in
/// IMDSServer). It lives in the transport-free core so that fuzzers and micro-benchmarks reach it.
///
/// It answers as the NIO path (`HTTPRequestDecoder`, llhttp, behind ``RequestDeadlineHandler``)
/// does for everything the tests, fuzzers and real clients send: up to two empty lines before the
/// request line (CRLF line ends only), the request line must end in ` HTTP/1.0` or ` HTTP/1.1` (checked as soon as it is
/// complete), a known method, header names as tokens, `Content-Length` (one, digits, checked for
/// overflow) or `Transfer-Encoding: chunked`, never both. The head is bounded (``maxHeadBytes``:
/// 431 past it) and every byte is looked at once: bytes are fed as they arrive and only a line
/// split across reads is copied. Bytes after the first request are ignored.
package struct HTTPRequestParser {
    /// Largest request head (request line and headers) before a 431, as SwiftNIO's 80 KiB.
    package static let maxHeadBytes = 80 * 1024

    package enum Outcome: Equatable, Sendable {
        /// The request is not complete yet.
        case needMore
        /// The whole request (head and body) has arrived; read ``head`` and ``bodyLength``.
        case complete
        /// A malformed request: answer this status (400, 413 or 431) and close.
        case error(Int)
    }

    package struct Head {
        package var method = ""
        package var target = ""
        package var headers: [(name: String, value: String)] = []
    }

    private enum Phase {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case done
    }

    package private(set) var head = Head()
    package private(set) var bodyLength = 0
    /// Bytes that followed the request in the read that completed it (a pipelined request): 0 when
    /// the client sent exactly one request so far.
    package private(set) var excess = 0
    private let maxBody: Int
    private var phase = Phase.head
    /// The part of a line not terminated yet (only when a line is split across reads).
    private var pending: [UInt8] = []
    private var headBytes = 0
    private var emptyLines = 0
    private var sawRequestLine = false
    private var contentLength: Int?
    private var chunked = false
    private var sawTransferEncoding = false
    /// The request line was checked (``RequestDeadlineHandler``'s rule) and found valid.
    package private(set) var requestLineChecked = false
    private var result = Outcome.needMore

    package init(maxBody: Int) { self.maxBody = maxBody }

    /// Feeds the next bytes read from the connection.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard case .needMore = result else { return result }
        var i = 0
        let n = bytes.count
        while i < n {
            switch phase {
            case .done:
                return result
            case .body(let remaining):
                let take = min(remaining, n - i)
                i += take
                if let e = countBody(take) { return finish(e) }
                if remaining - take == 0 {
                    excess = n - i
                    phase = .done
                    return finish(.complete)
                }
                phase = .body(remaining: remaining - take)
            case .chunkData(let remaining):
                let take = min(remaining, n - i)
                i += take
                if let e = countBody(take) { return finish(e) }
                phase = remaining - take == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - take)
            case .head, .chunkSize, .chunkDataEnd, .trailers:
                // Line-oriented phases: find the end of the line in what has arrived.
                let rest = UnsafeRawBufferPointer(rebasing: bytes[i...])
                let lf = rest.firstIndex(of: 0x0A)
                let end = lf ?? rest.count
                if case .head = phase {
                    headBytes += lf == nil ? end : end + 1
                    if headBytes > Self.maxHeadBytes { return finish(.error(431)) }
                } else if pending.count + end > Self.maxHeadBytes {
                    return finish(.error(431))
                }
                guard let lf else {
                    pending.append(contentsOf: rest)
                    return result
                }
                let outcome: Outcome?
                if pending.isEmpty {
                    outcome = line(UnsafeRawBufferPointer(rebasing: rest[..<lf]))
                } else {
                    pending.append(contentsOf: rest[..<lf])
                    let joined = pending
                    pending.removeAll(keepingCapacity: true)
                    outcome = joined.withUnsafeBytes { line($0) }
                }
                i += lf + 1
                if let outcome {
                    if outcome == .complete { excess = n - i }
                    return finish(outcome)
                }
            }
        }
        if case .done = phase { return finish(.complete) }
        return result
    }

    private mutating func finish(_ outcome: Outcome) -> Outcome {
        result = outcome
        if case .needMore = outcome {} else { phase = .done }
        return outcome
    }

    private mutating func countBody(_ count: Int) -> Outcome? {
        bodyLength += count
        return bodyLength > maxBody ? .error(413) : nil
    }

    /// One line without its LF; nil to carry on, or the outcome.
    private mutating func line(_ raw: UnsafeRawBufferPointer) -> Outcome? {
        // Lines end in CRLF (llhttp, as NIO runs it, refuses a bare LF, and a bare CR inside a line).
        if case .head = phase, !sawRequestLine, raw.isEmpty, emptyLines < 2 {
            emptyLines += 1  // a bare LF before the request line is skipped too
            return nil
        }
        guard let last = raw.last, last == 0x0D else {
            // A versionless request line still gets the deadline handler's 400, like any other.
            return .error(400)
        }
        let bytes = UnsafeRawBufferPointer(rebasing: raw[..<(raw.count - 1)])
        if bytes.contains(0x0D) { return .error(400) }
        switch phase {
        case .head:
            if !sawRequestLine {
                if bytes.isEmpty && emptyLines < 2 {
                    emptyLines += 1
                    return nil
                }
                sawRequestLine = true
                return requestLine(bytes) ? nil : .error(400)
            }
            if bytes.isEmpty { return endOfHead() }
            return headerLine(bytes) ? nil : .error(400)
        case .chunkSize:
            guard let size = Self.chunkSize(bytes) else { return .error(400) }
            phase = size == 0 ? .trailers : .chunkData(remaining: size)
            return nil
        case .chunkDataEnd:
            guard bytes.isEmpty else { return .error(400) }
            phase = .chunkSize
            return nil
        case .trailers:
            if bytes.isEmpty {
                phase = .done
                return .complete
            }
            return Self.headerParts(bytes) != nil ? nil : .error(400)
        case .body, .chunkData, .done:
            return nil
        }
    }

    /// `METHOD SP target SP HTTP/1.x`.
    private mutating func requestLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // The version first: the deadline handler's rule (ends in ` HTTP/d.d`), then llhttp's.
        let n = bytes.count
        guard n >= 9 + 2, bytes[n - 9] == 0x20, bytes[n - 8] == 0x48, bytes[n - 7] == 0x54, bytes[n - 6] == 0x54,
              bytes[n - 5] == 0x50, bytes[n - 4] == 0x2F, bytes[n - 2] == 0x2E,
              (48...57).contains(bytes[n - 3]), (48...57).contains(bytes[n - 1])
        else { return false }
        requestLineChecked = true
        guard bytes[n - 3] == 0x31, bytes[n - 1] == 0x30 || bytes[n - 1] == 0x31 else { return false }
        guard let sp = bytes.firstIndex(of: 0x20), sp > 0 else { return false }
        let method = UnsafeRawBufferPointer(rebasing: bytes[..<sp])
        guard Self.knownMethods.contains(where: { $0.elementsEqual(method) }) else { return false }
        // `GET HTTP/1.1`: the space before the version is the first one, and there is no target.
        guard sp < n - 9 else { return false }
        var start = sp + 1
        while start < n - 9, bytes[start] == 0x20 { start += 1 }  // llhttp takes several spaces here
        var end = n - 9
        while end > start, bytes[end - 1] == 0x20 { end -= 1 }  // and here
        let target = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return false }
        head.method = String(decoding: method, as: UTF8.self)
        head.target = String(decoding: target, as: UTF8.self)
        head.headers.reserveCapacity(8)  // SDKs send 3 to 6: one allocation, not several
        return true
    }

    private mutating func headerLine(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let (name, value) = Self.headerParts(bytes) else { return false }
        let nameText = String(decoding: name, as: UTF8.self)
        let valueText = String(decoding: value, as: UTF8.self)
        if Self.equalsIgnoringCase(name, "content-length") {
            guard contentLength == nil, let length = Self.decimal(value) else { return false }
            contentLength = length
        } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
            sawTransferEncoding = true
            // The last coding decides (llhttp): chunked, or for a request an error.
            let last = valueText.split(separator: ",").last.map { String($0.trimmingASCIISpaces()) } ?? ""
            chunked = Array(last.utf8).withUnsafeBytes { Self.equalsIgnoringCase($0, "chunked") }
        }
        head.headers.append((nameText, valueText))
        return true
    }

    private mutating func endOfHead() -> Outcome? {
        if sawTransferEncoding {
            guard chunked, contentLength == nil else { return .error(400) }
            phase = .chunkSize
            return nil
        }
        if let length = contentLength, length > 0 {
            phase = .body(remaining: length)
            return nil
        }
        phase = .done
        return .complete
    }

    /// `name ":" OWS value OWS`, with the name a token and the value free of control bytes.
    static func headerParts(_ bytes: UnsafeRawBufferPointer) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer)? {
        guard let colon = bytes.firstIndex(of: 0x3A), colon > 0 else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: bytes[..<colon])
        guard name.allSatisfy(isTokenByte) else { return nil }
        var start = colon + 1
        var end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        return (name, value)
    }

    /// A non-negative decimal with no sign or spaces, nil on overflow.
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty else { return nil }
        var value = 0
        for b in bytes {
            guard (48...57).contains(b) else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(b - 48))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    /// A chunk-size line: hex digits, then optionally `;extensions`; nil when malformed or too large.
    static func chunkSize(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var value = 0
        var digits = 0
        for b in bytes {
            let d: Int
            switch b {
            case 48...57: d = Int(b - 48)
            case 65...70: d = Int(b - 55)
            case 97...102: d = Int(b - 87)
            case 0x3B, 0x20, 0x09:
                return digits > 0 ? value : nil
            default: return nil
            }
            let (times16, o1) = value.multipliedReportingOverflow(by: 16)
            let (sum, o2) = times16.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            value = sum
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// ASCII case-insensitive comparison with a lower-case name.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
        guard bytes.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<bytes.count {
            let b = bytes[i]
            if ((b >= 65 && b <= 90) ? b | 0x20 : b) != l[i] { return false }
        }
        return true
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// The methods llhttp knows in HTTP mode (others are a 400 there too).
    static let knownMethods: [[UInt8]] = [
        "GET", "PUT", "HEAD", "POST", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "COPY", "LOCK", "MKCOL",
        "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT",
        "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PURGE",
        "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY",
    ].map { Array($0.utf8) }
}

extension Substring {
    fileprivate func trimmingASCIISpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
