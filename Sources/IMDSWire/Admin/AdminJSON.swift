import Foundation

/// How admin API bodies go on the wire, for the server and the CLI alike: pretty-printed, keys
/// sorted, slashes not escaped, a final newline.
public enum AdminJSON {
    /// The bytes of `value` as the admin API sends them.
    public static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Every admin type encodes (strings, numbers, arrays); a failure would be a programming error.
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Array(data) + [10]
    }

    /// Decodes an admin API body.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
