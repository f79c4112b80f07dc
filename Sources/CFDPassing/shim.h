#ifndef GATEWAY_CFDPASSING_SHIM_H
#define GATEWAY_CFDPASSING_SHIM_H
// Passing listening sockets to a new gateway process over a Unix socket (SCM_RIGHTS), as
// HAProxy and Pingora do for binary upgrades. The CMSG_* macros are not visible to Swift, so
// the two calls live here.
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

enum { GW_MAX_PASSED_FDS = 64 };

/// A Unix stream socket, close-on-exec (the SOCK_* constants clash in Swift between this
/// module's view of <sys/socket.h> and Glibc's).
static inline int gw_unix_stream_socket(void) {
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/// A TCP socket of `family` (AF_INET, AF_INET6), close-on-exec.
static inline int gw_tcp_socket(int family) {
    return socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/// SOCK_STREAM, for code that cannot name it (see above).
static inline int gw_sock_stream(void) { return SOCK_STREAM; }

/// Sends `length` bytes of `data` with `count` descriptors attached. Returns sendmsg's result.
static inline ssize_t gw_send_fds(int sock, const void *data, size_t length, const int *fds, int count) {
    if (count < 0 || count > GW_MAX_PASSED_FDS) return -1;
    char control[CMSG_SPACE(sizeof(int) * GW_MAX_PASSED_FDS)];
    memset(control, 0, sizeof control);
    struct iovec iov = { (void *)data, length };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (count > 0) {
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    return sendmsg(sock, &message, MSG_NOSIGNAL);
}

/// Receives up to `length` bytes into `data` and up to `*count` descriptors into `fds` (close-
/// on-exec); `*count` becomes the number received. Returns recvmsg's result.
static inline ssize_t gw_recv_fds(int sock, void *data, size_t length, int *fds, int *count) {
    char control[CMSG_SPACE(sizeof(int) * GW_MAX_PASSED_FDS)];
    struct iovec iov = { data, length };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t received = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
    int capacity = *count, found = 0;
    if (received >= 0) {
        for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
            if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
            int n = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n && found < capacity; i++) {
                memcpy(&fds[found++], CMSG_DATA(header) + sizeof(int) * i, sizeof(int));
            }
        }
    }
    *count = found;
    return received;
}
#endif
