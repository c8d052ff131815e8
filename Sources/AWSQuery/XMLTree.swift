/// An XML element read from an AWS Query response (EC2's, STS's): name, text, children. The one
/// XML reader of the project, for the clients; the server writes with ``XMLNode``.
///
/// It reads what AWS services send — elements, text, the five predefined entities and numeric
/// character references, CDATA, comments, the XML declaration — and ignores attributes and
/// namespaces. Anything else, or a document that is not well nested, is nil.
///
/// ```swift
/// let root = XMLTree.parse(body)
/// let code = root?.first("Code")?.text     // anywhere below the root
/// let key = root?.at("AssumeRoleResult/Credentials/AccessKeyId")?.text
/// ```
public struct XMLTree: Sendable, Equatable {
    public var name: String
    /// The element's own text (concatenated, entities decoded), without its children's.
    public var text: String
    public var children: [XMLTree]

    public init(name: String, text: String = "", children: [XMLTree] = []) {
        self.name = name
        self.text = text
        self.children = children
    }

    /// The first child named `name`.
    public func child(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// The element at a `/`-separated path of child names.
    public func at(_ path: String) -> XMLTree? {
        var node: XMLTree? = self
        for part in path.split(separator: "/") { node = node?.child(String(part)) }
        return node
    }

    /// The first element named `name` below this one, depth first, in document order.
    public func first(_ name: String) -> XMLTree? {
        for c in children {
            if c.name == name { return c }
            if let found = c.first(name) { return found }
        }
        return nil
    }

    /// Every element named `name` below this one, depth first, in document order.
    public func all(_ name: String) -> [XMLTree] {
        children.flatMap { c in (c.name == name ? [c] : []) + c.all(name) }
    }

    /// Parses a document; nil when it is not well-formed as far as this reader checks.
    public static func parse(_ document: String) -> XMLTree? {
        var reader = Reader(Array(document.utf8))
        return reader.document()
    }

    /// Nesting deeper than this is refused (a response is a few levels deep).
    static let maxDepth = 64

    struct Reader {
        let bytes: [UInt8]
        var i = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> XMLTree? {
            var stack: [XMLTree] = []
            var root: XMLTree?
            while i < bytes.count {
                if bytes[i] != UInt8(ascii: "<") {
                    let start = i
                    while i < bytes.count && bytes[i] != UInt8(ascii: "<") { i += 1 }
                    let raw = bytes[start..<i]
                    if stack.isEmpty {
                        guard raw.allSatisfy(Self.isSpace) else { return nil }
                    } else {
                        guard let text = Self.decode(raw) else { return nil }
                        stack[stack.count - 1].text += text
                    }
                    continue
                }
                if starts("<?") {
                    guard skip(past: "?>") else { return nil }
                } else if starts("<!--") {
                    guard skip(past: "-->") else { return nil }
                } else if starts("<![CDATA[") {
                    i += 9
                    let start = i
                    guard skip(past: "]]>"), !stack.isEmpty else { return nil }
                    stack[stack.count - 1].text += String(decoding: bytes[start..<(i - 3)], as: UTF8.self)
                } else if starts("<!") {
                    guard skip(past: ">") else { return nil }  // a DOCTYPE (no internal subset)
                } else if starts("</") {
                    i += 2
                    guard let name = name(), skip(past: ">"), let open = stack.popLast(), open.name == name,
                          Self.close(open, into: &stack, root: &root)
                    else { return nil }
                } else {
                    i += 1
                    guard let name = name() else { return nil }
                    // Attributes are skipped (quoted values may hold `>`).
                    var selfClosing = false
                    while i < bytes.count && bytes[i] != UInt8(ascii: ">") {
                        let c = bytes[i]
                        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                            i += 1
                            while i < bytes.count && bytes[i] != c { i += 1 }
                        } else if c == UInt8(ascii: "/") {
                            selfClosing = true
                        } else if !Self.isSpace(c) {
                            selfClosing = false
                        }
                        i += 1
                    }
                    guard i < bytes.count else { return nil }
                    i += 1
                    let element = XMLTree(name: name)
                    if selfClosing {
                        guard Self.close(element, into: &stack, root: &root) else { return nil }
                    } else {
                        guard root == nil, stack.count < XMLTree.maxDepth else { return nil }
                        stack.append(element)
                    }
                }
            }
            guard stack.isEmpty else { return nil }
            return root
        }

        /// Adds a finished element to its parent, or makes it the root; false for a second root.
        static func close(_ element: XMLTree, into stack: inout [XMLTree], root: inout XMLTree?) -> Bool {
            if stack.isEmpty {
                guard root == nil else { return false }
                root = element
            } else {
                stack[stack.count - 1].children.append(element)
            }
            return true
        }

        func starts(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            return s.withUTF8Buffer { b in (0..<n).allSatisfy { bytes[i + $0] == b[$0] } }
        }

        /// Moves past the next `terminator`; false when there is none.
        mutating func skip(past terminator: StaticString) -> Bool {
            let n = terminator.utf8CodeUnitCount
            while i + n <= bytes.count {
                if starts(terminator) {
                    i += n
                    return true
                }
                i += 1
            }
            i = bytes.count
            return false
        }

        /// An element name (namespace prefix included).
        mutating func name() -> String? {
            let start = i
            while i < bytes.count, !Self.isSpace(bytes[i]), bytes[i] != UInt8(ascii: ">"), bytes[i] != UInt8(ascii: "/") { i += 1 }
            guard i > start else { return nil }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        static func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 10 || c == 13 }

        /// Text with `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` and `&#N;` / `&#xN;` decoded.
        static func decode(_ raw: ArraySlice<UInt8>) -> String? {
            guard raw.contains(UInt8(ascii: "&")) else { return String(decoding: raw, as: UTF8.self) }
            var out = ""
            var j = raw.startIndex
            while j < raw.endIndex {
                guard raw[j] == UInt8(ascii: "&") else {
                    let start = j
                    while j < raw.endIndex && raw[j] != UInt8(ascii: "&") { j += 1 }
                    out += String(decoding: raw[start..<j], as: UTF8.self)
                    continue
                }
                guard let semi = raw[j...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { return nil }
                let entity = String(decoding: raw[(j + 1)..<semi], as: UTF8.self)
                switch entity {
                case "amp": out += "&"
                case "lt": out += "<"
                case "gt": out += ">"
                case "quot": out += "\""
                case "apos": out += "'"
                default:
                    let hex = entity.hasPrefix("#x") || entity.hasPrefix("#X")
                    guard entity.hasPrefix("#"), let code = UInt32(entity.dropFirst(hex ? 2 : 1), radix: hex ? 16 : 10),
                          let scalar = Unicode.Scalar(code)
                    else { return nil }
                    out.unicodeScalars.append(scalar)
                }
                j = semi + 1
            }
            return out
        }
    }
}
