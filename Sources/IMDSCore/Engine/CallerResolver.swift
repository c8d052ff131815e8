import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who a data-plane request is from: the instance it is answered as, or nobody.
public enum CallerResolution: Sendable, Equatable {
    /// Answer as this instance.
    case instance(String)
    /// No instance owns the caller: EC2's 404 page on every path, counted and logged as unknown.
    case unknown
}

/// Decides which instance a data-plane request is answered as, from the request and the snapshot
/// alone (a pure function: no I/O, no state). The engine asks it once per request.
///
/// ``SourceAddressResolver`` (the default) uses the connection's source address. A resolver for a
/// trusted forwarding proxy (a signed instance-id header in the style of OpenStack Nova's
/// `X-Instance-ID-Signature`) would verify the header against a key it holds and fall back to the
/// source address only for callers that are not the proxy; nothing else has to change.
public protocol CallerResolver: Sendable {
    func resolve(_ request: IMDSRequest, in snapshot: StoreSnapshot) -> CallerResolution
}

/// Resolves the caller by the TCP peer's source address: the instance whose private IPv4, IPv6 or
/// extra caller address it is (one hash lookup in the snapshot's address index, whatever the fleet
/// size). With one instance served, every caller is that instance (single-instance mode). Headers
/// (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`, …) are never consulted: a caller cannot choose
/// its identity.
public struct SourceAddressResolver: CallerResolver {
    public init() {}

    public func resolve(_ request: IMDSRequest, in snapshot: StoreSnapshot) -> CallerResolution {
        if snapshot.instances.count == 1 { return .instance(snapshot.primaryInstanceID) }
        guard let ip = request.peer?.ip, let id = snapshot.instanceID(forCaller: ip) else { return .unknown }
        return .instance(id)
    }
}

/// The one canonical text form of caller addresses, so that `::FFFF:10.0.0.5`, `::ffff:10.0.0.5`
/// and `10.0.0.5` (a v4 peer on a dual-stack socket) are one key, as are the spellings of an IPv6
/// address.
public enum CallerAddress {
    /// The canonical form of `text`: IPv4 dotted quad (IPv4-mapped IPv6 unwrapped), or IPv6 as
    /// `inet_ntop` writes it; nil when it is no address. A zone (`%eth0`) is dropped.
    public static func canonical(_ text: String) -> String? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return ntop(AF_INET, &v4, Int(INET_ADDRSTRLEN)) }
        let bare = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? text
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, bare, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
            return "\(b[12]).\(b[13]).\(b[14]).\(b[15])"
        }
        return ntop(AF_INET6, &v6, Int(INET6_ADDRSTRLEN))
    }

    private static func ntop<T>(_ family: Int32, _ addr: inout T, _ size: Int) -> String? {
        var buffer = [CChar](repeating: 0, count: size)
        let ok = withUnsafePointer(to: &addr) { inet_ntop(family, UnsafeRawPointer($0), &buffer, socklen_t(size)) != nil }
        guard ok else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The tag naming extra caller addresses (space- or comma-separated), for instances launched
    /// through the EC2 API.
    public static let tagKey = "imds:caller-addresses"

    /// Every source address that is `instance`'s caller, canonical and without duplicates: its
    /// private IPv4, its IPv6 addresses, `caller-addresses`, and the addresses of the
    /// ``tagKey`` tag in `tags` (the instance's tags now; default: as launched).
    public static func addresses(of instance: Instance, tags: [(key: String, value: String)]? = nil) -> [String] {
        var raw: [String] = []
        if let v4 = instance.localIPv4 { raw.append(v4) }
        raw += instance.ipv6Addresses
        raw += instance.callerAddresses
        for tag in tags ?? instance.tags where tag.key == tagKey {
            raw += tag.value.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        }
        var seen = Set<String>()
        return raw.compactMap(canonical).filter { seen.insert($0).inserted }
    }
}
