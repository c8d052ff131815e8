import Foundation

/// Recognises the instance metadata endpoint and the IMDSv2 token header in source text.
enum MetadataText {
    /// Whether `text` names the metadata service: `169.254.169.254`, `fd00:ec2::254` (bare or in
    /// brackets) or the `instance-data` host name used in URLs (`http://instance-data/…`,
    /// `instance-data.ec2.internal`).
    static func mentionsEndpoint(_ text: String) -> Bool {
        endpointRange(in: text) != nil
    }

    /// The range of the first endpoint mention in `text`.
    static func endpointRange(in text: String) -> Range<String.Index>? {
        let lower = text.lowercased()
        var best: Range<String.Index>?
        func consider(_ r: Range<String.Index>?) {
            guard let r else { return }
            if best == nil || r.lowerBound < best!.lowerBound { best = r }
        }
        consider(findIPv4(in: lower))
        consider(find("fd00:ec2::254", in: lower, isBoundary: { c in !(c.isHexDigit || c == ":") }))
        consider(findInstanceData(in: lower))
        guard let best else { return nil }
        // Same offsets in `text` as in `lower` only when lowercasing kept the length; the texts we scan are
        // ASCII around these spots, so map by distance.
        let start = text.index(text.startIndex, offsetBy: lower.distance(from: lower.startIndex, to: best.lowerBound), limitedBy: text.endIndex) ?? text.endIndex
        let end = text.index(start, offsetBy: lower.distance(from: best.lowerBound, to: best.upperBound), limitedBy: text.endIndex) ?? text.endIndex
        return start..<end
    }

    private static func findIPv4(in text: String) -> Range<String.Index>? {
        find("169.254.169.254", in: text, isBoundary: { c in !(c.isNumber || c == ".") })
            .flatMap { r in
                // "169.254.169.254." followed by a digit would be another address; a trailing dot before a
                // path separator or end is fine.
                if r.upperBound < text.endIndex, text[r.upperBound] == "." {
                    let next = text.index(after: r.upperBound)
                    if next < text.endIndex, text[next].isNumber { return nil }
                }
                return r
            }
    }

    private static func findInstanceData(in text: String) -> Range<String.Index>? {
        var search = text.startIndex
        while let r = text.range(of: "instance-data", range: search..<text.endIndex) {
            search = r.upperBound
            let before = text[text.startIndex..<r.lowerBound]
            let after = text[r.upperBound...]
            let hostContext = before.hasSuffix("://") || after.hasPrefix(".ec2.internal")
            if !hostContext { continue }
            if let c = after.first, !(c == "/" || c == ":" || c == "." || c == "\"" || c == "'" || c.isWhitespace || c == "}" || c == ")") {
                continue
            }
            return r
        }
        return nil
    }

    private static func find(_ needle: String, in text: String, isBoundary: (Character) -> Bool) -> Range<String.Index>? {
        var search = text.startIndex
        while let r = text.range(of: needle, range: search..<text.endIndex) {
            search = r.upperBound
            if r.lowerBound > text.startIndex, !isBoundary(text[text.index(before: r.lowerBound)]) { continue }
            if r.upperBound < text.endIndex, !isBoundary(text[r.upperBound]), text[r.upperBound] != "." { continue }
            return r
        }
        return nil
    }

    /// Whether `text` passes the session token: the header name `X-aws-ec2-metadata-token` (any case)
    /// not followed by `-` (which would make it the `…-ttl-seconds` header of the token PUT).
    static func mentionsTokenHeader(_ text: String) -> Bool {
        let lower = text.lowercased()
        var search = lower.startIndex
        while let r = lower.range(of: "x-aws-ec2-metadata-token", range: search..<lower.endIndex) {
            search = r.upperBound
            if r.upperBound == lower.endIndex { return true }
            let c = lower[r.upperBound]
            if c == "-" || c.isLetter || c.isNumber || c == "_" { continue }
            return true
        }
        return false
    }

    /// Whether `text` is (or builds) a request for a session token.
    static func mentionsTokenPath(_ text: String) -> Bool {
        text.lowercased().contains("/api/token")
    }
}

