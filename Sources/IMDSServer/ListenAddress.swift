#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `HOST:PORT` to listen on: `127.0.0.1:1338`, `[::1]:1338`, `0.0.0.0:0` (port 0 picks one).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPV6]:PORT`.
    public init?(parsing text: String) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// Whether `host` is a numeric loopback address: 127.0.0.0/8, `::1`, or IPv4-mapped `::ffff:127.x.x.x`.
    /// A name (even `localhost`) is not: resolve it first (``resolved()``), so the decision is made on
    /// the address that is actually bound, never on a name that could resolve elsewhere.
    public var isLoopback: Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff && b[12] == 127
    }

    /// The address with `host` resolved to the numeric address a listener binds (the first that
    /// `getaddrinfo` returns for a TCP socket, as SwiftNIO's bind does); numeric hosts unchanged.
    /// Throws when the name does not resolve.
    public func resolved() throws(ResolutionError) -> ListenAddress {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw ResolutionError(host: host, reason: String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(list) }
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0
        else { throw ResolutionError(host: host, reason: "no numeric address") }
        // Kept with any IPv6 zone (`fe80::1%eth0`), which binding needs; such an address is never loopback.
        let numeric = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ListenAddress(host: numeric, port: port)
    }

    /// A listen host that does not resolve.
    public struct ResolutionError: Error, Sendable, CustomStringConvertible {
        public var host: String
        public var reason: String
        public var description: String { "cannot resolve '\(host)': \(reason)" }
    }

    public var isIPv6: Bool { host.contains(":") }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// `http://HOST:PORT`.
    public var url: String { "http://\(description)" }
}
