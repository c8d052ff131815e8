/// The parameters of an AWS Query request (`Action=…&Version=…&InstanceId.1=…`): decoded from an
/// `application/x-www-form-urlencoded` body and/or the query string by the server, encoded into a
/// body by the clients (``formEncoded``).
///
/// ```swift
/// let body = QueryParameters([("Action", "DescribeInstances"), ("Version", EC2Query.apiVersion)]).formEncoded
/// ```
public struct QueryParameters: Sendable, Equatable {
    /// Name/value pairs in the order they arrived (the first occurrence of a name wins on lookup).
    public private(set) var pairs: [(name: String, value: String)]

    public init(_ pairs: [(name: String, value: String)] = []) { self.pairs = pairs }

    public static func == (a: QueryParameters, b: QueryParameters) -> Bool {
        a.pairs.map { [$0.name, $0.value] } == b.pairs.map { [$0.name, $0.value] }
    }

    /// Decodes `a=1&b=x+y&c=%2F`; nil when a `%` escape is malformed or the bytes are not UTF-8.
    public static func parse(form text: Substring) -> QueryParameters? {
        var out: [(name: String, value: String)] = []
        for part in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(kv[0]) else { return nil }
            let value = kv.count > 1 ? decode(kv[1]) : ""
            guard let value else { return nil }
            if name.isEmpty { continue }
            out.append((name, value))
        }
        return QueryParameters(out)
    }

    /// Form decoding of one component: `+` is a space, `%XX` a byte.
    static func decode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let c = it.next() {
            switch c {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = it.next(), let l = it.next(), let hv = hex(h), let lv = hex(l) else { return nil }
                bytes.append(hv << 4 | lv)
            default: bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }

    /// The first value of `name`.
    public subscript(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

    public var names: [String] { pairs.map(\.name) }

    public mutating func append(contentsOf other: QueryParameters) { pairs += other.pairs }

    /// `name=value&…` in order, each component percent-encoded as SigV4 wants it (unreserved
    /// characters kept), so the body a client signs is the body it sends.
    public var formEncoded: String {
        pairs.map { SigV4.uriEncode($0.name) + "=" + SigV4.uriEncode($0.value) }.joined(separator: "&")
    }

    /// Values of a 1-based list `Prefix.N` (`InstanceId.1`, `InstanceId.2`), ordered by N.
    public func list(_ prefix: String) -> [String] {
        indexed(prefix).map { $0.value }
    }

    /// `(N, value)` for every `Prefix.N`, ordered by N.
    func indexed(_ prefix: String) -> [(index: Int, value: String)] {
        var seen = Set<Int>()
        var out: [(index: Int, value: String)] = []
        let p = prefix + "."
        for (name, value) in pairs where name.hasPrefix(p) {
            guard let n = Int(name.dropFirst(p.count)), n >= 1, !seen.contains(n) else { continue }
            seen.insert(n)
            out.append((n, value))
        }
        return out.sorted { $0.index < $1.index }
    }

    /// For every `Prefix.N.Field` (N ≥ 1), ascending by N: its fields in the order they arrived.
    /// One pass over the parameters, whatever their number.
    func structs(_ prefix: String) -> [(index: Int, fields: [(name: Substring, value: String)])] {
        let p = prefix + "."
        var byIndex: [Int: [(name: Substring, value: String)]] = [:]
        for (name, value) in pairs where name.hasPrefix(p) {
            let rest = name.dropFirst(p.count)
            guard let dot = rest.firstIndex(of: "."), let n = Int(rest[..<dot]), n >= 1 else { continue }
            byIndex[n, default: []].append((rest[rest.index(after: dot)...], value))
        }
        return byIndex.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`, in order of N (values in order of M; the first of a name wins).
    public var filters: [(name: String?, values: [String])] {
        structs("Filter").map { s in
            var seen = Set<Int>()
            var values: [(index: Int, value: String)] = []
            for (field, value) in s.fields where field.hasPrefix("Value.") {
                if let m = Int(field.dropFirst(6)), m >= 1, seen.insert(m).inserted { values.append((m, value)) }
            }
            return (s.fields.first { $0.name == "Name" }?.value, values.sorted { $0.index < $1.index }.map(\.value))
        }
    }

    /// `Tag.N.Key` / `Tag.N.Value`, in order of N (`value` nil when absent; the first of a name wins).
    public var tags: [(key: String?, value: String?)] {
        structs("Tag").map { s in (s.fields.first { $0.name == "Key" }?.value, s.fields.first { $0.name == "Value" }?.value) }
    }
}