/// Variables assigned in one file, and which of them hold the metadata address or the token header.
///
/// A variable holds the address when any assignment's value mentions it or refers to another variable
/// that does, unless the value is the *result* of a request (`ID=$(curl …)`, `id = requests.get(…).text`):
/// that holds a response, not an address.
struct VariableTable: Sendable {
    struct Assignment: Sendable {
        var name: String
        var value: String
        var line: Int
        var isRequestResult: Bool
    }

    private(set) var assignments: [Assignment] = []
    private(set) var endpointVars: Set<String> = []
    private(set) var tokenHeaderVars: Set<String> = []
    private(set) var tokenPathVars: Set<String> = []
    /// Statements that mutate a variable (`req.add_header(…)`, `$wc.Headers.Add(…)`): the variable
    /// carries the token header when the statement mentions it, directly or through a variable.
    private var mutations: [(name: String, text: String)] = []
    let references: @Sendable (String) -> [String]
    let caseInsensitive: Bool

    init(caseInsensitive: Bool = false, references: @escaping @Sendable (String) -> [String]) {
        self.caseInsensitive = caseInsensitive
        self.references = references
    }

    func key(_ name: String) -> String { caseInsensitive ? name.lowercased() : name }

    mutating func assign(_ name: String, value: String, line: Int, isRequestResult: Bool) {
        assignments.append(Assignment(name: key(name), value: value, line: line, isRequestResult: isRequestResult))
    }

    mutating func mutation(of name: String, text: String) { mutations.append((key(name), text)) }

    /// Computes the variable sets; call once after every assignment is recorded.
    mutating func resolve() {
        var endpoint: Set<String> = []
        var header: Set<String> = []
        var path: Set<String> = []
        var changed = true
        var rounds = 0
        while changed && rounds < 20 {
            changed = false
            rounds += 1
            for m in mutations where !header.contains(m.name) {
                if MetadataText.mentionsTokenHeader(m.text) || references(m.text).map(key).contains(where: header.contains) {
                    header.insert(m.name)
                    changed = true
                }
            }
            for a in assignments {
                let refs = references(a.value).map(key)
                if !a.isRequestResult, !endpoint.contains(a.name),
                    MetadataText.mentionsEndpoint(a.value) || refs.contains(where: endpoint.contains)
                {
                    endpoint.insert(a.name)
                    changed = true
                }
                if !header.contains(a.name), MetadataText.mentionsTokenHeader(a.value) || refs.contains(where: header.contains) {
                    header.insert(a.name)
                    changed = true
                }
                if !a.isRequestResult, !path.contains(a.name), MetadataText.mentionsTokenPath(a.value) || refs.contains(where: path.contains) {
                    path.insert(a.name)
                    changed = true
                }
            }
        }
        endpointVars = endpoint
        tokenHeaderVars = header
        tokenPathVars = path
    }

    func isEndpoint(_ name: String) -> Bool { endpointVars.contains(key(name)) }
    func isTokenHeader(_ name: String) -> Bool { tokenHeaderVars.contains(key(name)) }
    func isTokenPath(_ name: String) -> Bool { tokenPathVars.contains(key(name)) }

    /// The last address-holding value assigned to `name`.
    func value(of name: String) -> String? {
        let k = key(name)
        return assignments.last(where: { $0.name == k && !$0.isRequestResult && endpointVars.contains(k) })?.value
            ?? assignments.last(where: { $0.name == k && !$0.isRequestResult })?.value
    }

    /// Facts about a piece of code (a command's arguments, a call's arguments and receiver).
    struct Facts {
        var endpoint: Bool
        var token: Bool
        var tokenPath: Bool
    }

    func facts(of text: String, extraNames: [String] = []) -> Facts {
        let refs = (references(text) + extraNames).map(key)
        return Facts(
            endpoint: MetadataText.mentionsEndpoint(text) || refs.contains(where: endpointVars.contains),
            token: MetadataText.mentionsTokenHeader(text) || refs.contains(where: tokenHeaderVars.contains),
            tokenPath: MetadataText.mentionsTokenPath(text) || refs.contains(where: tokenPathVars.contains))
    }
}
