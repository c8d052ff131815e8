/// A request target split into decoded path components.
struct RequestTarget {
    var components: [String]
    /// Whether the path ends in `/` (a listing request); `/` itself counts.
    var trailingSlash: Bool

    /// Parses origin-form (`/latest/meta-data/`) and absolute-form (`http://host/latest/...`) targets.
    /// Returns nil for targets no HTTP server would accept (asterisk-form, control bytes).
    init?(_ target: String) {
        // Bytes, not Characters: the target is ASCII on the wire, and grapheme breaking was
        // 3.8 % of the data plane's CPU (perf, v1 GET at 16 connections).
        var utf8 = Substring(target).utf8
        if utf8.starts(with: "http://".utf8) || utf8.starts(with: "https://".utf8) {
            let afterScheme = utf8[utf8.index(utf8.firstIndex(of: UInt8(ascii: ":"))!, offsetBy: 3)...]
            utf8 = afterScheme.firstIndex(of: UInt8(ascii: "/")).map { afterScheme[$0...] } ?? "/".utf8[...]
        }
        guard utf8.first == UInt8(ascii: "/") else { return nil }
        if let q = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) { utf8 = utf8[..<q] }
        for b in utf8 where b < 0x20 || b == 0x7F { return nil }
        trailingSlash = utf8.last == UInt8(ascii: "/")
        // One pass and one allocation for the array (`split` then `map` made two arrays, the
        // first grown several times: 3 of a leaf GET's 22 allocations).
        let slash = UInt8(ascii: "/")
        let collapse = BehaviourChoices.collapseDuplicateSlashes
        var parts: [String] = []
        var slashes = 0
        for b in utf8 where b == slash { slashes += 1 }
        parts.reserveCapacity(slashes)
        var start = utf8.startIndex
        var i = start
        var first = true
        func segment(_ end: Substring.UTF8View.Index) {
            // Without collapsing, the empty segment before the leading slash is not a component.
            if collapse ? end > start : !first { parts.append(RequestTarget.percentDecode(String(Substring(utf8[start..<end])))) }
            first = false
        }
        while i < utf8.endIndex {
            if utf8[i] == slash {
                segment(i)
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        segment(utf8.endIndex)
        components = parts
    }

    /// Decodes `%XX`; an invalid escape is kept as it is (and so matches nothing).
    static func percentDecode(_ s: String) -> String {
        guard s.utf8.contains(37) else { return s }
        var out: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 65...70: c - 55
            case 97...102: c - 87
            default: nil
            }
        }
        while i < u.count {
            if u[i] == 37, i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-encodes what may not appear raw in a path.
    static func encode(_ path: String) -> String {
        var out = ""
        for b in path.utf8 {
            let safe = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
                || [45, 46, 95, 126, 47, 58, 64, 43, 61, 44].contains(b)
            if safe { out.unicodeScalars.append(Unicode.Scalar(b)) } else {
                let h = String(b, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" + h : h)
            }
        }
        return out
    }
}
