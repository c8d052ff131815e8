/// The address of the peer that sent a request, as the transport saw it.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The IP address in text form (`127.0.0.1`, `::1`, `::ffff:10.0.0.5`).
    public var ip: String
    /// The peer's source port.
    public var port: Int

    public init(ip: String, port: Int) {
        self.ip = ip
        self.port = port
    }

    public var description: String {
        // Concatenated, not interpolated: `127.0.0.1:40312` then fits a small string (no allocation).
        ip.utf8.contains(0x3A) ? "[" + ip + "]:" + String(port) : ip + ":" + String(port)
    }
}

/// An HTTP request as the data plane sees it, independent of any transport.
public struct IMDSRequest: Sendable {
    /// The method exactly as sent (`GET`, `PUT`, ...).
    public var method: String
    /// The request target exactly as sent (path and optional query).
    public var target: String
    /// Header fields in arrival order; names keep their original case.
    public var headers: [(name: String, value: String)]
    /// The peer, when known.
    public var peer: PeerAddress?
    /// Number of body bytes received.
    public var bodyLength: Int
    /// The body, kept only by listeners that need it (the control plane); the data plane ignores bodies.
    public var body: [UInt8]

    public init(
        method: String,
        target: String,
        headers: [(name: String, value: String)] = [],
        peer: PeerAddress? = nil,
        bodyLength: Int = 0,
        body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.peer = peer
        self.bodyLength = max(bodyLength, body.count)
        self.body = body
    }

    /// The first value of a header, matching the name case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// All values of a header, matching the name case-insensitively.
    public func headerValues(_ name: String) -> [String] {
        // No array at all when the header is absent, one when it is there.
        var values: [String] = []
        for h in headers where h.name.caseInsensitiveEquals(name) { values.append(h.value) }
        return values
    }
}

extension String {
    /// ASCII case-insensitive comparison (HTTP header names are ASCII).
    @inlinable
    func caseInsensitiveEquals(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        var a = self
        var b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                for i in 0..<x.count where x[i] != y[i] {
                    let lx = (x[i] >= 65 && x[i] <= 90) ? x[i] | 0x20 : x[i]
                    let ly = (y[i] >= 65 && y[i] <= 90) ? y[i] | 0x20 : y[i]
                    if lx != ly { return false }
                }
                return true
            }
        }
    }
}
