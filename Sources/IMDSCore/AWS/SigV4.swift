import Crypto
import Foundation

/// AWS Signature Version 4 for query-protocol requests (form-encoded POST), used to call STS.
public enum SigV4 {
    /// Percent-encodes as SigV4 requires (RFC 3986 unreserved characters stay as they are).
    public static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
            if unreserved { out.unicodeScalars.append(Unicode.Scalar(b)) } else {
                let h = String(b, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" + h : h)
            }
        }
        return out
    }

    /// A form body from ordered parameters.
    public static func formBody(_ params: [(String, String)]) -> String {
        params.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func hmac(_ key: [UInt8], _ data: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(data.utf8), using: SymmetricKey(data: key)))
    }

    /// `20260102T030405Z` and `20260102` for a date.
    public static func amzDate(_ date: Date) -> (full: String, day: String) {
        let iso = TimeFormat.iso8601(date)  // 2026-01-02T03:04:05Z
        let compact = iso.replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
        return (compact, String(compact.prefix(8)))
    }

    /// The headers to add to a POST of `body` to `host` (`Host`, `X-Amz-Date`, optional
    /// `X-Amz-Security-Token`, `Authorization`), signing `content-type;host;x-amz-date`.
    public static func signedHeaders(
        method: String = "POST", path: String = "/", host: String, contentType: String, body: String,
        service: String, region: String, accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil,
        date: Date
    ) -> [(String, String)] {
        let (amz, day) = amzDate(date)
        var headers: [(String, String)] = [("content-type", contentType), ("host", host), ("x-amz-date", amz)]
        if let sessionToken { headers.append(("x-amz-security-token", sessionToken)) }
        headers.sort { $0.0 < $1.0 }
        let signed = headers.map(\.0).joined(separator: ";")
        let canonical = [
            method, path, "",
            headers.map { "\($0.0):\($0.1.trimmingCharacters(in: .whitespaces))\n" }.joined(),
            signed,
            hex(SHA256.hash(data: Array(body.utf8))),
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = ["AWS4-HMAC-SHA256", amz, scope, hex(SHA256.hash(data: Array(canonical.utf8)))].joined(separator: "\n")
        var key = hmac(Array(("AWS4" + secretAccessKey).utf8), day)
        key = hmac(key, region)
        key = hmac(key, service)
        key = hmac(key, "aws4_request")
        let signature = hex(hmac(key, toSign))
        var out: [(String, String)] = [("Host", host), ("X-Amz-Date", amz)]
        if let sessionToken { out.append(("X-Amz-Security-Token", sessionToken)) }
        out.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(signature)"))
        return out
    }
}
