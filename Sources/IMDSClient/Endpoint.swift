import Foundation

/// An IMDS base URI: scheme, host, port and an optional path prefix (normally empty).
///
/// ```swift
/// let e = try IMDSEndpoint(parsing: "http://[fd00:ec2::254]")
/// e.url(for: "/latest/api/token")   // "http://[fd00:ec2::254]/latest/api/token"
/// ```
public struct IMDSEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// `http` (or `https`, which ``NIOIMDSTransport`` refuses).
    public var scheme: String
    /// Host name or IP address, without brackets for IPv6.
    public var host: String
    public var port: Int
    /// A path prefix without a trailing slash (`""` for the normal case).
    public var basePath: String

    /// `http://169.254.169.254` (endpoint mode IPv4, the default).
    public static let ipv4 = IMDSEndpoint(scheme: "http", host: "169.254.169.254", port: 80, basePath: "")
    /// `http://[fd00:ec2::254]` (endpoint mode IPv6).
    public static let ipv6 = IMDSEndpoint(scheme: "http", host: "fd00:ec2::254", port: 80, basePath: "")

    public init(scheme: String = "http", host: String, port: Int = 80, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
    }

    /// Parses an absolute `http://` or `https://` URI. Throws ``IMDSClientError/invalidConfiguration(_:)``
    /// naming the value when it is not one (the SDKs reject such endpoints too).
    public init(parsing text: String, source: String = "endpoint") throws {
        func bad(_ why: String) -> IMDSClientError {
            .invalidConfiguration("\(source) '\(text)' is not a valid URI: \(why) (expected for example http://169.254.169.254 or http://[fd00:ec2::254])")
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let schemeEnd = trimmed.range(of: "://") else { throw bad("no scheme") }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw bad("the scheme must be http or https") }
        var rest = trimmed[schemeEnd.upperBound...]
        var path = ""
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            guard rest[slash] == "/" else { throw bad("query strings and fragments are not allowed") }
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        guard !rest.contains("@") else { throw bad("user information is not allowed") }
        var host: String
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("unterminated IPv6 literal") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after the IPv6 literal") }
                portText = after.dropFirst()
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" })
            else { throw bad("invalid IPv6 literal") }
        } else {
            if let colon = rest.firstIndex(of: ":") {
                host = String(rest[..<colon])
                portText = rest[rest.index(after: colon)...]
            } else {
                host = String(rest)
            }
            guard !host.isEmpty, host.utf8.allSatisfy({ c in
                (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 46 || c == 95
            }) else { throw bad("'\(host)' is not a valid host") }
        }
        var port = scheme == "https" ? 443 : 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw bad("invalid port '\(portText)'") }
            port = p
        }
        while path.hasSuffix("/") { path.removeLast() }
        self.init(scheme: scheme, host: host, port: port, basePath: path)
    }

    /// Whether the host is an IPv6 literal.
    public var isIPv6: Bool { host.contains(":") }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`, as sent in the `Host` header.
    public var authority: String {
        let h = isIPv6 ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        return port == defaultPort ? h : "\(h):\(port)"
    }

    /// The absolute URL of a path on this endpoint.
    public func url(for path: String) -> String { "\(scheme)://\(authority)\(basePath)\(path)" }

    /// The base URI (`http://169.254.169.254`).
    public var description: String { "\(scheme)://\(authority)\(basePath)" }
}

/// Which built-in address to use when no endpoint is configured.
public enum IMDSEndpointMode: String, Sendable, Equatable, CaseIterable {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"

    /// Parses `IPv4` or `IPv6`, case-insensitively; anything else is an error naming the value.
    public init(parsing text: String, source: String = "endpoint mode") throws {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "ipv4": self = .ipv4
        case "ipv6": self = .ipv6
        default: throw IMDSClientError.invalidConfiguration("invalid \(source) '\(text)': expected IPv4 or IPv6")
        }
    }

    /// The endpoint this mode selects.
    public var endpoint: IMDSEndpoint { self == .ipv4 ? .ipv4 : .ipv6 }
}
