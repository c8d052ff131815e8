import Crypto
import Foundation

/// Issues and checks IMDSv2 session tokens.
///
/// A token is 40 bytes, sent as 56 characters of URL-safe base64 with `==` padding, like EC2's:
///
/// | bytes | content |
/// |---|---|
/// | 0–3 | `01 00 04 00` (so tokens start `AQAEA`, as EC2's HTTP/1.1 variant's do) |
/// | 4–9 | expiry, milliseconds since 1970, big-endian |
/// | 10–11 | requested TTL in seconds |
/// | 12–15 | random nonce |
/// | 16–39 | HMAC-SHA256 over bytes 0–15, the instance id and the key generation, truncated to 192 bits |
///
/// Nothing is stored per token. A token is bound to its instance (the MAC covers the instance id),
/// cannot be altered without the key, and is compared in constant time.
public struct TokenAuthority: Sendable {
    public static let minTTL = 1
    public static let maxTTL = 21600
    public static let tokenLength = 56
    static let magic: [UInt8] = [0x01, 0x00, 0x04, 0x00]

    private let key: SymmetricKey

    /// - Parameter secret: the server secret; tokens survive a restart when it is persisted.
    public init(secret: SymmetricKey) {
        self.key = SymmetricKey(
            data: HKDF<SHA256>.deriveKey(
                inputKeyMaterial: secret, info: Array("imds session tokens".utf8), outputByteCount: 32))
    }

    /// Why a token was refused.
    public enum Rejection: String, Error, Sendable, Equatable, CaseIterable {
        case malformed
        case badSignature = "bad_signature"
        case expired
    }

    /// A new token for `instanceID` valid for `ttl` seconds from `now`.
    /// - Parameter generation: bumping it invalidates every earlier token of the instance.
    public func issue(
        instanceID: String, ttl: Int, now: Date, generation: UInt64 = 0,
        nonce: UInt32 = UInt32.random(in: .min ... .max)
    ) -> String {
        var bytes = Self.magic
        let expiry = UInt64((now.timeIntervalSince1970 * 1000).rounded(.down)) + UInt64(ttl) * 1000
        for shift in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: expiry >> UInt64(shift))) }
        bytes.append(UInt8(truncatingIfNeeded: ttl >> 8))
        bytes.append(UInt8(truncatingIfNeeded: ttl))
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: nonce >> UInt32(shift))) }
        bytes.append(contentsOf: tag(bytes, instanceID: instanceID, generation: generation))
        return Self.base64URL(bytes)
    }

    /// Checks a token; on success returns the whole seconds it has left.
    public func validate(
        _ token: String, instanceID: String, now: Date, generation: UInt64 = 0
    ) -> Result<Int, Rejection> {
        guard token.utf8.count == Self.tokenLength, let bytes = Self.decodeBase64URL(token), bytes.count == 40,
            Array(bytes[0..<4]) == Self.magic,
            // Refuse non-canonical encodings (other unused bits in the last character).
            Self.base64URL(bytes) == token
        else { return .failure(.malformed) }
        let expected = tag(Array(bytes[0..<16]), instanceID: instanceID, generation: generation)
        // Constant-time comparison of the 24-byte tags.
        var diff: UInt8 = 0
        for i in 0..<24 { diff |= expected[i] ^ bytes[16 + i] }
        guard diff == 0 else { return .failure(.badSignature) }
        var expiry: UInt64 = 0
        for i in 4..<10 { expiry = expiry << 8 | UInt64(bytes[i]) }
        let nowMillis = UInt64(max(0, (now.timeIntervalSince1970 * 1000).rounded(.down)))
        guard nowMillis < expiry else { return .failure(.expired) }
        return .success(Int((expiry - nowMillis) / 1000))
    }

    private func tag(_ header: [UInt8], instanceID: String, generation: UInt64) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: header)
        hmac.update(data: Array(instanceID.utf8))
        withUnsafeBytes(of: generation.bigEndian) { hmac.update(data: Array($0)) }
        return Array(Array(hmac.finalize()).prefix(24))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        s = s.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        return s
    }

    static func decodeBase64URL(_ text: String) -> [UInt8]? {
        // Only the URL-safe alphabet and `=` padding are valid in a token.
        for c in text.utf8 {
            let ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 || c == 95 || c == 61
            if !ok { return nil }
        }
        let std = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        return Data(base64Encoded: std).map(Array.init)
    }
}
