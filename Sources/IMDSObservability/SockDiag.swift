#if canImport(Glibc)
import Glibc

/// Finds a TCP socket's inode and owner uid by its exact 4-tuple with one netlink `SOCK_DIAG`
/// request (the kernel looks the socket up in its hash table: no dump, no TIME_WAIT list), instead
/// of reading `/proc/net/tcp` — which, under load, holds every TIME_WAIT socket of the last minute
/// and costs milliseconds (tens of milliseconds with 10⁵ of them) to parse for each connection.
enum SockDiag {
    enum Result: Equatable {
        case found(inode: UInt64, uid: UInt32)
        /// No such socket (the kernel answered ENOENT).
        case notFound
        /// The request could not be sent or the answer was not understood (drop this socket).
        case failed
    }

    /// A netlink socket for ``lookup(fd:client:server:)``, or -1 (netlink refused here).
    static func open() -> Int32 {
        let fd = socket(AF_NETLINK, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 4 /* NETLINK_SOCK_DIAG */)
        guard fd >= 0 else { return -1 }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// TCP states a client socket that is still open can be in (the kernel's `TCP_*` numbers):
    /// ESTABLISHED, SYN_SENT, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING. TIME_WAIT (6) and
    /// CLOSE (7) sockets belong to no process.
    static let openStates: UInt32 = (1 << 1) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 11)

    /// - Parameters: the client's socket as seen from the client (its address and port), and the
    ///   server's address and port.
    /// - Returns: the inode (0 when the client has closed it: an orphan or TIME_WAIT socket) and uid.
    static func lookup(fd: Int32, client: (IP16, Int), server: (IP16, Int)) -> Result {
        // Both IPv4 (v4-mapped) or both IPv6: an IPv4 connection to a dual-stack socket is AF_INET
        // in the kernel's table.
        let family = client.0.isMapped && server.0.isMapped ? UInt8(AF_INET) : UInt8(AF_INET6)
        // nlmsghdr (16) + inet_diag_req_v2 (56).
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 72 + 1024) { mem -> Result in
            let req = UnsafeMutableBufferPointer(rebasing: mem[0..<72])
            let buf = UnsafeMutableBufferPointer(rebasing: mem[72...])
            req.initialize(repeating: 0)
            func put32(_ v: UInt32, at o: Int) { for i in 0..<4 { req[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
            func put16(_ v: UInt16, at o: Int) { for i in 0..<2 { req[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
            put32(72, at: 0)                 // nlmsg_len
            put16(20, at: 4)                 // SOCK_DIAG_BY_FAMILY
            put16(1, at: 6)                  // NLM_F_REQUEST (no NLM_F_DUMP: one socket, by its 4-tuple)
            put32(UInt32(truncatingIfNeeded: client.1), at: 8)  // seq: the client port, checked in the answer
            req[16] = family                 // sdiag_family
            req[17] = UInt8(IPPROTO_TCP)     // sdiag_protocol
            put32(openStates, at: 20)        // idiag_states
            // inet_diag_sockid at 24: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
            req[24] = UInt8(truncatingIfNeeded: client.1 >> 8); req[25] = UInt8(truncatingIfNeeded: client.1)
            req[26] = UInt8(truncatingIfNeeded: server.1 >> 8); req[27] = UInt8(truncatingIfNeeded: server.1)
            func put(_ ip: IP16, at o: Int) {
                if family == UInt8(AF_INET) {
                    let v4 = UInt32(truncatingIfNeeded: ip.low)
                    for i in 0..<4 { req[o + i] = UInt8(truncatingIfNeeded: v4 >> (24 - 8 * i)) }
                } else {
                    for i in 0..<8 { req[o + i] = UInt8(truncatingIfNeeded: ip.high >> (56 - 8 * i)) }
                    for i in 0..<8 { req[o + 8 + i] = UInt8(truncatingIfNeeded: ip.low >> (56 - 8 * i)) }
                }
            }
            put(client.0, at: 28)
            put(server.0, at: 44)
            put32(0xFFFF_FFFF, at: 64)       // INET_DIAG_NOCOOKIE
            put32(0xFFFF_FFFF, at: 68)

            // struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid = 0 (the kernel); u32 groups }
            var kernel: (UInt16, UInt16, UInt32, UInt32) = (UInt16(AF_NETLINK), 0, 0, 0)
            let sent = withUnsafePointer(to: &kernel) { k in
                k.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, req.baseAddress, 72, 0, $0, 12) }
            }
            guard sent == 72 else { return .failed }
            let n = recv(fd, buf.baseAddress, buf.count, 0)
            guard n >= 16 else { return .failed }
            func get32(_ o: Int) -> UInt32 { UInt32(buf[o]) | UInt32(buf[o + 1]) << 8 | UInt32(buf[o + 2]) << 16 | UInt32(buf[o + 3]) << 24 }
            let type = UInt16(buf[4]) | UInt16(buf[5]) << 8
            guard get32(8) == UInt32(truncatingIfNeeded: client.1) else { return .failed }  // a late answer to another request
            if type == 2 {  // NLMSG_ERROR: ENOENT is "no such socket"
                return n >= 20 && Int32(bitPattern: get32(16)) == -ENOENT ? .notFound : .failed
            }
            guard type == 20, n >= 16 + 72 else { return .failed }
            // inet_diag_msg at 16: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
            let sport = Int(buf[16 + 4]) << 8 | Int(buf[16 + 5])
            guard sport == client.1 else { return .failed }
            return .found(inode: UInt64(get32(16 + 68)), uid: get32(16 + 64))
        }
    }
}
#endif
