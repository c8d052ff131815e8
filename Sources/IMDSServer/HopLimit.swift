import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Channel {
    /// Sets the IPv4 TTL and IPv6 hop limit for everything this connection sends from now on.
    ///
    /// On an IPv6 socket both options are set, because IPv4 peers on a dual-stack socket follow
    /// `IP_TTL`, not `IPV6_UNICAST_HOPS`. Must be called on the channel's event loop.
    func setHopLimitSync(_ hops: Int) {
        guard let options = self.syncOptions else { return }
        if self.localAddress?.protocol == .inet6 {
            let v6 = ChannelOptions.Types.SocketOption(
                level: .init(rawValue: CInt(IPPROTO_IPV6)), name: .init(rawValue: CInt(IPV6_UNICAST_HOPS)))
            try? options.setOption(v6, value: SocketOptionValue(hops))
        }
        let v4 = ChannelOptions.Types.SocketOption(level: .init(rawValue: CInt(IPPROTO_IP)), name: .init(rawValue: CInt(IP_TTL)))
        try? options.setOption(v4, value: SocketOptionValue(hops))
    }
}

extension SocketAddress {
    /// The peer as the engine sees it.
    var peerAddress: PeerAddressValue? {
        guard let ip = self.ipAddress else { return nil }
        return PeerAddressValue(ip: ip, port: self.port ?? 0)
    }
}

/// (ip, port), kept separate from IMDSCore's type to keep this file free of that import.
struct PeerAddressValue {
    var ip: String
    var port: Int
}
