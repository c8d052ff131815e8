import Foundation
import Synchronization

/// Removes secrets from text that is about to be logged or shown (paths, command lines, errors).
///
/// A process's command line often carries the very token it sends (`curl -H "X-aws-ec2-metadata-token: $TOKEN"`
/// expands to the token itself), and a token pasted by mistake into a URL path is logged with the path.
/// Tokens and credentials must never appear in logs, not even truncated, so each of these is replaced
/// by `[redacted]` as a whole. Detection is by **structure**, never by how random text looks:
/// - the exact secrets passed in `known` (the token a request carried) and every configured secret
///   (``setConfiguredSecrets(_:)``: control-plane keys, fixed and source credentials);
/// - IMDS session tokens by their known shape: this server's start `AQAEA` (its fixed first bytes),
///   and any token in EC2's form, 54 URL-safe base64 characters and `==` (56 in all), wherever it
///   appears, even glued to other characters (`…/security-credentials/<token>x`);
/// - STS session tokens by their fixed prefixes (`IQoJb3JpZ2lu`, `FwoGZXIvYXdzE`, `FQoGZXIvYXdzE`);
/// - AWS access key ids (`AKIA…`, `ASIA…` and 16 upper-case letters or digits);
/// - the value of anything named like a secret (`X-aws-ec2-metadata-token: v`, `TOKEN=v`,
///   `aws_secret_access_key=v`, `"SecretAccessKey": "v"`, `?token=v`): names containing `token`
///   (but not `ttl`), `secret`, `password` or `passwd`.
public enum Redaction {
    public static let marker = "[redacted]"

    private static let configured = Mutex<[String]>([])

    /// Secrets from the configuration that must never be shown (replaced wherever they appear);
    /// set by the server at start and on every reload. Values shorter than 4 characters are ignored.
    public static func setConfiguredSecrets(_ secrets: [String]) {
        let list = Set(secrets.filter { $0.utf8.count >= 4 }).sorted { $0.utf8.count > $1.utf8.count }
        configured.withLock { $0 = list }
    }

    /// `text` with secrets replaced by ``marker``.
    public static func redact(_ text: String, known: [String] = []) -> String {
        let exact = known.filter { $0.utf8.count >= 8 } + configured.withLock { $0 }
        // Most text (a request path, most arguments) has nothing any rule could replace.
        return mayHoldSecret(text, exact: exact) ? redactAll(text, exact: exact) : text
    }

    /// Every rule applied to `text` (``redact(_:known:)`` without its shortcut).
    static func redactAll(_ text: String, exact: [String]) -> String {
        var s = text
        for secret in exact where s.contains(secret) {
            s = s.replacingAll(secret, with: marker)
        }
        s = redactNamedValues(s)
        s = redactShapes(s)
        return s
    }

    /// A command line with each argument redacted.
    public static func redact(arguments: [String], known: [String] = []) -> [String] {
        var out = arguments.map { redact($0, known: known) }
        // `--token VALUE`-style pairs: redact the value after an argument naming a token or secret.
        for i in out.indices.dropLast() {
            let a = out[i].lowercased()
            if a.hasSuffix("metadata-token") || a.hasSuffix("metadata-token:") || a.contains("secret") || a == "--token"
                || a == "--session-token" || a.hasSuffix("session_token") || a.contains("password")
            {
                if out[i + 1] != marker && !out[i + 1].hasPrefix("-") { out[i + 1] = marker }
            }
        }
        return out
    }

    /// False when no rule of ``redact(_:known:)`` can change `text`: it is ASCII without a CR (so
    /// byte and character comparison agree), holds none of the `exact` secrets, no `:` or `=` (every
    /// named value and every `==`-padded token needs one) and none of the prefixes a shape starts
    /// with. One pass over the bytes, no allocation: the access log calls this for every request.
    static func mayHoldSecret(_ text: String, exact: [String]) -> Bool {
        var text = text
        return text.withUTF8 { b -> Bool in
            let n = b.count
            var i = 0
            while i < n {
                let c = b[i]
                if c >= 0x80 || c == 13 || c == UInt8(ascii: ":") || c == UInt8(ascii: "=") { return true }
                if (c == UInt8(ascii: "A") || c == UInt8(ascii: "I") || c == UInt8(ascii: "F")) && n - i >= 4 {
                    let w = (b[i], b[i + 1], b[i + 2], b[i + 3])
                    if w == (0x41, 0x51, 0x41, 0x45) || w == (0x49, 0x51, 0x6F, 0x4A) || w == (0x46, 0x77, 0x6F, 0x47)
                        || w == (0x46, 0x51, 0x6F, 0x47) || w == (0x41, 0x4B, 0x49, 0x41) || w == (0x41, 0x53, 0x49, 0x41)
                    {
                        return true  // AQAE(A), IQoJ…, FwoG…, FQoG…, AKIA, ASIA
                    }
                }
                i += 1
            }
            for secret in exact {
                var secret = secret
                let found = secret.withUTF8 { s -> Bool in
                    ByteSearch.firstIndex(of: s, in: b) != nil
                }
                if found { return true }
            }
            return false
        }
    }

    // MARK: - Named values

    static func isNameChar(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }

    static func isSecretName(_ name: ArraySlice<UInt8>) -> Bool {
        let lower = String(decoding: name, as: UTF8.self).lowercased()
        if lower.contains("ttl") { return false }  // X-aws-ec2-metadata-token-ttl-seconds holds no secret
        return lower.contains("token") || lower.contains("secret") || lower.contains("password") || lower.contains("passwd")
    }

