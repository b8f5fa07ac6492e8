/* VrrpFailover._idlewait: an idle IPv4 VRRP Backup's wait, in C with the GIL released.
 *
 * Why (measured, docs/vrrp.md "The Backup's wake-up"): a bare Python timer wake-up costs 75-85 us on the
 * reference VM, keepalived's whole per-advert wake-up 35 us; a Backup that only hears the Master's same advert
 * again needs no decision at all between two Master_Down deadlines, so this loop does the waiting and the reading
 * of those repeats, and Python decides once, when anything else happens (the router stays the one decider).
 *
 * idle_wait(epfd, sockfd, key, deadline, mdi, limit) -> (status, count, last_ts)
 *   epfd     the hot loop's epoll (priority-zero socket, asyncio's selector, other readers: any readiness ends it)
 *   sockfd   the interface's raw VRRP socket (SO_TIMESTAMPNS on, not in epfd while every router is Backup)
 *   key      the routine advert's cache key (VrrpSocket.cache_key: the datagram from its source address on)
 *   deadline the Master_Down deadline now (CLOCK_MONOTONIC s); each repeat read moves it to its arrival + mdi
 *   limit    when the hot loop has work of its own (its next timer, asyncio's), CLOCK_MONOTONIC s
 * status: 0 SILENCE (the deadline passed with no repeat queued), 1 OTHER (a datagram that is not a repeat is
 * queued: left there, peeked only), 2 EVENT (epfd ready, or a signal), 3 LIMIT. count: repeats read (consumed);
 * last_ts: the kernel receive time (CLOCK_REALTIME s) of the last, or -1.0.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

enum { SILENCE = 0, OTHER = 1, EVENT = 2, LIMIT = 3 };

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* VrrpSocket.cache_key(datagram) == key: IPv4 header of 20 bytes, TTL 255, protocol 112, total length = the
 * datagram's, then the bytes from the source address on equal to key. */
static int is_repeat(const unsigned char *d, ssize_t n, const unsigned char *key, Py_ssize_t keylen) {
    return n >= 28 && n == 12 + keylen && d[0] == 0x45 && d[8] == 255 && d[9] == 112
           && ((d[2] << 8) | d[3]) == n && memcmp(d + 12, key, (size_t)keylen) == 0;
}

static int wait_loop(int epfd, int fd, const unsigned char *key, Py_ssize_t keylen, double deadline, double mdi,
                     double limit, long *count, double *last_ts, int *err) {
    unsigned char buf[2048];
    union { char raw[256]; struct cmsghdr align; } ctl;
    struct epoll_event ev[1];
    for (;;) {
        double now = clock_s(CLOCK_MONOTONIC);
        double wake = deadline < limit ? deadline : limit;
        if (now < wake) {
            int ms = (int)((wake - now) * 1000.0 + 0.999);  /* rounded up: never before the deadline */
            int n = epoll_wait(epfd, ev, 1, ms);
            if (n > 0) return EVENT;
            if (n < 0) {
                if (errno == EINTR) return EVENT;  /* a signal: Python's handler runs when we return */
                *err = errno;
                return -1;
            }
            now = clock_s(CLOCK_MONOTONIC);
        }
        if (now < deadline) {
            if (now >= limit) return LIMIT;
            continue;  /* woke a little early */
        }
        int got = 0;
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) return EVENT;
                *err = errno;
                return -1;
            }
            if (!is_repeat(buf, n, key, keylen)) return OTHER;
            struct iovec iov = {buf, sizeof buf};
            struct msghdr m;
            memset(&m, 0, sizeof m);
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            m.msg_control = ctl.raw;
            m.msg_controllen = sizeof ctl.raw;
            if (recvmsg(fd, &m, MSG_DONTWAIT) < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                *err = errno;
                return -1;
            }
            (*count)++;
            got = 1;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    *last_ts = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
                }
            }
        }
        if (!got) return SILENCE;
        now = clock_s(CLOCK_MONOTONIC);
        /* its arrival on the monotonic clock, never later than now: the router's own arrival time is never earlier
         * (driver.arrival_time keeps it within [previous drain, now]), so this deadline is never after the router's */
        double at = *last_ts >= 0 ? *last_ts - (clock_s(CLOCK_REALTIME) - now) : now;
        deadline = (at < now ? at : now) + mdi;
    }
}

static PyObject *idle_wait(PyObject *Py_UNUSED(self), PyObject *args) {
    int epfd, fd;
    Py_buffer key;
    double deadline, mdi, limit;
    if (!PyArg_ParseTuple(args, "iiy*ddd", &epfd, &fd, &key, &deadline, &mdi, &limit)) return NULL;
    long count = 0;
    double last_ts = -1.0;
    int err = 0, status;
    Py_BEGIN_ALLOW_THREADS
    status = wait_loop(epfd, fd, (const unsigned char *)key.buf, key.len, deadline, mdi, limit, &count, &last_ts,
                       &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&key);
    if (status < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("ild", status, count, last_ts);
}

static PyMethodDef methods[] = {
    {"idle_wait", idle_wait, METH_VARARGS, "An idle IPv4 Backup's wait (module docstring of the C source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "VrrpFailover._idlewait",
                                    "An idle IPv4 VRRP Backup's wait in C (VrrpFailover/_idlewait.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__idlewait(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "SILENCE", SILENCE) || PyModule_AddIntConstant(m, "OTHER", OTHER)
        || PyModule_AddIntConstant(m, "EVENT", EVENT) || PyModule_AddIntConstant(m, "LIMIT", LIMIT)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
