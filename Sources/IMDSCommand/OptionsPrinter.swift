import Foundation

/// Prints metadata options as `imds options` shows them: aligned rows, or JSON with the AWS CLI's key names.
enum OptionsPrinter {
    static let names: [String: (cli: String, json: String)] = [
        "state": ("state", "State"),
        "httpTokens": ("http-tokens", "HttpTokens"),
        "httpPutResponseHopLimit": ("http-put-response-hop-limit", "HttpPutResponseHopLimit"),
        "httpEndpoint": ("http-endpoint", "HttpEndpoint"),
        "httpProtocolIpv6": ("http-protocol-ipv6", "HttpProtocolIpv6"),
        "instanceMetadataTags": ("instance-metadata-tags", "InstanceMetadataTags"),
    ]

    static func print(_ id: String, _ options: [(name: String, value: String)], json: Bool) {
        if json {
            var fields = ["    \"InstanceId\": \"\(id)\""]
            for (n, v) in options {
                let key = names[n]?.json ?? n
                fields.append(n == "httpPutResponseHopLimit" && Int(v) != nil ? "    \"\(key)\": \(v)" : "    \"\(key)\": \"\(v)\"")
            }
            Swift.print("{\n" + fields.joined(separator: ",\n") + "\n}")
            return
        }
        let rows = [("instance-id", id)] + options.map { (names[$0.name]?.cli ?? $0.name, $0.value) }
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { Swift.print(k.padding(toLength: width + 2, withPad: " ", startingAt: 0) + v) }
    }
}
