import Foundation

/// Reads the few values `imds options` needs out of an EC2 XML response. It only understands the
/// flat, well-known shapes this control plane sends (no attributes on the elements it reads, no CDATA).
public enum EC2ResponseReader {
    /// The error code and message of a `<Response><Errors><Error>` body, or nil.
    public static func error(_ xml: String) -> (code: String, message: String)? {
        guard let code = text(of: "Code", in: xml[...]) else { return nil }
        return (code, text(of: "Message", in: xml[...]) ?? "")
    }

    /// The `<metadataOptions>` (DescribeInstances) or `<instanceMetadataOptions>` (Modify) block as
    /// `(element name, value)` pairs in document order, with the instance id.
    public static func metadataOptions(_ xml: String) -> [(instanceID: String, options: [(name: String, value: String)])] {
        var out: [(instanceID: String, options: [(name: String, value: String)])] = []
        var rest = xml[...]
        while let idRange = rest.range(of: "<instanceId>") {
            let afterID = rest[idRange.upperBound...]
            guard let id = text(of: "instanceId", in: rest) else { break }
            guard let block = element(named: "metadataOptions", in: afterID) ?? element(named: "instanceMetadataOptions", in: afterID)
            else { break }
            let fields = ["state", "httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "httpProtocolIpv6", "instanceMetadataTags"]
            out.append((id, fields.compactMap { f in text(of: f, in: block.content).map { (f, $0) } }))
            rest = afterID[block.end...]
        }
        return out
    }

    /// The text of the first `<name>…</name>` in `xml`, unescaped.
    static func text(of name: String, in xml: Substring) -> String? {
        element(named: name, in: xml).map { unescape(String($0.content)) }
    }

    static func element(named name: String, in xml: Substring) -> (content: Substring, end: Substring.Index)? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml[open.upperBound...].range(of: "</\(name)>") else { return nil }
        return (xml[open.upperBound..<close.lowerBound], close.upperBound)
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        return s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
