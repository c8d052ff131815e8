#if canImport(Glibc)
import CLinuxEpoll
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

    /// One client socket to look up: its address and port (as seen from the client), and the
    /// server's.
    struct Query {
        var client: (IP16, Int)
        var server: (IP16, Int)
    }

    /// Most queries per exchange: their answers must fit the netlink socket's receive buffer (the
    /// default 208 KiB holds about a hundred), or the kernel drops the rest.
    static let maxBatch = 32

    /// - Parameters: the client's socket as seen from the client (its address and port), and the
    ///   server's address and port.
    /// - Returns: the inode (0 when the client has closed it: an orphan or TIME_WAIT socket) and uid.
    static func lookup(fd: Int32, client: (IP16, Int), server: (IP16, Int)) -> Result {
        lookup(fd: fd, [Query(client: client, server: server)])[0]
    }

    /// Looks up `queries` (``maxBatch`` at a time) with one `sendto` carrying every request and one
    /// `recvmmsg` for the answers (the kernel answers each request in turn while `sendto` runs), so
    /// that an accept burst of N connections costs two system calls instead of 2N. Each answer is
    /// matched to its query by sequence number (and checked against its port); a query left
    /// without a valid answer is `.failed`.
    static func lookup(fd: Int32, _ queries: [Query]) -> [Result] {
        let count = queries.count
        guard count > 0 else { return [] }
        guard count <= maxBatch else {
            return stride(from: 0, to: count, by: maxBatch).flatMap { lookup(fd: fd, Array(queries[$0..<min($0 + maxBatch, count)])) }
        }
        var results = [Result](repeating: .failed, count: count)
        // A fresh sequence base per exchange: a late answer to an earlier exchange (one that timed
        // out) never matches a query of this one.
        let base = UInt32.random(in: 0...UInt32.max) & ~UInt32(0x3F)
        let slot = 1024
        // nlmsghdr (16) + inet_diag_req_v2 (56) per request; `slot` bytes per answer.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 72 * count + slot * count) { mem in
            let requests = UnsafeMutableBufferPointer(rebasing: mem[0..<(72 * count)])
            let answers = UnsafeMutableBufferPointer(rebasing: mem[(72 * count)...])
            requests.initialize(repeating: 0)
            for (i, q) in queries.enumerated() {
                write(request: UnsafeMutableBufferPointer(rebasing: requests[(72 * i)..<(72 * i + 72)]), q, seq: base | UInt32(i))
            }
            // struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid = 0 (the kernel); u32 groups }
            var kernel: (UInt16, UInt16, UInt32, UInt32) = (UInt16(AF_NETLINK), 0, 0, 0)
            let sent = withUnsafePointer(to: &kernel) { k in
                k.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, requests.baseAddress, 72 * count, 0, $0, 12) }
            }
            guard sent == 72 * count else { return }
            // The kernel queues every answer before sendto returns, so one recvmmsg takes all there
            // will be; an answer the receive buffer could not hold never comes, and waiting for it
            // would only hold the event loop (its query stays `.failed`).
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: count) { lengths in
                let n = Int(clinux_recv_datagrams(fd, answers.baseAddress, UInt32(slot), UInt32(count), lengths.baseAddress))
                for m in 0..<max(0, n) {
                    let answer = UnsafeBufferPointer(rebasing: answers[(m * slot)..<(m * slot + min(Int(lengths[m]), slot))])
                    guard let (i, result) = parse(answer, base: base, count: count) else { continue }
                    // An answer about a socket must name the query's client port.
                    if case .found = result, portOf(answer) != queries[i].client.1 { continue }
                    results[i] = result
                }
            }
        }
        return results
    }

    /// Writes one `SOCK_DIAG_BY_FAMILY` request for `q` (72 bytes, zeroed by the caller).
    private static func write(request req: UnsafeMutableBufferPointer<UInt8>, _ q: Query, seq: UInt32) {
        // Both IPv4 (v4-mapped) or both IPv6: an IPv4 connection to a dual-stack socket is AF_INET
        // in the kernel's table.
        let family = q.client.0.isMapped && q.server.0.isMapped ? UInt8(AF_INET) : UInt8(AF_INET6)
        func put32(_ v: UInt32, at o: Int) { for i in 0..<4 { req[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        func put16(_ v: UInt16, at o: Int) { for i in 0..<2 { req[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        put32(72, at: 0)                 // nlmsg_len
        put16(20, at: 4)                 // SOCK_DIAG_BY_FAMILY
        put16(1, at: 6)                  // NLM_F_REQUEST (no NLM_F_DUMP: one socket, by its 4-tuple)
        put32(seq, at: 8)                // seq: which query the answer is for
        req[16] = family                 // sdiag_family
        req[17] = UInt8(IPPROTO_TCP)     // sdiag_protocol
        put32(openStates, at: 20)        // idiag_states
        // inet_diag_sockid at 24: sport, dport (big-endian), src[16], dst[16], if, cookie[2]
        req[24] = UInt8(truncatingIfNeeded: q.client.1 >> 8); req[25] = UInt8(truncatingIfNeeded: q.client.1)
        req[26] = UInt8(truncatingIfNeeded: q.server.1 >> 8); req[27] = UInt8(truncatingIfNeeded: q.server.1)
        func put(_ ip: IP16, at o: Int) {
            if family == UInt8(AF_INET) {
                let v4 = UInt32(truncatingIfNeeded: ip.low)
                for i in 0..<4 { req[o + i] = UInt8(truncatingIfNeeded: v4 >> (24 - 8 * i)) }
            } else {
                for i in 0..<8 { req[o + i] = UInt8(truncatingIfNeeded: ip.high >> (56 - 8 * i)) }
                for i in 0..<8 { req[o + 8 + i] = UInt8(truncatingIfNeeded: ip.low >> (56 - 8 * i)) }
            }
        }
        put(q.client.0, at: 28)
        put(q.server.0, at: 44)
        put32(0xFFFF_FFFF, at: 64)       // INET_DIAG_NOCOOKIE
        put32(0xFFFF_FFFF, at: 68)
    }

    /// One answer: which query it is for (its sequence number less `base`) and what it says; nil
    /// for anything not understood or not of this exchange.
    static func parse(_ buf: UnsafeBufferPointer<UInt8>, base: UInt32, count: Int) -> (Int, Result)? {
        let n = buf.count
        guard n >= 16 else { return nil }
        func get32(_ o: Int) -> UInt32 { UInt32(buf[o]) | UInt32(buf[o + 1]) << 8 | UInt32(buf[o + 2]) << 16 | UInt32(buf[o + 3]) << 24 }
        let seq = get32(8)
        guard seq & ~UInt32(0x3F) == base, Int(seq & 0x3F) < count else { return nil }  // a late answer to another exchange
        let i = Int(seq & 0x3F)
        let type = UInt16(buf[4]) | UInt16(buf[5]) << 8
        if type == 2 {  // NLMSG_ERROR: ENOENT is "no such socket"
            return (i, n >= 20 && Int32(bitPattern: get32(16)) == -ENOENT ? .notFound : .failed)
        }
        guard type == 20, n >= 16 + 72 else { return nil }
        // inet_diag_msg at 16: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode
        return (i, .found(inode: UInt64(get32(16 + 68)), uid: get32(16 + 64)))
    }

    /// The client port an answer about a socket names.
    private static func portOf(_ buf: UnsafeBufferPointer<UInt8>) -> Int? {
        guard buf.count >= 16 + 6 else { return nil }
        return Int(buf[16 + 4]) << 8 | Int(buf[16 + 5])
    }
}
#endif
