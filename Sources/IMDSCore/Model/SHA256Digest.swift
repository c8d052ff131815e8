import Crypto

/// A thin wrapper so model code does not import Crypto everywhere.
enum SHA256Digest {
    static func of(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
