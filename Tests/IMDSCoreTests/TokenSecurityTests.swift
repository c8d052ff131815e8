import Crypto
import Foundation
@testable import IMDSCore
import Testing

/// A million forged tokens, none accepted (issue 9). `TokenAuthority.validate` is called directly:
/// through the engine the same million would take minutes in a debug build.
///
/// Every family is generated from a fixed seed, so a failure reproduces; each family is sized so
/// that the total is 1,000,000 validations.
@Suite("Token security")
struct TokenSecurityTests {
    static let instance = "i-0abc1234def567890"
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let authority = TokenAuthority(secret: SymmetricKey(data: Array(repeating: UInt8(7), count: 32)))
    static let otherKey = TokenAuthority(secret: SymmetricKey(data: Array(repeating: UInt8(8), count: 32)))

    /// SplitMix64: small, fast and deterministic.
    struct Rng: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Counts validations and the ones that were (wrongly) accepted.
    struct Tally {
        var checked = 0
        var accepted: [String] = []
        mutating func check(_ token: String, instanceID: String = instance, generation: UInt64 = 0) {
            checked += 1
            if case .success = authority.validate(token, instanceID: instanceID, now: now, generation: generation) {
                if accepted.count < 5 { accepted.append(token) }
            }
        }
    }

    static func raw(_ token: String) -> [UInt8] { TokenAuthority.decodeBase64URL(token)! }

