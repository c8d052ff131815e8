import Foundation
import IMDSCore
import IMDSTesting
import Testing

/// imds-behaviour.md §2.4, one row per situation.
@Suite("Status matrix")
struct StatusMatrixTests {
    enum TokenKind: String, Sendable, CustomStringConvertible {
        case none, valid, expired, tampered, foreign, garbage
        var description: String { rawValue }
    }

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var tokens: String = "optional"
        var endpoint: String = "enabled"
        var method = "GET"
        var path: String
        var token: TokenKind = .none
        var headers: [(String, String)] = []
        var status: Int
        var reason: String? = nil
        var contentType: String? = nil
        var body: String? = nil
        var description: String { name }
    }

    static let rows: [Row] = [
        Row(name: "v1 leaf", path: "/latest/meta-data/instance-id", status: 200, contentType: "text/plain", body: "i-0abc1234def567890"),
        Row(name: "v2 leaf", path: "/latest/meta-data/instance-id", token: .valid, status: 200, body: "i-0abc1234def567890"),
        Row(name: "v2 leaf under required", tokens: "required", path: "/latest/meta-data/instance-id", token: .valid, status: 200),
        Row(name: "v1 under required", tokens: "required", path: "/latest/meta-data/instance-id", status: 401, reason: "Unauthorized",
            contentType: "text/html", body: String(decoding: ErrorPage.unauthorized, as: UTF8.self)),
        Row(name: "v1 listing under required", tokens: "required", path: "/latest/meta-data/", status: 401),
        Row(name: "v1 version list under required", tokens: "required", path: "/", status: 401),
        Row(name: "expired token, optional", path: "/latest/meta-data/instance-id", token: .expired, status: 401),
        Row(name: "tampered token, optional", path: "/latest/meta-data/instance-id", token: .tampered, status: 401),
        Row(name: "foreign token, optional", path: "/latest/meta-data/instance-id", token: .foreign, status: 401),
        Row(name: "garbage token, required", tokens: "required", path: "/latest/meta-data/instance-id", token: .garbage, status: 401),
        Row(name: "unknown path", path: "/latest/meta-data/nope", status: 404, reason: "Not Found", contentType: "text/html",
            body: String(decoding: ErrorPage.notFound, as: UTF8.self)),
        Row(name: "unknown path v2", path: "/latest/meta-data/nope", token: .valid, status: 404),
        Row(name: "unknown version", path: "/1999-01-01/meta-data/instance-id", status: 404),
        Row(name: "dated version", path: "/2021-03-23/meta-data/instance-id", status: 200, body: "i-0abc1234def567890"),
        Row(name: "category newer than version", path: "/2016-09-02/meta-data/placement/region", status: 404),
        Row(name: "directory without slash", path: "/latest/meta-data/iam/security-credentials", status: 301, reason: "Moved Permanently"),
        Row(name: "leaf with slash", path: "/latest/meta-data/placement/availability-zone/", status: 200, body: "ap-northeast-1a"),
        Row(name: "field inside JSON leaf", path: "/latest/meta-data/iam/info/Code", status: 404),
        Row(name: "path under text leaf", path: "/latest/meta-data/instance-id/x", status: 404),
        Row(name: "token PUT", method: "PUT", path: "/latest/api/token", headers: [(ttlHeader, "21600")], status: 200, contentType: "text/plain"),
        Row(name: "token PUT missing TTL", method: "PUT", path: "/latest/api/token", status: 400, reason: "Bad Request",
            body: String(decoding: ErrorPage.badRequest, as: UTF8.self)),
        Row(name: "token PUT via versioned path", method: "PUT", path: "/2021-03-23/api/token", headers: [(ttlHeader, "21600")], status: 403),
        Row(name: "token PUT with X-Forwarded-For", method: "PUT", path: "/latest/api/token",
            headers: [(ttlHeader, "21600"), ("X-Forwarded-For", "10.0.0.1")], status: 403),
        Row(name: "GET on token path", path: "/latest/api/token", status: 405, reason: "Not Allowed", contentType: "text/plain", body: ""),
        Row(name: "POST on token path", method: "POST", path: "/latest/api/token", status: 405, body: ""),
        Row(name: "DELETE on token path", method: "DELETE", path: "/latest/api/token", status: 405),
        Row(name: "POST on data path", method: "POST", path: "/latest/meta-data/instance-id", status: 405),
        Row(name: "endpoint disabled GET", endpoint: "disabled", path: "/latest/meta-data/instance-id", status: 403,
            contentType: "text/html", body: String(decoding: ErrorPage.forbidden, as: UTF8.self)),
        Row(name: "endpoint disabled PUT", endpoint: "disabled", method: "PUT", path: "/latest/api/token",
            headers: [(ttlHeader, "21600")], status: 403),
        Row(name: "endpoint disabled root", endpoint: "disabled", path: "/", status: 403),
        Row(name: "user-data", path: "/latest/user-data", status: 200, contentType: "application/octet-stream",
            body: "#!/bin/bash\necho hello\n"),
        Row(name: "user-data with slash", path: "/latest/user-data/", status: 200, body: "#!/bin/bash\necho hello\n"),
        Row(name: "HEAD leaf", method: "HEAD", path: "/latest/meta-data/instance-id", status: 200, body: ""),
        Row(name: "duplicate slashes", path: "/latest//meta-data/instance-id", status: 200, body: "i-0abc1234def567890"),
        Row(name: "absolute-form target", path: "http://169.254.169.254/latest/meta-data/instance-id", status: 200),
        Row(name: "query string ignored", path: "/latest/meta-data/instance-id?x=1", status: 200),
        Row(name: "dot segments are names, not traversal", path: "/latest/meta-data/../user-data", status: 404),
        Row(name: "tags listing", path: "/latest/meta-data/tags/instance/", status: 200, body: "Env\nName"),
        Row(name: "tag value", path: "/latest/meta-data/tags/instance/Name", status: 200, body: "web-1"),
    ]

    static func imds(for row: Row, clock: ManualClock) throws -> TestIMDS {
        let yaml = productExampleYAML
            .replacingOccurrences(of: "http-tokens: optional", with: "http-tokens: \(row.tokens)")
            .replacingOccurrences(of: "http-endpoint: enabled", with: "http-endpoint: \(row.endpoint)")
        return try makeIMDS(yaml, clock: clock)
    }

    @Test(arguments: rows)
    func row(_ row: Row) throws {
        let clock = ManualClock()
        let imds = try Self.imds(for: row, clock: clock)
        var headers = row.headers
        switch row.token {
        case .none: break
        case .valid:
            // A token from an identical instance with tokens enabled (the one under test may be disabled).
            headers.append((tokenHeader, try #require(imds.token())))
        case .expired:
            let t = try #require(imds.token(ttl: 1))
            clock.advance(by: 1)
            headers.append((tokenHeader, t))
        case .tampered:
            var t = Array(try #require(imds.token()).utf8)
            t[20] = t[20] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            headers.append((tokenHeader, String(decoding: t, as: UTF8.self)))
        case .foreign:
            let other = try makeIMDS(productExampleYAML.replacingOccurrences(of: "i-0abc1234def567890", with: "i-0fedcba9876543210"), clock: clock)
            headers.append((tokenHeader, try #require(other.token())))
        case .garbage:
            headers.append((tokenHeader, "not-a-token"))
        }
        let r = imds.request(row.method, row.path, headers: headers)
        #expect(r.status == row.status, "\(row.name): \(r.status) \(r.bodyText)")
        if let reason = row.reason { #expect(r.reason == reason) }
        if let ct = row.contentType { #expect(r.header("Content-Type") == ct) }
        if let body = row.body {
            #expect(r.omitBody ? body.isEmpty : r.bodyText == body)
        }
        // Every response: Server, Connection: close, Date, a correct Content-Length.
        #expect(r.header("Server") == "EC2ws")
        #expect(r.header("Connection") == "close")
        #expect(r.header("Date") != nil)
        #expect(r.header("Content-Length") == String(r.body.count))
    }
}
