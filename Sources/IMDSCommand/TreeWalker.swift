import Foundation
import IMDSClient

/// Walks IMDS directory listings into a JSON-compatible tree.
struct TreeWalker {
    let client: IMDSClient
    let includeCredentials: Bool

    /// Directories holding secrets (skipped unless asked for, as cloud-init skips security-credentials).
    static let secretDirectories = ["security-credentials", "security-credentials-extended"]

    func walkIfPresent(_ dir: String) async throws -> [String: Any]? {
        do {
            return try await walk(dir)
        } catch IMDSClientError.httpError(status: 404, _) {
            return nil
        }
    }

    func walk(_ dir: String) async throws -> [String: Any] {
        var out: [String: Any] = [:]
        for entry in try await client.list(dir) {
            if entry.hasSuffix("/") {
                let name = String(entry.dropLast())
                if !includeCredentials && Self.secretDirectories.contains(name) { continue }
                if let sub = try await walkIfPresent(dir + entry) { out[name] = sub }
                continue
            }
            var name = entry
            var resource = entry
            if let eq = entry.firstIndex(of: "="), Int(entry[..<eq]) != nil {
                // public-keys: "0=my-key" → my-key: the OpenSSH key at 0/openssh-key.
                name = String(entry[entry.index(after: eq)...])
                resource = "\(entry[..<eq])/openssh-key"
            }
            do {
                out[name] = Self.decodeLeaf(try await client.bytes(dir + resource))
            } catch IMDSClientError.httpError(status: 404, _) {
                continue
            }
        }
        return out
    }

    /// JSON objects and arrays are decoded, multi-line text becomes an array of lines, other text a string.
    static func decodeLeaf(_ bytes: [UInt8]) -> Any {
        guard let text = String(validating: bytes, as: UTF8.self) else { return JSONOutput.body(bytes) }
        if (text.hasPrefix("{") && text.hasSuffix("}")) || (text.hasPrefix("[") && text.hasSuffix("]")),
            let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        {
            return value
        }
        if text.contains("\n") { return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        return text
    }
}
