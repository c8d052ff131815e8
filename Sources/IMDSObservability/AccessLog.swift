import Dispatch
import Foundation
import IMDSCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One access-log line (JSON), one per data-plane request. Never holds a header value, a body, a
/// token or a credential: the path loses its query string, and the caller's command line is redacted.
public struct AccessLogEntry: Codable, Sendable, Equatable {
    /// When the response was handed to the socket (ISO 8601, UTC, milliseconds).
    public var time: String
    public var instanceID: String?
    /// The client's address and port (`127.0.0.1:40312`, `[::1]:40312`).
    public var client: String?
    public var method: String
    /// The path without its query string, at most 1024 characters.
    public var path: String
    /// `v1`, `v2`, or absent (token PUTs and requests refused before the version mattered).
    public var version: String?
    /// The HTTP status; 0 when a fault hung or reset the connection (see ``action``).
    public var status: Int
    /// `hang` or `reset` when a fault kept the response from being sent.
    public var action: String?
    public var latencyMilliseconds: Double
    /// The engine's request category (`token`, `meta-data`, `user-data`, `dynamic`, …).
    public var category: String
    /// Why a token was refused (`missing`, `malformed`, `bad_signature`, `expired`).
    public var tokenRejection: String?
    public var tokenIssued: Bool?
    /// The fault applied, if any (type and id).
    public var fault: String?
    /// `process`, `unattributed`, `remote` or `skipped`.
    public var attribution: String?
    /// Why an on-host caller could not be attributed.
    public var attributionNote: String?
    /// The process that made the request, when attribution found it.
    public var caller: CallerProcess?

    enum CodingKeys: String, CodingKey {
        case time, instanceID = "instance-id", client, method, path, version, status, action
        case latencyMilliseconds = "latency-ms", category, tokenRejection = "token-rejection", tokenIssued = "token-issued"
        case fault, attribution, attributionNote = "attribution-note", caller
    }

    public init(
        time: String, instanceID: String?, client: String?, method: String, path: String, version: String?, status: Int,
        action: String? = nil, latencyMilliseconds: Double, category: String, tokenRejection: String? = nil,
        tokenIssued: Bool? = nil, fault: String? = nil, attribution: String? = nil, attributionNote: String? = nil,
        caller: CallerProcess? = nil
    ) {
        self.time = time
        self.instanceID = instanceID
        self.client = client
        self.method = method
        self.path = path
        self.version = version
        self.status = status
        self.action = action
        self.latencyMilliseconds = latencyMilliseconds
        self.category = category
        self.tokenRejection = tokenRejection
        self.tokenIssued = tokenIssued
        self.fault = fault
        self.attribution = attribution
        self.attributionNote = attributionNote
        self.caller = caller
    }

    /// The entry for one request (without attribution; see ``attributed(_:)``).
    public init(request: IMDSRequest, response: IMDSResponse, seconds: Double, at time: Date) {
        self.init(request: request, response: response, seconds: seconds, at: time, tokens: request.headerValues(IMDSHeader.token))
    }

