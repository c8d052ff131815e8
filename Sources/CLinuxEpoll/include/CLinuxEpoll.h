// epoll, eventfd and accept4 for the lean data-plane loop (Sources/IMDSServer/LeanDataListener.swift),
// and recvmmsg for caller attribution's batched netlink lookups (Sources/IMDSObservability/SockDiag.swift):
// Swift's Glibc module does not export <sys/epoll.h> or <sys/eventfd.h>, and declares accept4 and
// recvmmsg only under _GNU_SOURCE.
#pragma once
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>

// Declared here, not through <sys/socket.h>, so that the socket constants stay Glibc's.
extern int accept4(int fd, void *address, unsigned int *length, int flags);

static inline int clinux_accept4(int fd, void *address, unsigned int *length, int flags) {
    return accept4(fd, address, length, flags);
}

/// Receives up to `count` datagrams (at most 64) with one recvmmsg(2): datagram i into
/// `buffer + i * slot` (at most `slot` bytes), its length into `lengths[i]`. Blocks for the first
/// (up to the socket's receive timeout), then takes only what is queued. Returns how many were
/// received, or -1 (errno set).
int clinux_recv_datagrams(int fd, unsigned char *buffer, unsigned int slot, unsigned int count, unsigned int *lengths);
#endif
