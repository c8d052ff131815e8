import Crypto
import Foundation
import Synchronization

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

    /// HMAC state already keyed with the derived token key; each token copies it (a value type),
    /// which saves the key schedule on every issue and validate.
    private let keyed: HMAC<SHA256>
    /// Tokens this authority accepted lately (see ``ValidationMemo``).
    private let memo = ValidationMemo()

    /// - Parameter secret: the server secret; tokens survive a restart when it is persisted.
    public init(secret: SymmetricKey) {
        let key = SymmetricKey(
            data: HKDF<SHA256>.deriveKey(
                inputKeyMaterial: secret, info: Array("imds session tokens".utf8), outputByteCount: 32))
        self.keyed = HMAC<SHA256>(key: key)
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
        // A client sends the same token until it nears expiry: a token accepted before for this
        // instance and generation needs no second HMAC (the expiry is still checked at `now`).
        let nowMillis = UInt64(max(0, (now.timeIntervalSince1970 * 1000).rounded(.down)))
        if let expiry = memo.expiry(of: token, instanceID: instanceID, generation: generation) {
            guard nowMillis < expiry else { return .failure(.expired) }
            return .success(Int((expiry - nowMillis) / 1000))
        }
        let result = decodeAndCheck(token, instanceID: instanceID, generation: generation)
        guard case .success(let expiry) = result else { return .failure(result.failure!) }
        memo.insert(token, instanceID: instanceID, generation: generation, expiry: expiry)
        guard nowMillis < expiry else { return .failure(.expired) }
        return .success(Int((expiry - nowMillis) / 1000))
    }

    /// Decodes a token and checks its MAC; its expiry (milliseconds since 1970) when genuine.
    private func decodeAndCheck(_ token: String, instanceID: String, generation: UInt64) -> Result<UInt64, Rejection> {
        // Decoded into a buffer on the stack: this runs on every IMDSv2 request.
        var token = token
        return token.withUTF8 { text in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { bytes in
                guard Self.decodeToken(text, into: bytes), bytes[0] == Self.magic[0], bytes[1] == Self.magic[1],
                    bytes[2] == Self.magic[2], bytes[3] == Self.magic[3]
                else { return .failure(.malformed) }
                var hmac = keyed
                hmac.update(data: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[0..<16]))
                var id = instanceID
                id.withUTF8 { hmac.update(data: UnsafeRawBufferPointer($0)) }
                withUnsafeBytes(of: generation.bigEndian) { hmac.update(data: $0) }
                // Constant-time comparison of the 24-byte tags.
                let diff = hmac.finalize().withUnsafeBytes { expected -> UInt8 in
                    var diff: UInt8 = 0
                    for i in 0..<24 { diff |= expected[i] ^ bytes[16 + i] }
                    return diff
                }
                guard diff == 0 else { return .failure(.badSignature) }
                var expiry: UInt64 = 0
                for i in 4..<10 { expiry = expiry << 8 | UInt64(bytes[i]) }
                return .success(expiry)
            }
        }
    }

    /// Decodes a token's 56 characters (URL-safe base64, `==` padding) into its 40 bytes; false for
    /// anything else, non-canonical encodings included (unused bits set in the last character),
    /// exactly the strings ``base64URL(_:)`` produces for 40 bytes.
    static func decodeToken(_ text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        guard text.count == tokenLength, out.count >= 40, text[54] == 61, text[55] == 61 else { return false }
        var o = 0
        var i = 0
        while i < 52 {
            guard let a = sextet(text[i]), let b = sextet(text[i + 1]), let c = sextet(text[i + 2]), let d = sextet(text[i + 3])
            else { return false }
            let n = a << 18 | b << 12 | c << 6 | d
            out[o] = UInt8(n >> 16 & 255)
            out[o + 1] = UInt8(n >> 8 & 255)
            out[o + 2] = UInt8(n & 255)
            o += 3
            i += 4
        }
        guard let a = sextet(text[52]), let b = sextet(text[53]), b & 15 == 0 else { return false }
        out[39] = UInt8((a << 2 | b >> 4) & 255)
        return true
    }

    /// The value of one URL-safe base64 character.
    @inline(__always)
    private static func sextet(_ c: UInt8) -> UInt32? {
        switch c {
        case 65...90: UInt32(c - 65)
        case 97...122: UInt32(c - 71)
        case 48...57: UInt32(c + 4)
        case 45: 62
        case 95: 63
        default: nil
        }
    }

    private func tag(_ header: [UInt8], instanceID: String, generation: UInt64) -> [UInt8] {
        var hmac = keyed
        hmac.update(data: header)
        var id = instanceID
        id.withUTF8 { hmac.update(data: UnsafeRawBufferPointer($0)) }
        withUnsafeBytes(of: generation.bigEndian) { hmac.update(data: $0) }
        return hmac.finalize().withUnsafeBytes { Array($0.prefix(24)) }
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// URL-safe base64 with `=` padding (no Foundation: this runs on every request).
    static func base64URL(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(n >> 18)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], 61, 61]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}

/// The last few tokens a ``TokenAuthority`` accepted, with what they were accepted for.
///
/// Looked up by a hash with the process's random seed, so how long a lookup takes says nothing
/// about how close a guess is to a real token; the whole token is compared only when the hashes
/// match. Holds only tokens whose MAC was checked; bounded (``capacity`` entries, oldest replaced).
final class ValidationMemo: Sendable {
    static let capacity = 16

    private struct Entry {
        var hash: Int
        var token: String
        var instanceID: String
        var generation: UInt64
        var expiry: UInt64
    }

    private struct State {
        var entries: [Entry] = []
        var next = 0
    }

    private let state = Mutex(State())

    /// The expiry of `token` when it was accepted for this instance and generation.
    func expiry(of token: String, instanceID: String, generation: UInt64) -> UInt64? {
        let hash = token.hashValue
        return state.withLock { s in
            for e in s.entries where e.hash == hash && e.generation == generation && e.token == token && e.instanceID == instanceID {
                return e.expiry
            }
            return nil
        }
    }

    func insert(_ token: String, instanceID: String, generation: UInt64, expiry: UInt64) {
        let entry = Entry(hash: token.hashValue, token: token, instanceID: instanceID, generation: generation, expiry: expiry)
        state.withLock { s in
            if s.entries.count < Self.capacity {
                s.entries.append(entry)
            } else {
                s.entries[s.next] = entry
                s.next = (s.next + 1) % Self.capacity
            }
        }
    }
}
