// SwiftPM wants one source file; the header's inline functions need none, recvmmsg's wrapper is here.
#define _GNU_SOURCE
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
// Not "CLinuxEpoll.h": its accept4 declaration (kept free of <sys/socket.h> for Swift's sake)
// conflicts with glibc's under _GNU_SOURCE. The prototype below is the header's.
int clinux_recv_datagrams(int fd, unsigned char *buffer, unsigned int slot, unsigned int count, unsigned int *lengths);

int clinux_recv_datagrams(int fd, unsigned char *buffer, unsigned int slot, unsigned int count, unsigned int *lengths) {
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    if (count > 64) count = 64;
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = buffer + (size_t)i * slot;
        vectors[i].iov_len = slot;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, messages, count, MSG_WAITFORONE, NULL);
    for (int i = 0; i < n; i++) lengths[i] = messages[i].msg_len;
    return n;
}
