// epoll, eventfd and accept4 for the lean data-plane loop (Sources/IMDSServer/LeanDataListener.swift):
// Swift's Glibc module does not export <sys/epoll.h> or <sys/eventfd.h>, and declares accept4 only
// under _GNU_SOURCE.
#pragma once
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>

// Declared here, not through <sys/socket.h>, so that the socket constants stay Glibc's.
extern int accept4(int fd, void *address, unsigned int *length, int flags);

static inline int clinux_accept4(int fd, void *address, unsigned int *length, int flags) {
    return accept4(fd, address, length, flags);
}
#endif