    /// A token accepted once is remembered (no second MAC), but only for the instance and key
    /// generation it was accepted for, and its expiry is still checked against each `now`.
    @Test func aRememberedTokenIsStillBoundToItsInstanceGenerationAndExpiry() {
        let authority = TokenAuthority(secret: SymmetricKey(data: Array(repeating: UInt8(5), count: 32)))
        let token = authority.issue(instanceID: Self.instance, ttl: 60, now: Self.now, generation: 3, nonce: 1)
        for _ in 0..<3 {
            #expect(authority.validate(token, instanceID: Self.instance, now: Self.now, generation: 3) == .success(60))
        }
        #expect(authority.validate(token, instanceID: Self.instance, now: Self.now.addingTimeInterval(30.5), generation: 3) == .success(29))
        #expect(authority.validate(token, instanceID: Self.instance, now: Self.now.addingTimeInterval(60), generation: 3) == .failure(.expired))
        #expect(authority.validate(token, instanceID: "i-0000000000000000f", now: Self.now, generation: 3) == .failure(.badSignature))
        #expect(authority.validate(token, instanceID: Self.instance, now: Self.now, generation: 4) == .failure(.badSignature))
        // Another authority (another secret) never sees this one's memo.
        #expect(Self.otherKey.validate(token, instanceID: Self.instance, now: Self.now, generation: 3) == .failure(.badSignature))
        // More tokens than the memo holds: every one still validates, the first again after eviction.
        let many = (0..<(ValidationMemo.capacity * 2)).map {
            authority.issue(instanceID: Self.instance, ttl: 600, now: Self.now, generation: 3, nonce: UInt32($0 + 10))
        }
        for t in many { #expect(authority.validate(t, instanceID: Self.instance, now: Self.now, generation: 3) == .success(600)) }
        #expect(authority.validate(token, instanceID: Self.instance, now: Self.now, generation: 3) == .success(60))
    }

    /// The stack decoder `validate` uses accepts exactly the strings the reference rule accepts:
    /// 56 characters that decode to 40 bytes and re-encode to themselves (canonical base64).
    @Test func tokenDecoderMatchesTheReferenceRule() {
        var rng = Rng(state: 0xDEC0_DE)
        let valid = Self.authority.issue(instanceID: Self.instance, ttl: 21600, now: Self.now, nonce: 42)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.".utf8)
        var mismatches: [String] = []
        var acceptedCount = 0
        for round in 0..<50_000 {
            var u = Array(valid.utf8)
            // Mutate one to three characters anywhere, the padding and the last data characters most often.
            for _ in 0...(round % 3) {
                let at = round % 4 == 0 ? Int.random(in: 50..<56, using: &rng) : Int.random(in: 0..<56, using: &rng)
                u[at] = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
            }
            if round % 97 == 0 { u.removeLast() }
            let text = String(decoding: u, as: UTF8.self)
            let reference = text.utf8.count == TokenAuthority.tokenLength
                && TokenAuthority.decodeBase64URL(text).map { $0.count == 40 && TokenAuthority.base64URL($0) == text } == true
            var copy = text
            let decoded = copy.withUTF8 { t in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { out -> [UInt8]? in
                    TokenAuthority.decodeToken(t, into: out) ? Array(out) : nil
                }
            }
            if reference { acceptedCount += 1 }
            if reference != (decoded != nil) || (reference && decoded != TokenAuthority.decodeBase64URL(text)) {
                if mismatches.count < 5 { mismatches.append(text) }
            }
        }
        #expect(mismatches.isEmpty, "decoders disagree on \(mismatches)")
        #expect(acceptedCount > 1000, "the mutations should leave many canonical tokens")
    }

    @Test func aMillionForgedTokensAreAllRejected() {
        var rng = Rng(state: 0x1D5_0009)
        var t = Tally()
        let valid = Self.authority.issue(instanceID: Self.instance, ttl: 21600, now: Self.now, nonce: 42)
        let validBytes = Self.raw(valid)
        // The control: the unmodified token is accepted, so a rejection below means something.
        guard case .success = Self.authority.validate(valid, instanceID: Self.instance, now: Self.now) else {
            Issue.record("the genuine token was refused")
            return
        }

        // 1. Random well-formed tokens (right magic and length, canonical base64): 300,000 HMAC checks.
        for _ in 0..<300_000 {
            var b = TokenAuthority.magic
            for _ in 0..<36 { b.append(UInt8.random(in: 0...255, using: &rng)) }
            t.check(TokenAuthority.base64URL(b))
        }
        // 2. Random strings over the base64url alphabet and random bytes: 100,000.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.".utf8)
        for i in 0..<100_000 {
            let length = i % 2 == 0 ? 56 : Int.random(in: 0...80, using: &rng)
            let chars = (0..<length).map { _ in
                i % 4 == 1 ? UInt8.random(in: 0...255, using: &rng) : alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
            }
            t.check(String(decoding: chars, as: UTF8.self))
        }
        // 3. Every single-bit flip of the genuine token's bytes, and random multi-bit flips: 300,000.
        for bit in 0..<(40 * 8) {
            var b = validBytes
            b[bit / 8] ^= 1 << UInt8(bit % 8)
            t.check(TokenAuthority.base64URL(b))
        }
        for _ in 0..<(300_000 - 320) {
            var b = validBytes
            for _ in 0..<Int.random(in: 2...6, using: &rng) {
                b[Int.random(in: 0..<40, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            // Two flips of the same byte can cancel out; such a "mutation" is the genuine token.
            if b == validBytes { b[39] ^= 0x80 }
            t.check(TokenAuthority.base64URL(b))
        }
        // 4. Truncations, extensions and character swaps of the genuine token's text: 100,000.
        let text = Array(valid.utf8)
        for n in 0..<text.count { t.check(String(decoding: text[0..<n], as: UTF8.self)) }
        for i in 0..<(100_000 - text.count) {
            var s = text
            switch i % 3 {
            case 0: s.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)])
            case 1: s.insert(alphabet[Int.random(in: 0..<64, using: &rng)], at: Int.random(in: 0..<s.count, using: &rng))
            default: s[Int.random(in: 0..<s.count, using: &rng)] = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
            }
            if s != text { t.check(String(decoding: s, as: UTF8.self)) } else { t.checked += 1 }
        }
        // 5. Genuine tokens of other instances (same key): 100,000.
        for i in 0..<100_000 {
            let other = "i-1" + String(i, radix: 16)  // never the served instance (i-0…)
            t.check(Self.authority.issue(instanceID: other, ttl: 21600, now: Self.now, nonce: rng.next32()))
        }
        // 6. Tokens signed with another key, live or expired and re-signed: 60,000.
        for i in 0..<60_000 {
            let issued = i % 2 == 0 ? Self.now : Self.now.addingTimeInterval(-30_000)
            t.check(Self.otherKey.issue(instanceID: Self.instance, ttl: 21600, now: issued, nonce: rng.next32()))
        }
        // 7. Genuine but expired, and genuine but from an invalidated generation: 40,000.
        for i in 0..<40_000 {
            if i % 2 == 0 {
                let issued = Self.now.addingTimeInterval(-Double(Int.random(in: 2...21600, using: &rng)) - 21600)
                t.check(Self.authority.issue(instanceID: Self.instance, ttl: Int.random(in: 1...21600, using: &rng), now: issued, nonce: rng.next32()))
            } else {
                t.check(Self.authority.issue(instanceID: Self.instance, ttl: 21600, now: Self.now, generation: 0, nonce: rng.next32()),
                        generation: 1)
            }
        }
        #expect(t.checked == 1_000_000)
        #expect(t.accepted.isEmpty, "accepted forgeries: \(t.accepted)")
    }

    /// An expiry pushed forward without the key is a bad signature, not extra lifetime.
    @Test func extendingTheExpiryBreaksTheSignature() {
        let token = Self.authority.issue(instanceID: Self.instance, ttl: 1, now: Self.now.addingTimeInterval(-10), nonce: 1)
        var b = Self.raw(token)
        b[8] &+= 1  // + 256 ms ... up to the next byte
        b[7] &+= 1  // + 65 s
        let forged = TokenAuthority.base64URL(b)
        #expect(Self.authority.validate(forged, instanceID: Self.instance, now: Self.now) == .failure(.badSignature))
        #expect(Self.authority.validate(token, instanceID: Self.instance, now: Self.now) == .failure(.expired))
    }
}

extension TokenSecurityTests.Rng {
    mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next()) }
}

/// The general URL-safe base64 decoder `validate` used before its fixed-size one, kept as the
/// reference the stack decoder is checked against (an independent character table on purpose).
extension TokenAuthority {
    /// Decodes URL-safe base64 with padding; nil for anything else.
    static func decodeBase64URL(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 4 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case 65...90: UInt32(c - 65)
            case 97...122: UInt32(c - 71)
            case 48...57: UInt32(c + 4)
            case 45: 62
            case 95: 63
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 4 * 3)
        var i = 0
        while i < u.count {
            let last = i + 4 == u.count
            let pad = last ? (u[i + 3] == 61 ? (u[i + 2] == 61 ? 2 : 1) : 0) : 0
            var n: UInt32 = 0
            for j in 0..<4 {
                if j >= 4 - pad {
                    n <<= 6
                    continue
                }
                guard let v = value(u[i + j]) else { return nil }
                n = n << 6 | v
            }
            out.append(UInt8(n >> 16 & 255))
            if pad < 2 { out.append(UInt8(n >> 8 & 255)) }
            if pad < 1 { out.append(UInt8(n & 255)) }
            i += 4
        }
        return out
    }
}
