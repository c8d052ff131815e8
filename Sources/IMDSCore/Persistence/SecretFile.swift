import Crypto
import Foundation

/// The server secret (it keys session tokens and generated credentials), kept in the state
/// directory so that tokens stay valid across restarts.
public enum SecretFile {
    public static let fileName = "secret.key"

    /// Reads `<dir>/secret.key`, creating it (32 random bytes, mode 0600) if absent.
    public static func loadOrCreate(directory: String) throws -> SymmetricKey {
        let path = (directory as NSString).appendingPathComponent(fileName)
        if let data = FileManager.default.contents(atPath: path) {
            guard data.count == 32 else {
                throw ConfigError(file: path, path: nil, line: nil,
                                  message: "expected 32 bytes, found \(data.count); delete it to create a new secret (tokens issued so far become invalid)")
            }
            return SymmetricKey(data: data)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = SymmetricKey(size: .bits256)
        try AtomicFile.write(key.withUnsafeBytes { Array($0) }, to: path)
        return key
    }
}
