/// The signatures EC2 publishes next to the instance identity document, each as bare base64
/// wrapped at 76 columns (no PEM armour, no trailing newline).
public struct IdentitySignatures: Sendable, Equatable {
    /// `dynamic/instance-identity/signature`: RSA-SHA256 over the document.
    public var signature: String
    /// `dynamic/instance-identity/rsa2048`: detached CMS (PKCS#7) signature, RSA-2048 with SHA-256.
    public var rsa2048: String
    /// `dynamic/instance-identity/pkcs7`: detached CMS (PKCS#7) signature.
    public var pkcs7: String

    public init(signature: String, rsa2048: String, pkcs7: String) {
        self.signature = signature
        self.rsa2048 = rsa2048
        self.pkcs7 = pkcs7
    }

    /// Base64 wrapped at 76 columns, as EC2 serves signatures.
    public static func wrap(_ base64: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(base64)
        while !rest.isEmpty {
            lines.append(rest.prefix(76))
            rest = rest.dropFirst(76)
        }
        return lines.joined(separator: "\n")
    }
}

/// Signs instance identity documents (implemented in the IMDSIdentity module with a real key and
/// certificate).
public protocol IdentityDocumentSigner: Sendable {
    func sign(document: [UInt8]) -> IdentitySignatures?
}
