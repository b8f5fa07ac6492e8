/* bench/vrrp_floor.py's native line (a prototype for measurement, not part of VrrpFailover): an idle VRRP Backup's
 * wait in C, called once through ctypes with the GIL released. It sleeps until the Master_Down deadline and drains
 * the queue there; datagrams whose bytes from `keyoff` on equal `key` (the Master's same advert) move the deadline
 * to their kernel receive time + `mdi`. Returns 0 when the silence passed the deadline, 1 when a datagram differed
 * (read: the caller learns the new advert), -1 on an error. `count` counts the repeats read. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int wait_repeats(int fd, const unsigned char *key, int keylen, int keyoff, double mdi, long *count) {
    int ep = epoll_create1(EPOLL_CLOEXEC); /* nothing registered: a timer sleep that a signal interrupts */
    if (ep < 0) return -1;
    struct epoll_event ev[1];
    unsigned char buf[2048], ctl[256];
    double deadline = clock_s(CLOCK_MONOTONIC) + mdi;
    int rc = 0;
    for (;;) {
        double now = clock_s(CLOCK_MONOTONIC);
        int ms = deadline > now ? (int)((deadline - now) * 1000.0 + 0.999) : 0;
        if (epoll_wait(ep, ev, 1, ms) < 0 && errno != EINTR) { rc = -1; break; }
        double last = -1.0;
        for (;;) {
            struct iovec iov = {buf, sizeof buf};
            struct msghdr m = {0};
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            m.msg_control = ctl;
            m.msg_controllen = sizeof ctl;
            ssize_t got = recvmsg(fd, &m, MSG_DONTWAIT);
            if (got < 0) break;
            if (got != keyoff + keylen || memcmp(buf + keyoff, key, (size_t)keylen) != 0) { rc = 1; goto out; }
            (*count)++;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    last = ts.tv_sec + ts.tv_nsec / 1e9;
                }
        }
        now = clock_s(CLOCK_MONOTONIC);
        if (last >= 0) {
            double at = last - (clock_s(CLOCK_REALTIME) - now);
            deadline = (at < now ? at : now) + mdi;
        } else if (now >= deadline) {
            break; /* silence: the Master is down */
        }
    }
out:
    close(ep);
    return rc;
}
