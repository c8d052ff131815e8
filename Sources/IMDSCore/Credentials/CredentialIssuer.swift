import Crypto
import Foundation
import Synchronization

/// Credentials obtained elsewhere (STS), or why they could not be.
public enum ExternalCredentials: Sendable, Equatable {
    case credentials(RoleCredentials)
    /// Served as EC2 does: a 200 whose JSON has this `Code` and `Message`.
    case failure(code: String, message: String, lastUpdated: Date)
}

/// Supplies credentials for instances whose role credentials come from outside (STS AssumeRole).
public protocol ExternalCredentialSource: Sendable {
    func current(instanceID: String, role: String) -> ExternalCredentials?
}

/// One set of temporary credentials as IMDS serves them.
public struct RoleCredentials: Sendable, Equatable {
    public init(accessKeyID: String, secretAccessKey: String, token: String, lastUpdated: Date, expiration: Date) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.token = token
        self.lastUpdated = lastUpdated
        self.expiration = expiration
    }
    public var accessKeyID: String
    public var secretAccessKey: String
    public var token: String
    public var lastUpdated: Date
    public var expiration: Date
}

/// Issues role credentials that rotate on a fixed schedule without keeping state: each rotation
/// period's values are derived from the server secret, the instance, the role and the delivery
/// (v1 or v2), so the same credentials are served throughout a period and survive a restart when
/// the secret is persisted.
public struct CredentialIssuer: Sendable {
    /// HMAC state already keyed with the derived key; each MAC copies it (a value type) instead of
    /// running the key schedule again: a credentials document takes 34 MACs.
    private let keyed: HMAC<SHA256>
    /// The last period's values per instance, role and delivery: an SDK's credential fetch asks for
    /// the same document many times a period, and deriving one takes 34 MACs (most of the time of
    /// a credentials request). A pure cache of a deterministic function, bounded.
    private let memo = Memo()

    /// Entries kept before the memo starts again empty (the working set is one entry per instance,
    /// role and delivery that called during the current period).
    static let memoCapacity = 16_384

    public init(secret: SymmetricKey) {
        let key = SymmetricKey(
            data: HKDF<SHA256>.deriveKey(
                inputKeyMaterial: secret, info: Array("imds role credentials".utf8), outputByteCount: 32))
        self.keyed = HMAC<SHA256>(key: key)
    }

    /// Entries the memo holds (tests).
    var memoCount: Int { memo.entries.withLock { $0.count } }

    struct MemoKey: Hashable {
        var instanceID: String
        var role: String
        var variant: String
        var period: Int
        var lifetime: Int
    }

    struct MemoEntry {
        var offset: Int
        var epoch: Int
        var credentials: RoleCredentials?
    }

    final class Memo: Sendable {
        let entries = Mutex<[MemoKey: MemoEntry]>([:])

        func get(_ key: MemoKey) -> MemoEntry? { entries.withLock { $0[key] } }

        func put(_ key: MemoKey, _ entry: MemoEntry) {
            entries.withLock {
                if $0.count >= CredentialIssuer.memoCapacity, $0[key] == nil { $0.removeAll(keepingCapacity: true) }
                $0[key] = entry
            }
        }
    }

    /// Which of EC2's role deliveries a request receives.
    public enum Delivery: String, Sendable {
        case v1 = "1.0"
        case v2 = "2.0"
        /// The instance identity role (`identity-credentials/ec2/...`).
        case identity = "identity"
    }

    /// The credentials in force at `now`.
    public func credentials(
        instanceID: String, role: String, delivery: Delivery, settings: CredentialSettings, now: Date
    ) -> RoleCredentials {
        let period = max(1, settings.rotationPeriod)
        let seed = "\(instanceID)|\(role)"
        let variant = settings.distinctV1Credentials ? delivery.rawValue : (delivery == .identity ? "identity" : "role")
        let key = MemoKey(instanceID: instanceID, role: role, variant: variant, period: period, lifetime: settings.lifetime)
        let known = memo.get(key)
        // Each instance and role rotates at its own offset within the period.
        let offset = known?.offset ?? Int(mac(seed + "|offset").prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) } % UInt32(period))
        let seconds = now.timeIntervalSince1970.rounded(.down)
        // Beyond what an Int holds (a clock set to year 10^11): no rotation arithmetic that traps.
        let t = (seconds.isFinite && abs(seconds) < 1e15 ? Int(seconds) : 0) - offset
        let epoch = t >= 0 ? t / period : (t - period + 1) / period
        let generated: Bool
        switch settings.source {
        case .fixed: generated = false
        case .generated, .assumeRole: generated = true
        }
        if generated, let known, known.epoch == epoch, let credentials = known.credentials { return credentials }
        let made = derive(seed: seed, variant: variant, epoch: epoch, period: period, offset: offset, settings: settings)
        memo.put(key, MemoEntry(offset: offset, epoch: epoch, credentials: generated ? made : nil))
        return made
    }

    private func derive(seed: String, variant: String, epoch: Int, period: Int, offset: Int, settings: CredentialSettings) -> RoleCredentials {
        let issued = Date(timeIntervalSince1970: TimeInterval(epoch * period + offset))
        let material = mac("\(seed)|\(variant)|\(epoch)")
        // Up to 10% (at most 35 min) later than the nominal lifetime, as EC2's are; never earlier.
        let jitterRange = min(2100, settings.lifetime / 10)
        let jitter = jitterRange > 0 ? Int(material[0]) * 256 + Int(material[1]) : 0
        let expiration = issued.addingTimeInterval(
            TimeInterval(settings.lifetime + (jitterRange > 0 ? jitter % jitterRange : 0)))
        switch settings.source {
        case .fixed(let fixed):
            return RoleCredentials(
                accessKeyID: fixed.accessKeyID, secretAccessKey: fixed.secretAccessKey, token: fixed.token,
                lastUpdated: issued, expiration: expiration)
        case .generated, .assumeRole:
            let stream = expand(material, count: 1024)
            let base32 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            let accessKey = "ASIA" + String(stream[0..<16].map { base32[Int($0) % 32] })
            let b64 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            let secret = String(stream[16..<56].map { b64[Int($0) % 64] })
            // Session tokens from STS start with `IQoJb3JpZ2luX2Vj` and run to about 1 KB.
            let tokenBody = Data(stream[56..<(56 + 780 + Int(material[2] % 32) * 3)]).base64EncodedString()
            return RoleCredentials(
                accessKeyID: accessKey, secretAccessKey: secret, token: "IQoJb3JpZ2luX2Vj" + tokenBody,
                lastUpdated: issued, expiration: expiration)
        }
    }

    private func mac(_ text: String) -> [UInt8] {
        var hmac = keyed
        hmac.update(data: Array(text.utf8))
        return Array(hmac.finalize())
    }

    private func expand(_ seed: [UInt8], count: Int) -> [UInt8] {
        var out: [UInt8] = []
        var counter: UInt32 = 0
        while out.count < count {
            var block = seed
            withUnsafeBytes(of: counter.bigEndian) { block.append(contentsOf: $0) }
            var hmac = keyed
            hmac.update(data: block)
            out.append(contentsOf: hmac.finalize())
            counter += 1
        }
        return Array(out.prefix(count))
    }
}
