import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A minimal blocking HTTP/1.1 client (one request per connection, `Connection: close`), enough to
/// talk to the control plane without pulling in an HTTP client library.
enum HTTPClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Response {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]
    }

    /// An `http://HOST:PORT[/path]` endpoint.
    struct Endpoint {
        var host: String
        var port: Int
        var path: String

        init(_ url: String) throws(Failure) {
            guard url.hasPrefix("http://") else {
                throw Failure(description: "endpoint '\(url)' must start with http:// (the control plane speaks plain HTTP)")
            }
            var rest = Substring(url.dropFirst("http://".count))
            var path = "/"
            if let slash = rest.firstIndex(of: "/") {
                path = String(rest[slash...])
                rest = rest[..<slash]
            }
            var host: Substring, port = 80
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw Failure(description: "endpoint '\(url)': unclosed [") }
                host = rest[rest.index(after: rest.startIndex)..<close]
                let after = rest[rest.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()) else { throw Failure(description: "endpoint '\(url)': bad port") }
                    port = p
                }
            } else if let colon = rest.lastIndex(of: ":") {
                host = rest[..<colon]
                guard let p = Int(rest[rest.index(after: colon)...]) else { throw Failure(description: "endpoint '\(url)': bad port") }
                port = p
            } else {
                host = rest
            }
            guard !host.isEmpty, (1...65535).contains(port) else { throw Failure(description: "endpoint '\(url)' has no host or a bad port") }
            self.host = String(host)
            self.port = port
            self.path = path
        }

        /// The `Host` header value.
        var hostHeader: String {
            let h = host.contains(":") ? "[\(host)]" : host
            return port == 80 ? h : "\(h):\(port)"
        }
    }

    static func send(
        method: String, to endpoint: Endpoint, headers: [(name: String, value: String)], body: [UInt8], timeoutSeconds: Int = 10
    ) throws(Failure) -> Response {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var info: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &info)
        guard rc == 0, let first = info else {
            throw Failure(description: "cannot resolve \(endpoint.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(info) }
        var fd: Int32 = -1
        var lastError: Int32 = 0
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s >= 0 {
                var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                    fd = s
                    break
                }
                lastError = errno
                close(s)
            } else {
                lastError = errno
            }
            ai = a.pointee.ai_next
        }
        guard fd >= 0 else {
            throw Failure(description: "cannot connect to \(endpoint.hostHeader): \(String(cString: strerror(lastError))). Is `imds serve` running, and is --endpoint its control-plane address?")
        }
        defer { close(fd) }

        var head = "\(method) \(endpoint.path) HTTP/1.1\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "sending to \(endpoint.hostHeader): \(String(cString: strerror(errno)))")
            }
            sent += n
        }
        var raw: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw Failure(description: e == EAGAIN || e == EWOULDBLOCK
                              ? "no answer from \(endpoint.hostHeader) within \(timeoutSeconds) s"
                              : "reading from \(endpoint.hostHeader): \(String(cString: strerror(e)))")
            }
            raw += buffer[0..<n]
            if raw.count > 16 << 20 { throw Failure(description: "the response from \(endpoint.hostHeader) is larger than 16 MiB") }
        }
        return try parse(raw, from: endpoint)
    }

    static func parse(_ raw: [UInt8], from endpoint: Endpoint) throws(Failure) -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let split = (0..<max(0, raw.count - 3)).first(where: { raw[$0..<$0 + 4].elementsEqual(separator) }) else {
            throw Failure(description: "\(endpoint.hostHeader) did not answer with HTTP (is this the control-plane address?)")
        }
        let head = String(decoding: raw[..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw Failure(description: "\(endpoint.hostHeader) sent a malformed status line")
        }
        var headers: [(name: String, value: String)] = []
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(raw[(split + 4)...])
        if let cl = headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap({ Int($0.value) }), cl < body.count {
            body = Array(body[..<cl])
        }
        return Response(status: status, headers: headers, body: body)
    }
}
