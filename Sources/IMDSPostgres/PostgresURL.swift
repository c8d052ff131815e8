import Foundation

/// Where the PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, or a Unix
/// socket directory with `?host=/path` (as libpq spells it). `sslmode=disable` is the only mode this
/// build speaks; a password may also come from `PGPASSWORD`. The ``description`` never shows the
/// password.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    /// A host name or address; nil with a Unix socket.
    public var host: String?
    public var port: Int
    /// The directory holding the server's socket (`.s.PGSQL.PORT`); nil over TCP.
    public var socketDirectory: String?
    public var database: String

    /// Parses `text`; every problem is a sentence naming the part that is wrong (without the password).
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PostgresStoreError) {
        guard let c = URLComponents(string: text), let scheme = c.scheme, ["postgres", "postgresql"].contains(scheme.lowercased()) else {
            throw .badURL("expected postgres://USER@HOST:PORT/DATABASE, got '\(Self.redacted(text))'")
        }
        guard let user = c.user.map({ $0.removingPercentEncoding ?? $0 }), !user.isEmpty else {
            throw .badURL("'\(Self.redacted(text))' names no user (postgres://USER@HOST/DATABASE)")
        }
        self.user = user
        password = c.password.map { $0.removingPercentEncoding ?? $0 } ?? environment["PGPASSWORD"]
        var query: [String: String] = [:]
        for item in c.queryItems ?? [] { query[item.name] = item.value ?? "" }
        for key in query.keys where !["host", "sslmode", "port"].contains(key) {
            throw .badURL("'\(Self.redacted(text))': the parameter '\(key)' is not supported (host, port, sslmode)")
        }
        if let mode = query["sslmode"], !["disable", "allow", "prefer"].contains(mode) {
            throw .badURL("sslmode=\(mode) is not supported by this build (TLS to PostgreSQL is not implemented); use sslmode=disable on a trusted network or a Unix socket")
        }
        if let socket = query["host"], socket.hasPrefix("/") {
            socketDirectory = socket
            host = nil
        } else {
            socketDirectory = nil
            let h = (query["host"] ?? c.host ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            guard !h.isEmpty else { throw .badURL("'\(Self.redacted(text))' names no host") }
            host = h
        }
        let portText = query["port"] ?? c.port.map(String.init)
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw .badURL("port '\(portText)' is not within 1...65535") }
            port = p
        } else {
            port = 5432
        }
        let db = String(c.path.drop(while: { $0 == "/" })).removingPercentEncoding ?? ""
        guard !db.isEmpty, !db.contains("/") else {
            throw .badURL("'\(Self.redacted(text))' names no database (postgres://USER@HOST:PORT/DATABASE)")
        }
        database = db
    }

    /// The URL without the password.
    public var description: String {
        if let socketDirectory { return "postgres://\(user)@/\(database)?host=\(socketDirectory)&port=\(port)" }
        let h = host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? ""
        return "postgres://\(user)@\(h):\(port)/\(database)"
    }

    /// A file-name-safe name for this database (the local cache's file name).
    public var cacheName: String {
        let raw = "\(host ?? socketDirectory ?? "")-\(port)-\(database)"
        return "postgres-" + String(raw.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    /// `text` with anything between `://user:` and `@` replaced by `***`.
    public static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].lastIndex(of: "@") else { return text }
        let userinfo = text[scheme.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// Why the PostgreSQL store could not be opened or used.
public enum PostgresStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `--store` URL is not valid.
    case badURL(String)
    /// The server could not be reached (and there is no local cache to serve from).
    case unreachable(String)
    /// The server refused us (authentication, a missing database, permissions).
    case refused(String)
    /// The database holds something this version cannot use.
    case incompatible(String)

    public var description: String {
        switch self {
        case .badURL(let why): "--store: \(why)"
        case .unreachable(let why): why
        case .refused(let why): why
        case .incompatible(let why): why
        }
    }
}
