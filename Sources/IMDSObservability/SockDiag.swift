#if canImport(Glibc)
import Glibc

/// Finds a TCP socket's inode and owner by its exact 4-tuple with one netlink `SOCK_DIAG` query,
/// instead of reading `/proc/net/tcp` — which, under load, holds every TIME_WAIT socket of the last
/// minute and costs milliseconds to parse for each connection.
enum SockDiag {
    /// - Parameters: the client's socket as seen from the client (its address and port), and the
    ///   server's address and port. Addresses are 4 (IPv4) or 16 (IPv6) bytes.
    /// - Returns: the inode and uid of the client's socket, or nil (not found, or netlink refused).
    static func lookup(client: ([UInt8], Int), server: ([UInt8], Int)) -> (inode: UInt64, uid: UInt32)? {
        let family: UInt8 = client.0.count == 4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        // nlmsghdr (16) + inet_diag_req_v2 (56).
        var req = [UInt8](repeating: 0, count: 72)
        func put32(_ v: UInt32, at o: Int) { withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { req[o + i] = $0[i] } } }
        func put16(_ v: UInt16, at o: Int) { withUnsafeBytes(of: v.littleEndian) { for i in 0..<2 { req[o + i] = $0[i] } } }
        put32(72, at: 0)                 // nlmsg_len
        put16(20, at: 4)                 // SOCK_DIAG_BY_FAMILY
        put16(1, at: 6)                  // NLM_F_REQUEST
        put32(1, at: 8)                  // seq
        req[16] = family                 // sdiag_family
        req[17] = UInt8(IPPROTO_TCP)     // sdiag_protocol
        put32(0xFFFF_FFFF, at: 20)       // idiag_states: any
        // inet_diag_sockid at 24: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
        req[24] = UInt8(client.1 >> 8); req[25] = UInt8(client.1 & 0xFF)
        req[26] = UInt8(server.1 >> 8); req[27] = UInt8(server.1 & 0xFF)
        for (i, b) in client.0.enumerated() { req[28 + i] = b }
        for (i, b) in server.0.enumerated() { req[44 + i] = b }
        put32(0xFFFF_FFFF, at: 64)       // INET_DIAG_NOCOOKIE
        put32(0xFFFF_FFFF, at: 68)

        // struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid = 0 (the kernel); u32 groups }
        var kernel = [UInt8](repeating: 0, count: 12)
        kernel[0] = UInt8(AF_NETLINK & 0xFF)
        kernel[1] = UInt8(AF_NETLINK >> 8)
        let sent = kernel.withUnsafeBytes { k in
            req.withUnsafeBytes { r in
                sendto(fd, r.baseAddress, 72, 0, k.baseAddress!.assumingMemoryBound(to: sockaddr.self), 12)
            }
        }
        guard sent == 72 else { return nil }
        var buf = [UInt8](repeating: 0, count: 8192)
        let n = recv(fd, &buf, buf.count, 0)
        guard n >= 16 + 72 else { return nil }
        func get32(_ o: Int) -> UInt32 { UInt32(buf[o]) | UInt32(buf[o + 1]) << 8 | UInt32(buf[o + 2]) << 16 | UInt32(buf[o + 3]) << 24 }
        let type = UInt16(buf[4]) | UInt16(buf[5]) << 8
        guard type == 20 else { return nil }  // NLMSG_ERROR (2) or done: not found
        // inet_diag_msg at 16: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
        let uid = get32(16 + 64)
        let inode = get32(16 + 68)
        return inode == 0 ? nil : (UInt64(inode), uid)
    }
}
#endif
