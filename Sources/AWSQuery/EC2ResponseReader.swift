/// Reads the values `imds options` needs out of EC2 XML responses (with ``XMLTree``, the project's
/// one XML reader).
public enum EC2ResponseReader {
    /// The error code and message of a `<Response><Errors><Error>` body (any AWS Query error body:
    /// STS nests it as `<ErrorResponse><Error>`), or nil.
    public static func error(_ xml: String) -> (code: String, message: String)? {
        guard let root = XMLTree.parse(xml), let error = root.name == "Error" ? root : root.first("Error"),
              let code = error.child("Code")?.text
        else { return nil }
        return (code, error.child("Message")?.text ?? "")
    }

    /// The metadata-option fields, in this order, as the CLI prints them.
    static let optionFields = ["state", "httpTokens", "httpPutResponseHopLimit", "httpEndpoint", "httpProtocolIpv6", "instanceMetadataTags"]

    /// Each instance's `<metadataOptions>` (DescribeInstances) or the `<instanceMetadataOptions>`
    /// (ModifyInstanceMetadataOptions) as `(element name, value)` pairs, with the instance id.
    public static func metadataOptions(_ xml: String) -> [(instanceID: String, options: [(name: String, value: String)])] {
        guard let root = XMLTree.parse(xml) else { return [] }
        func fields(_ block: XMLTree) -> [(name: String, value: String)] {
            optionFields.compactMap { f in block.child(f).map { (f, $0.text) } }
        }
        if let block = root.child("instanceMetadataOptions"), let id = root.child("instanceId")?.text {
            return [(id, fields(block))]
        }
        return root.all("instancesSet").flatMap(\.children).compactMap { instance in
            guard let id = instance.child("instanceId")?.text, let block = instance.child("metadataOptions") else { return nil }
            return (id, fields(block))
        }
    }
}
