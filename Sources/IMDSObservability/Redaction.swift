import Foundation

/// Removes secrets from text that is about to be logged or shown (command lines, paths).
///
/// A process's command line often carries the very token it sends (`curl -H "X-aws-ec2-metadata-token: $TOKEN"`
/// expands to the token itself). Tokens and credentials must never appear in logs, not even
/// truncated, so each of these is replaced by `[redacted]` as a whole:
/// - any value given to an `X-aws-ec2-metadata-token` header (`name: value` or `name=value`);
/// - strings shaped like an IMDS token or an AWS secret (runs of 32 or more base64 / base64url
///   characters mixing upper case, lower case and digits);
/// - AWS access key ids (`AKIA…`, `ASIA…`);
/// - any exact secret passed in `known` (the token the request carried).
public enum Redaction {
    public static let marker = "[redacted]"

    /// `text` with secrets replaced by ``marker``.
    public static func redact(_ text: String, known: [String] = []) -> String {
        var s = text
        for secret in known where secret.utf8.count >= 8 {
            s = s.replacingAll(secret, with: marker)
        }
        s = redactTokenHeaders(s)
        s = redactRuns(s)
        return s
    }

    /// A command line with each argument redacted.
    public static func redact(arguments: [String], known: [String] = []) -> [String] {
        var out = arguments.map { redact($0, known: known) }
        // `--token VALUE`-style pairs: redact the value after an argument naming a token or secret.
        for i in out.indices.dropLast() {
            let a = out[i].lowercased()
            if a.hasSuffix("metadata-token") || a.hasSuffix("metadata-token:") || a.contains("secret") || a == "--token"
                || a == "--session-token" || a.hasSuffix("session_token")
            {
                if out[i + 1] != marker && !out[i + 1].hasPrefix("-") { out[i + 1] = marker }
            }
        }
        return out
    }

    /// `X-aws-ec2-metadata-token: value` / `=value` (any case, any spacing) → `X-aws-ec2-metadata-token: [redacted]`.
    static func redactTokenHeaders(_ s: String) -> String {
        let lower = Array(s.lowercased().utf8)
        let name = Array("x-aws-ec2-metadata-token".utf8)
        let bytes = Array(s.utf8)
        guard lower.count == bytes.count, lower.count >= name.count else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + name.count <= lower.count, Array(lower[i..<(i + name.count)]) == name {
                var j = i + name.count
                // The TTL header shares the prefix; it holds no secret.
                if j < lower.count, lower[j] == UInt8(ascii: "-") {
                    out.append(contentsOf: bytes[i..<j])
                    i = j
                    continue
                }
                while j < bytes.count, bytes[j] == 32 || bytes[j] == 9 { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: ":") || bytes[j] == UInt8(ascii: "=") {
                    j += 1
                    while j < bytes.count, bytes[j] == 32 || bytes[j] == 9 { j += 1 }
                    var end = j
                    while end < bytes.count, !Self.isDelimiter(bytes[end]) { end += 1 }
                    out.append(contentsOf: bytes[i..<j])
                    if end > j { out.append(contentsOf: marker.utf8) }
                    i = end
                    continue
                }
                out.append(contentsOf: bytes[i..<j])
                i = j
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isDelimiter(_ c: UInt8) -> Bool {
        c == 32 || c == 9 || c == 10 || c == 13 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: ";")
            || c == UInt8(ascii: "&") || c == UInt8(ascii: ",")
    }

    static func isSecretChar(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
            || c == UInt8(ascii: "=") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }

    /// Replaces secret-shaped runs of base64 characters, and access key ids.
    ///
    /// A run is secret-shaped when it is 32+ characters of random-looking text (at least two of
    /// upper case, lower case and digits, with upper case inside words), or looks like an IMDS token
    /// (40+ characters starting with `AQA` or ending with `==`). Paths and URLs are runs too (`/` and
    /// `-` are base64), so a run with `/` counts as secret only when most of its pieces look random.
    static func redactRuns(_ s: String) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            guard isSecretChar(bytes[i]) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            var end = i
            while end < bytes.count, isSecretChar(bytes[end]) { end += 1 }
            var run = Array(bytes[i..<end])
            // `NAME=value`: keep the name, judge the value.
            if let eq = run.firstIndex(of: UInt8(ascii: "=")), eq > 0, eq + 1 < run.count, run[eq + 1] != UInt8(ascii: "="),
                run[..<eq].allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 })
            {
                out.append(contentsOf: run[...eq])
                run = Array(run[(eq + 1)...])
            }
            if isSecretRun(run) {
                out.append(contentsOf: marker.utf8)
            } else {
                out.append(contentsOf: redactKeyIDs(run))
            }
            i = end
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isSecretRun(_ run: [UInt8]) -> Bool {
        if run.count >= 40 && (run.starts(with: Array("AQA".utf8)) || run.suffix(2) == [61, 61]) && !run.contains(UInt8(ascii: "/")) {
            return true
        }
        guard run.count >= 32 else { return false }
        let pieces = run.split(separator: UInt8(ascii: "/"))
        let randomLooking = pieces.filter { $0.count >= 6 && looksRandom($0) }.reduce(0) { $0 + $1.count }
        return Double(randomLooking) >= 0.6 * Double(run.count)
    }

    /// Two or more character classes, with an upper-case letter after the first character.
    static func looksRandom(_ piece: ArraySlice<UInt8>) -> Bool {
        var upper = false, lower = false, digit = false, innerUpper = false
        for (k, c) in piece.enumerated() {
            if c >= 65 && c <= 90 {
                upper = true
                if k > 0 { innerUpper = true }
            } else if c >= 97 && c <= 122 {
                lower = true
            } else if c >= 48 && c <= 57 {
                digit = true
            }
        }
        return innerUpper && [upper, lower, digit].filter { $0 }.count >= 2
    }

    static let keyPrefixes: [[UInt8]] = [Array("AKIA".utf8), Array("ASIA".utf8)]

    /// `AKIA`/`ASIA` followed by 16 upper-case letters or digits.
    static func redactKeyIDs(_ run: [UInt8]) -> [UInt8] {
        guard run.count >= 20 else { return run }
        var out: [UInt8] = []
        var i = 0
        while i < run.count {
            if i + 20 <= run.count, Self.keyPrefixes.contains(Array(run[i..<(i + 4)])),
                run[(i + 4)..<(i + 20)].allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) })
            {
                out.append(contentsOf: marker.utf8)
                i += 20
                continue
            }
            out.append(run[i])
            i += 1
        }
        return out
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
