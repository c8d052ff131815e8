import Crypto
import Foundation
import IMDSCore
import IMDSTesting
import Testing

@Suite("Tokens")
struct TokenTests {
    @Test(arguments: [
        ("0", 400), ("1", 200), ("21600", 200), ("21601", 400), ("abc", 400), ("", 400), ("-1", 400),
        ("1.5", 400), ("+5", 400), ("99999999999999999999", 400), ("021600", 200),
    ])
    func ttlBounds(value: String, status: Int) throws {
        let imds = try makeIMDS()
        let r = imds.request("PUT", "/latest/api/token", headers: [(ttlHeader, value)])
        #expect(r.status == status)
        if status == 200 {
            #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == String(Int(value)!))
            #expect(r.body.count == 56)
        }
    }

    @Test func missingTTL() throws {
        #expect(try makeIMDS().request("PUT", "/latest/api/token").status == 400)
    }

    @Test func headerNamesAreCaseInsensitive() throws {
        let imds = try makeIMDS()
        let r = imds.request("PUT", "/latest/api/token", headers: [("x-aws-ec2-metadata-token-ttl-seconds", "60")])
        #expect(r.status == 200)
        let g = imds.request("GET", "/latest/meta-data/instance-id", headers: [("X-AWS-EC2-METADATA-TOKEN", r.bodyText)])
        #expect(g.status == 200)
    }

    @Test func tokenShapeAndResponseHeaders() throws {
        let imds = try makeIMDS()
        let r = imds.request("PUT", "/latest/api/token", headers: [(ttlHeader, "21600")])
        let token = r.bodyText
        #expect(token.count == 56)
        #expect(token.hasPrefix("AQAEA"))
        #expect(token.hasSuffix("=="))
        #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "=" })
        #expect(r.headers.map(\.name) == [
            "X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "Content-Length", "Date", "Server", "Connection", "Content-Type",
        ])
        #expect(r.hopLimit == 1)
        #expect(r.header("Last-Modified") == nil)
    }

    @Test func tokensAreDistinct() throws {
        let imds = try makeIMDS()
        let a = try #require(imds.token()), b = try #require(imds.token())
        #expect(a != b)
    }

    @Test func expiryWithInjectedClock() throws {
        let clock = ManualClock()
        let imds = try makeIMDS(clock: clock)
        let token = try #require(imds.token(ttl: 60))
        var r = imds.get("/latest/meta-data/instance-id", token: token)
        #expect(r.status == 200)
        #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "60")
        clock.advance(by: 25)
        r = imds.get("/latest/meta-data/instance-id", token: token)
        #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "35")
        clock.advance(by: 34.999)
        #expect(imds.get("/latest/meta-data/instance-id", token: token).status == 200)
        clock.advance(by: 0.001)
        r = imds.get("/latest/meta-data/instance-id", token: token)
        #expect(r.status == 401)
        #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == nil)
        // A new token works again.
        #expect(imds.get("/latest/meta-data/instance-id", token: imds.token()).status == 200)
    }

    @Test func remainingTTLOnNotFound() throws {
        let imds = try makeIMDS()
        let r = imds.get("/latest/meta-data/nope", token: imds.token(ttl: 300))
        #expect(r.status == 404)
        #expect(r.headers.first?.name == "X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
        #expect(r.header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "300")
        // v1 responses never carry it.
        #expect(imds.get("/latest/meta-data/instance-id").header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == nil)
    }

    /// Every character of a token changed to every other token character: none is accepted.
    @Test func everyCharacterAlteredIsRejected() throws {
        let imds = try makeIMDS()
        let token = Array(try #require(imds.token()).utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=".utf8)
        var tried = 0
        for i in token.indices {
            for c in alphabet where c != token[i] {
                var t = token
                t[i] = c
                let r = imds.get("/latest/meta-data/instance-id", token: String(decoding: t, as: UTF8.self))
                #expect(r.status == 401, "position \(i) -> \(Character(Unicode.Scalar(c)))")
                tried += 1
            }
        }
        #expect(tried == 56 * 64)
    }

    /// Every bit of the decoded 40 bytes flipped and re-encoded: none is accepted.
    @Test func everyBitFlippedIsRejected() throws {
        let authority = TokenAuthority(secret: SymmetricKey(size: .bits256))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let token = authority.issue(instanceID: "i-0abc1234def567890", ttl: 600, now: now)
        let std = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        let bytes = Array(Data(base64Encoded: std)!)
        #expect(bytes.count == 40)
        for i in bytes.indices {
            for bit in 0..<8 {
                var b = bytes
                b[i] ^= 1 << bit
                let t = Data(b).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                guard case .failure = authority.validate(t, instanceID: "i-0abc1234def567890", now: now) else {
                    Issue.record("byte \(i) bit \(bit) accepted")
                    continue
                }
            }
        }
        #expect(throws: Never.self) { try authority.validate(token, instanceID: "i-0abc1234def567890", now: now).get() }
    }

    @Test func truncatedAndExtendedTokensAreRejected() throws {
        let imds = try makeIMDS()
        let token = try #require(imds.token())
        for t in [String(token.dropLast()), token + "A", String(token.dropFirst()), "", token.lowercased(), token + token] {
            #expect(imds.get("/latest/meta-data/instance-id", token: t).status == 401)
        }
    }

    @Test func boundToInstanceAndKey() {
        let secret = SymmetricKey(size: .bits256)
        let a = TokenAuthority(secret: secret)
        let now = Date()
        let t = a.issue(instanceID: "i-0abc1234def567890", ttl: 60, now: now)
        #expect(throws: TokenAuthority.Rejection.badSignature) { try a.validate(t, instanceID: "i-0fedcba9876543210", now: now).get() }
        #expect(throws: TokenAuthority.Rejection.badSignature) {
            try TokenAuthority(secret: SymmetricKey(size: .bits256)).validate(t, instanceID: "i-0abc1234def567890", now: now).get()
        }
        // Same secret (a restart with a persisted key): still valid.
        #expect(throws: Never.self) { try TokenAuthority(secret: secret).validate(t, instanceID: "i-0abc1234def567890", now: now).get() }
        // A later key generation invalidates it.
        #expect(throws: TokenAuthority.Rejection.badSignature) { try a.validate(t, instanceID: "i-0abc1234def567890", now: now, generation: 1).get() }
    }

    @Test func tokenPUTIgnoresTokenModeAndWorksUnderRequired() throws {
        let imds = try makeIMDS(productExampleYAML.replacingOccurrences(of: "http-tokens: optional", with: "http-tokens: required"))
        #expect(imds.token() != nil)
    }

    @Test func optionsOnTokenPath() throws {
        let r = try makeIMDS().request("OPTIONS", "/latest/api/token")
        #expect(r.status == 200)
        #expect(r.header("Allow") == "OPTIONS, PUT")
    }
}