    /// `tokens`: the request's token header values (the caller has them already).
    init(request: IMDSRequest, response: IMDSResponse, seconds: Double, at time: Date, tokens: [String]) {
        let o = response.outcome
        var path = request.target.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(request.target[..<$0]) } ?? request.target
        if path.utf8.count > 1024 { path = String(path.prefix(1024)) }
        path = Redaction.redact(path, known: tokens)
        let action: String? =
            switch response.action {
            case .hang: "hang"
            case .reset: "reset"
            case .respondAndClose: nil
            }
        self.init(
            time: Timestamp.iso8601Milliseconds(time), instanceID: o.instanceID, client: request.peer?.description,
            method: request.method.utf8.count <= 16 ? request.method : String(request.method.prefix(16)), path: path, version: o.version?.rawValue,
            status: response.action == .respondAndClose ? response.status : 0, action: action,
            latencyMilliseconds: (seconds * 1e6).rounded() / 1e3, category: o.category, tokenRejection: o.tokenRejection,
            tokenIssued: o.tokenIssued ? true : nil, fault: o.fault)
    }

    /// This entry with the attribution result; `known` are secrets to strip from the command line
    /// (the token the request carried).
    public func attributed(_ a: Attribution, known: [String] = []) -> AccessLogEntry {
        var e = self
        e.attribute(a, known: known)
        return e
    }

    /// Adds the attribution result in place (``attributed(_:known:)`` without copying the entry).
    public mutating func attribute(_ a: Attribution, known: [String] = []) {
        attribution = a.label
        switch a {
        case .process(var p):
            if !known.isEmpty { p.commandLine = Redaction.redact(arguments: p.commandLine, known: known) }
            caller = p
        case .unattributed(let why), .skipped(let why):
            attributionNote = why
        case .remote:
            break
        }
    }

    /// The client's IP address without the port.
    public var clientIP: String? {
        // On the UTF-8 bytes (every request asks): searching Characters ran grapheme breaking.
        guard let c = client else { return nil }
        let u = c.utf8
        if u.first == UInt8(ascii: "["), let close = u.firstIndex(of: UInt8(ascii: "]")) {
            return String(c[u.index(after: u.startIndex)..<close])
        }
        if let colon = u.lastIndex(of: UInt8(ascii: ":")) { return String(c[..<colon]) }
        return c
    }

    /// One JSON line (no trailing newline), keys sorted.
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}

/// Writes access-log lines to a file (appending) or to standard output, one `write(2)` per line,
/// on a private queue so the data plane never waits for the disk. At most `maxBacklog` lines wait;
/// more are dropped and counted.
public final class AccessLogWriter: Sendable {
    private let fd: Int32
    private let ownsFD: Bool
    private let queue = DispatchQueue(label: "imds.access-log")
    private let backlog = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)
    let maxBacklog: Int

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameter destination: a file path, or `-` for standard output.
    public init(destination: String, maxBacklog: Int = 10_000) throws {
        self.maxBacklog = maxBacklog
        if destination == "-" {
            fd = STDOUT_FILENO
            ownsFD = false
        } else {
            let f = open(destination, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard f >= 0 else {
                throw OpenError(description: "cannot open access log \(destination): \(String(cString: strerror(errno)))")
            }
            fd = f
            ownsFD = true
        }
    }

    deinit { if ownsFD { close(fd) } }

    /// Lines dropped because the writer fell behind.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// Queues one entry.
    public func write(_ entry: AccessLogEntry) {
        guard backlog.wrappingAdd(1, ordering: .relaxed).newValue <= maxBacklog else {
            backlog.wrappingSubtract(1, ordering: .relaxed)
            droppedCount.wrappingAdd(1, ordering: .relaxed)
            return
        }
        queue.async {
            let bytes = Array((entry.jsonLine() + "\n").utf8)
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { Glibc.write(self.fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                off += n
            }
            self.backlog.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// Waits until every queued line is written (tests, shutdown).
    public func flush() { queue.sync {} }
}

/// Time stamps for the log and the caller table.
public enum Timestamp {
    /// `2024-05-01T12:34:56.789Z`.
    public static func iso8601Milliseconds(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var secs = time_t(t.rounded(.down))
        let ms = Int(((t - t.rounded(.down)) * 1000).rounded(.down))
        var tm = tm()
        gmtime_r(&secs, &tm)
        let year = Int(tm.tm_year) + 1900
        if (0...9999).contains(year) {
            // Every request's access-log entry has one: written digit by digit, no string pieces.
            let fields: [(Int, Int, UInt8)] = [
                (year, 4, 0x2D), (Int(tm.tm_mon) + 1, 2, 0x2D), (Int(tm.tm_mday), 2, 0x54), (Int(tm.tm_hour), 2, 0x3A),
                (Int(tm.tm_min), 2, 0x3A), (Int(tm.tm_sec), 2, 0x2E), (ms, 3, 0x5A),
            ]
            return String(unsafeUninitializedCapacity: 24) { out in
                var i = 0
                for (value, width, separator) in fields {
                    var v = value
                    for k in stride(from: width - 1, through: 0, by: -1) {
                        out[i + k] = UInt8(48 + v % 10)
                        v /= 10
                    }
                    out[i + width] = separator
                    i += width + 1
                }
                return i
            }
        }
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}
