import Crypto
import Foundation

/// `forwarding-proxy:` in the config file: a trusted metadata proxy in front of imds, in the style
/// of OpenStack Nova's (Neutron's metadata agent): it names the instance in `X-Instance-ID` and
/// signs it in `X-Instance-ID-Signature` (hex HMAC-SHA256 of the id under a shared secret).
public struct ForwardingProxySettings: Sendable, Equatable {
    /// The proxies' source addresses (canonical); only requests from them may name an instance.
    public var addresses: [String]
    /// The shared secret the proxy signs with.
    public var sharedSecret: String

    public init(addresses: [String], sharedSecret: String) {
        self.addresses = addresses
        self.sharedSecret = sharedSecret
    }

    /// The header naming the instance.
    public static let instanceHeader = "X-Instance-ID"
    /// The header with its signature: lowercase hex HMAC-SHA256 of the instance id.
    public static let signatureHeader = "X-Instance-ID-Signature"
}

/// Resolves a request from a configured forwarding proxy by its signed `X-Instance-ID`, and every
/// other request by ``SourceAddressResolver`` (the headers are ignored then: only the proxy may
/// name an instance). A proxied request whose signature is missing or wrong, or that names no
/// instance served, is answered as an unknown caller (EC2's 404 page). The signature is compared
/// in constant time; the HMAC key is scheduled once.
///
/// ```swift
/// let resolver = SignedProxyResolver(ForwardingProxySettings(addresses: ["10.0.0.5"], sharedSecret: "s3cret"))
/// let engine = IMDSEngine(resolver: resolver)
/// ```
public struct SignedProxyResolver: CallerResolver {
    let proxies: Set<String>
    let key: SymmetricKey
    let fallback: any CallerResolver

    public init(_ settings: ForwardingProxySettings, fallback: any CallerResolver = SourceAddressResolver()) {
        self.proxies = Set(settings.addresses.compactMap(CallerAddress.canonical))
        self.key = SymmetricKey(data: Array(settings.sharedSecret.utf8))
        self.fallback = fallback
    }

    public func resolve(_ request: IMDSRequest, in snapshot: StoreSnapshot) -> CallerResolution {
        guard let ip = request.peer?.ip, let peer = CallerAddress.canonical(ip), proxies.contains(peer) else {
            return fallback.resolve(request, in: snapshot)
        }
        guard let id = request.header(ForwardingProxySettings.instanceHeader),
            let signature = request.header(ForwardingProxySettings.signatureHeader),
            Self.constantTimeEqual(Array(signature.lowercased().utf8), Array(sign(id).utf8)),
            snapshot.instance(id) != nil
        else { return .unknown }
        return .instance(id)
    }

    /// The signature a proxy sends for `instanceID` (lowercase hex HMAC-SHA256).
    public func sign(_ instanceID: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(instanceID.utf8), using: key).map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
