/// A small XML element tree rendered the way EC2 renders responses (4-space indentation): what the
/// control plane writes (``XMLTree`` reads).
public indirect enum XMLNode: Sendable, Equatable {
    /// `<name>text</name>`
    case text(String, String)
    /// `<name>children</name>`, or `<name/>` without children.
    case element(String, [XMLNode])

    public static func leaf(_ name: String, _ value: String) -> XMLNode { .text(name, value) }
    public static func node(_ name: String, _ children: [XMLNode]) -> XMLNode { .element(name, children) }
    /// An EC2 list: `<name><item>…</item>…</name>`.
    public static func list(_ name: String, _ items: [[XMLNode]]) -> XMLNode { .element(name, items.map { .element("item", $0) }) }

    func render(into out: inout String, depth: Int) {
        let pad = String(repeating: "    ", count: depth)
        switch self {
        case .text(let name, let value):
            out += "\(pad)<\(name)>\(XML.escape(value))</\(name)>\n"
        case .element(let name, let children) where children.isEmpty:
            out += "\(pad)<\(name)/>\n"
        case .element(let name, let children):
            out += "\(pad)<\(name)>\n"
            for c in children { c.render(into: &out, depth: depth + 1) }
            out += "\(pad)</\(name)>\n"
        }
    }
}

/// Writing EC2 Query responses.
public enum XML {
    /// The EC2 API namespace of version 2016-11-15.
    public static let namespace = "http://ec2.amazonaws.com/doc/\(EC2Query.apiVersion)/"

    /// `<?xml …?>` + `<{Action}Response xmlns="…">` with `requestId` first, then `children`.
    public static func response(action: String, requestID: String, _ children: [XMLNode]) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<\(action)Response xmlns=\"\(namespace)\">\n"
        XMLNode.text("requestId", requestID).render(into: &out, depth: 1)
        for c in children { c.render(into: &out, depth: 1) }
        out += "</\(action)Response>"
        return out
    }

    /// Escapes text and attribute content (`& < > " '`), and replaces every character XML 1.0 does not
    /// allow (control characters other than tab, newline and carriage return; U+FFFE, U+FFFF) with
    /// U+FFFD, so that no input echoed in a message can make the document invalid.
    public static func escape(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { needsEscape($0) }) else { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&apos;".unicodeScalars)
            default: out.append(isXMLChar(u) ? u : "\u{FFFD}")
            }
        }
        return String(out)
    }

    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        u == "&" || u == "<" || u == ">" || u == "\"" || u == "'" || !isXMLChar(u)
    }

    /// XML 1.0's `Char` production (Swift scalars are never surrogates).
    static func isXMLChar(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x9, 0xA, 0xD, 0x20...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }
}
