import Crypto
import Foundation

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), one implementation for both sides: signing (the
/// CLI's control-plane client, the STS client) and verification (the control plane when access keys
/// are configured) build the same canonical request with the same code.
///
/// ```swift
/// let headers = [("Host", "127.0.0.1:1339"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
/// let signed = headers + SigV4.sign(method: "POST", target: "/", headers: headers, body: body,
///                                   accessKeyID: "AKID", secretAccessKey: "secret", region: "us-east-1", date: Date())
/// ```
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// How far `X-Amz-Date` may be from the server's clock, either way (EC2: 15 minutes).
    public static let maxSkew: TimeInterval = 15 * 60

    /// A request as received, for ``verify(_:keys:now:service:)``.
    public struct Request: Sendable {
        public var method: String
        /// The request target as sent: path and query string, still percent-encoded.
        public var target: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]) {
            self.method = method
            self.target = target
            self.headers = headers
            self.body = body
        }

        /// The first value of a header, matching the name case-insensitively.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// An access key a verifier accepts.
    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String

        public init(accessKeyID: String, secretAccessKey: String) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
        }
    }

    /// Why a signature was refused; a service maps each to its own error (EC2: `EC2Error(_:)`).
    public enum Rejection: Error, Sendable, Equatable {
        /// No `Authorization` header.
        case missingAuthentication
        /// Not a well-formed SigV4 authorization, no or a malformed `X-Amz-Date`, `host` not signed.
        case incompleteSignature(String)
        /// The access key id is not one of the keys.
        case authFailure
        /// `X-Amz-Date` more than ``maxSkew`` from the verifier's clock.
        case requestExpired
        /// The credential scope names another service or date.
        case scopeMismatch(String)
        /// `X-Amz-Content-Sha256` is `UNSIGNED-PAYLOAD` or a streaming mode.
        case payloadNotSigned(String)
        /// `X-Amz-Content-Sha256` is not the SHA-256 of the body received.
        case payloadHashMismatch
        /// The signature is not the one the key gives for this request.
        case signatureMismatch
    }

    /// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header.
    public struct Authorization: Sendable, Equatable {
        public var accessKeyID: String
        public var date: String
        public var region: String
        public var service: String
        public var signedHeaders: [String]
        public var signature: String

        /// nil when the header is not a well-formed SigV4 authorization.
        public init?(header: String) {
            let trimmed = header.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix(SigV4.algorithm + " ") else { return nil }
            var fields: [String: String] = [:]
            for part in trimmed.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
                let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { return nil }
                fields[String(kv[0])] = String(kv[1])
            }
            guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let signature = fields["Signature"]
            else { return nil }
            let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard scope.count == 5, scope[4] == "aws4_request", !scope[0].isEmpty else { return nil }
            accessKeyID = scope[0]
            date = scope[1]
            region = scope[2]
            service = scope[3]
            signedHeaders = signed.split(separator: ";").map { $0.lowercased() }
            self.signature = signature.lowercased()
            guard !signedHeaders.isEmpty, self.signature.count == 64 else { return nil }
        }
    }

    // MARK: - The algorithm

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else `%XX`.
    public static func uriEncode(_ s: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case 65...90, 97...122, 48...57, 45, 46, 95, 126: out.unicodeScalars.append(UnicodeScalar(b))
            case 47 where keepSlash: out.append("/")
            default:
                let digits: [Character] = Array("0123456789ABCDEF")
                out.append("%")
                out.append(digits[Int(b >> 4)])
                out.append(digits[Int(b & 15)])
            }
        }
        return out
    }

    /// The canonical query string: decoded pairs re-encoded, sorted by name then value.
    static func canonicalQuery(_ rawQuery: Substring) -> String? {
        guard let q = QueryParameters.parse(form: rawQuery.replacingOccurrences(of: "+", with: "%20")[...]) else { return nil }
        var encoded: [(name: String, value: String)] = q.pairs.map { (uriEncode($0.name), uriEncode($0.value)) }
        encoded.sort { (a: (name: String, value: String), b: (name: String, value: String)) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        let parts: [String] = encoded.map { $0.name + "=" + $0.value }
        return parts.joined(separator: "&")
    }

    /// The canonical URI of a raw (still percent-encoded) path, as botocore builds it for services other than S3.
    static func canonicalURI(_ rawPath: Substring) -> String {
        var out: [Substring] = []
        for seg in rawPath.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." { _ = out.popLast(); continue }
            out.append(seg)
        }
        var path = "/" + out.joined(separator: "/")
        if rawPath.hasSuffix("/") && path != "/" { path += "/" }
        return uriEncode(path, keepSlash: true)
    }

    /// Header values trimmed, inner runs of spaces collapsed, repeated headers joined by `,`.
    static func canonicalHeaderValue(_ values: [String]) -> String {
        values.map { v in
            v.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }.joined(separator: ",")
    }

    /// The canonical request (step 1 of SigV4).
    public static func canonicalRequest(
        method: String, target: String, headers: [(name: String, value: String)], signedHeaders: [String], payloadHash: String
    ) -> String? {
        let path: Substring, query: Substring
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            query = target[target.index(after: q)...]
        } else {
            path = target[...]
            query = ""
        }
        guard let cq = canonicalQuery(query) else { return nil }
        var lines = [method, canonicalURI(path), cq]
        // One pass over the headers, then one lookup per signed name: linear in the request's size.
        var byName: [String: [String]] = [:]
        for h in headers { byName[h.name.lowercased(), default: []].append(h.value) }
        for name in signedHeaders {
            lines.append("\(name):\(canonicalHeaderValue(byName[name] ?? []))")
        }
        lines.append("")
        lines.append(signedHeaders.joined(separator: ";"))
        lines.append(payloadHash)
        return lines.joined(separator: "\n")
    }

    public static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        "\(algorithm)\n\(amzDate)\n\(scope)\n\(hex(SHA256.hash(data: Array(canonicalRequest.utf8))))"
    }

    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    public static func signingKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    public static func signature(signingKey: SymmetricKey, stringToSign: String) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey))
    }

    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func payloadHash(_ body: [UInt8]) -> String { hex(SHA256.hash(data: body)) }

    /// `yyyyMMdd'T'HHmmss'Z'`.
    public static func amzDate(_ date: Date) -> String {
        let c = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ v: Int?, _ width: Int = 2) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))\(pad(c.month))\(pad(c.day))T\(pad(c.hour))\(pad(c.minute))\(pad(c.second))Z"
    }

    static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    /// Parses `yyyyMMdd'T'HHmmss'Z'`; nil for anything else, including dates that do not exist.
    public static func parseAmzDate(_ s: String) -> Date? {
        let u = Array(s.utf8)
        guard u.count == 16, u[8] == UInt8(ascii: "T"), u[15] == UInt8(ascii: "Z") else { return nil }
        let digits = u[0..<8] + u[9..<15]
        guard digits.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        func n(_ r: Range<Int>) -> Int { u[r].reduce(0) { $0 * 10 + Int($1 - 48) } }
        let parts = DateComponents(year: n(0..<4), month: n(4..<6), day: n(6..<8), hour: n(9..<11), minute: n(11..<13), second: n(13..<15))
        guard let date = utc.date(from: parts), amzDate(date) == s else { return nil }
        return date
    }

    // MARK: - Signing

    /// What a client sends with a signed request: `headers` plus `X-Amz-Date` and `Authorization`,
    /// signed together with `Host: host`, which is left out of the result (transports write it).
    /// The CLI's control-plane client and the STS client both sign this way.
    public static func clientHeaders(
        method: String, target: String, host: String, headers: [(name: String, value: String)], body: [UInt8],
        credentials: Credentials, region: String, service: String = "ec2", date: Date
    ) -> [(name: String, value: String)] {
        headers + sign(method: method, target: target, headers: [("Host", host)] + headers, body: body,
                       accessKeyID: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey,
                       region: region, service: service, date: date)
    }

    /// Headers to add to a request so that it carries a valid signature: `X-Amz-Date` and `Authorization`.
    /// `headers` must already hold `Host` (and whatever else should be signed).
    public static func sign(
        method: String, target: String, headers: [(name: String, value: String)], body: [UInt8],
        accessKeyID: String, secretAccessKey: String, region: String, service: String = "ec2", date: Date
    ) -> [(name: String, value: String)] {
        let amz = amzDate(date)
        let day = String(amz.prefix(8))
        let all = headers + [("X-Amz-Date", amz)]
        let signed = Set(all.map { $0.name.lowercased() }).sorted()
        let canonical = canonicalRequest(method: method, target: target, headers: all, signedHeaders: signed,
                                         payloadHash: payloadHash(body)) ?? ""
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let sig = signature(signingKey: signingKey(secret: secretAccessKey, date: day, region: region, service: service),
                            stringToSign: stringToSign(amzDate: amz, scope: scope, canonicalRequest: canonical))
        return [("X-Amz-Date", amz),
                ("Authorization", "\(algorithm) Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signed.joined(separator: ";")), Signature=\(sig)")]
    }

    // MARK: - Verification

    /// Checks a request's signature against `keys`. Returns the key that signed it, or why not (see
    /// ``Rejection``; EC2's codes: no `Authorization` → `MissingAuthenticationToken`, a malformed one
    /// → `IncompleteSignature`, an unknown key → `AuthFailure`, a date more than 15 minutes off →
    /// `RequestExpired`, an `X-Amz-Content-Sha256` header that is not the SHA-256 of the body
    /// received → `XAmzContentSHA256Mismatch`, a wrong signature or scope → `SignatureDoesNotMatch`).
    /// The body is always part of what is verified.
    public static func verify(
        _ request: Request, keys: [Credentials], now: Date, service: String = "ec2"
    ) -> Result<Credentials, Rejection> {
        guard let header = request.header("Authorization") else { return .failure(.missingAuthentication) }
        guard let auth = Authorization(header: header) else {
            return .failure(.incompleteSignature(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of an \(algorithm) signature. Authorization=\(header.split(separator: " ").first.map(String.init) ?? "")"))
        }
        guard let key = keys.first(where: { $0.accessKeyID == auth.accessKeyID }) else { return .failure(.authFailure) }
        guard let amz = request.header("X-Amz-Date") else {
            return .failure(.incompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))
        }
        guard let signedAt = parseAmzDate(amz) else {
            return .failure(.incompleteSignature("X-Amz-Date '\(amz)' is not in the form yyyyMMddTHHmmssZ."))
        }
        guard abs(signedAt.timeIntervalSince(now)) <= maxSkew else { return .failure(.requestExpired) }
        guard auth.service == service else {
            return .failure(.scopeMismatch("Credential should be scoped to correct service: '\(service)'."))
        }
        guard auth.date == String(amz.prefix(8)) else {
            return .failure(.scopeMismatch("Credential should be scoped to a valid date: '\(amz.prefix(8))'."))
        }
        guard auth.signedHeaders.contains("host") else {
            return .failure(.incompleteSignature("Signed headers must include 'host'."))
        }
        // Sorted and distinct, as every SigV4 signer sends them: a repeated name would make the canonical
        // request repeat a header value once per repetition (quadratic size from one header line).
        guard zip(auth.signedHeaders, auth.signedHeaders.dropFirst()).allSatisfy({ $0 < $1 }) else {
            return .failure(.incompleteSignature("SignedHeaders must be lowercase header names, sorted and without repeats."))
        }
        let payload: String
        switch bodyHash(request) {
        case .success(let hash): payload = hash
        case .failure(let error): return .failure(error)
        }
        guard let canonical = canonicalRequest(method: request.method, target: request.target, headers: request.headers,
                                               signedHeaders: auth.signedHeaders, payloadHash: payload)
        else { return .failure(.signatureMismatch) }
        let scope = "\(auth.date)/\(auth.region)/\(auth.service)/aws4_request"
        let expected = signature(signingKey: signingKey(secret: key.secretAccessKey, date: auth.date, region: auth.region, service: auth.service),
                                 stringToSign: stringToSign(amzDate: amz, scope: scope, canonicalRequest: canonical))
        guard constantTimeEquals(expected, auth.signature) else { return .failure(.signatureMismatch) }
        return .success(key)
    }

    /// The payload hash that enters the canonical request: always the SHA-256 of the bytes received.
    /// An `X-Amz-Content-Sha256` header may only repeat it (botocore's S3-style signers send one); a
    /// header that names another hash, `UNSIGNED-PAYLOAD` or a `STREAMING-…` mode is refused, because
    /// the EC2 Query API signs its payload and its body is its whole request (see docs/security.md).
    static func bodyHash(_ request: Request) -> Result<String, Rejection> {
        let computed = payloadHash(request.body)
        guard let claimed = request.header("X-Amz-Content-Sha256") else { return .success(computed) }
        let trimmed = claimed.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased() == computed { return .success(trimmed) }
        if trimmed == "UNSIGNED-PAYLOAD" || trimmed.hasPrefix("STREAMING-") {
            return .failure(.payloadNotSigned(trimmed))
        }
        return .failure(.payloadHashMismatch)
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