    static func isDelimiter(_ c: UInt8) -> Bool {
        c == 32 || c == 9 || c == 10 || c == 13 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: ";")
            || c == UInt8(ascii: "&") || c == UInt8(ascii: ",")
    }

    /// `NAME: value`, `NAME=value`, `"NAME": "value"` where NAME names a secret → `NAME: [redacted]`.
    static func redactNamedValues(_ s: String) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard isNameChar(bytes[i]), i == 0 || !isNameChar(bytes[i - 1]) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            var j = i
            while j < bytes.count, isNameChar(bytes[j]) { j += 1 }
            out.append(contentsOf: bytes[i..<j])
            guard isSecretName(bytes[i..<j]) else {
                i = j
                continue
            }
            // Optional closing quote of a quoted name, blanks, then `:` or `=`, blanks.
            var k = j
            if k < bytes.count, bytes[k] == UInt8(ascii: "\"") || bytes[k] == UInt8(ascii: "'") { k += 1 }
            while k < bytes.count, bytes[k] == 32 || bytes[k] == 9 { k += 1 }
            guard k < bytes.count, bytes[k] == UInt8(ascii: ":") || bytes[k] == UInt8(ascii: "=") else {
                i = j
                continue
            }
            k += 1
            while k < bytes.count, bytes[k] == 32 || bytes[k] == 9 { k += 1 }
            var valueStart = k, valueEnd = k
            if k < bytes.count, bytes[k] == UInt8(ascii: "\"") || bytes[k] == UInt8(ascii: "'") {
                let quote = bytes[k]
                valueStart = k + 1
                valueEnd = valueStart
                while valueEnd < bytes.count, bytes[valueEnd] != quote { valueEnd += 1 }
            } else {
                while valueEnd < bytes.count, !isDelimiter(bytes[valueEnd]) { valueEnd += 1 }
            }
            out.append(contentsOf: bytes[j..<valueStart])
            if valueEnd > valueStart { out.append(contentsOf: marker.utf8) }
            i = valueEnd
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Shapes

    static func isURLBase64(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }

    static func isAnyBase64(_ c: UInt8) -> Bool {
        isURLBase64(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/") || c == UInt8(ascii: "=")
    }

    static let tokenPrefixes: [[UInt8]] = ["AQAEA", "IQoJb3JpZ2lu", "FwoGZXIvYXdzE", "FQoGZXIvYXdzE"].map { Array($0.utf8) }
    static let keyPrefixes: [[UInt8]] = [Array("AKIA".utf8), Array("ASIA".utf8)]
    /// An IMDS token in EC2's form: 54 URL-safe base64 characters, then `==`.
    static let tokenBodyLength = 54

    /// The byte ranges of `bytes` that hold a secret by its shape.
    static func secretRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var i = 0
        while i < bytes.count {
            // Known prefixes: up to the end of the base64 run (padding included).
            if let p = tokenPrefixes.first(where: { bytes.count - i >= $0.count && bytes[i..<(i + $0.count)].elementsEqual($0) }) {
                var end = i + p.count
                let isURLSafe = p == tokenPrefixes[0]
                while end < bytes.count, isURLSafe ? (isURLBase64(bytes[end]) || bytes[end] == UInt8(ascii: "=")) : isAnyBase64(bytes[end]) {
                    end += 1
                }
                if end - i >= 20 {
                    ranges.append(i..<end)
                    i = end
                    continue
                }
            }
            if bytes.count - i >= 20, keyPrefixes.contains(where: { bytes[i..<(i + 4)].elementsEqual($0) }),
                bytes[(i + 4)..<(i + 20)].allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) })
            {
                ranges.append(i..<(i + 20))
                i += 20
                continue
            }
            // `==` closing 54 URL-safe base64 characters: a token, with whatever is glued before it.
            if bytes[i] == UInt8(ascii: "="), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "="), i >= tokenBodyLength,
                bytes[(i - tokenBodyLength)..<i].allSatisfy(isURLBase64)
            {
                var start = i - tokenBodyLength
                while start > 0, isURLBase64(bytes[start - 1]) { start -= 1 }
                ranges.append(start..<(i + 2))
                i += 2
                continue
            }
            i += 1
        }
        return ranges
    }

    /// Replaces token-shaped and key-id-shaped text (overlapping findings become one marker).
    static func redactShapes(_ s: String) -> String {
        let bytes = Array(s.utf8)
        var merged: [Range<Int>] = []
        for r in secretRanges(bytes).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        guard !merged.isEmpty else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var at = 0
        for r in merged {
            out.append(contentsOf: bytes[at..<r.lowerBound])
            out.append(contentsOf: marker.utf8)
            at = r.upperBound
        }
        out.append(contentsOf: bytes[at...])
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func replacingAll(_ needle: String, with replacement: String) -> String {
        guard !needle.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let r = rest.range(of: needle) {
            result += rest[..<r.lowerBound]
            result += replacement
            rest = rest[r.upperBound...]
        }
        return result + rest
    }
}

/// Byte-string search without Foundation (whose `range(of:)` compares characters, not bytes).
enum ByteSearch {
    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        needle.withUnsafeBufferPointer { n in haystack.withUnsafeBufferPointer { firstIndex(of: n, in: $0) } }
    }

    static func firstIndex(of needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>) -> Int? {
        needle.withUnsafeBufferPointer { firstIndex(of: $0, in: haystack) }
    }

    static func firstIndex(of needle: UnsafeBufferPointer<UInt8>, in haystack: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !needle.isEmpty, needle.count <= haystack.count else { return nil }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        outer: while i <= last {
            if haystack[i] == first {
                for j in 1..<needle.count where haystack[i + j] != needle[j] {
                    i += 1
                    continue outer
                }
                return i
            }
            i += 1
        }
        return nil
    }
}
