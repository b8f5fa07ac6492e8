/* VrrpFailover._idlewait: an idle IPv4 VRRP router's waits, in C with the GIL released: a Backup's (idle_wait) and
 * the routine sends of Masters (master_wait).
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
 *
 * master_wait(epfd, limit, senders) -> (status, rounds, last, failed, errno)
 *   senders  a sequence of (fd, advert: bytes, destination: 4 bytes (IPv4, network order), deadline, interval): each
 *            a Master whose next duty is its routine Adver_Timer at `deadline`; at each due time its prebuilt advert
 *            is sent and the timer moves on by the router's rule (routine_adver_timer: deadline + interval, or
 *            now + interval when that has passed)
 *   limit    when the hot loop has work of its own (incl. the routers' gratuitous ARP deadlines), CLOCK_MONOTONIC s
 * status: 2 EVENT (epfd ready: an advert came, asyncio, a signal), 3 LIMIT, 4 SENDERR (sender `failed`'s send failed
 * with `errno`; that round counts). rounds: sends per sender (tuple); last: the time of each one's last (-1.0 if none).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

enum { SILENCE = 0, OTHER = 1, EVENT = 2, LIMIT = 3, SENDERR = 4 };

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

typedef struct {
    int fd;
    const char *advert;
    Py_ssize_t len;
    struct sockaddr_in dest;
    double deadline, interval, last;
    long rounds;
} sender_t;

static int send_loop(int epfd, double limit, sender_t *s, Py_ssize_t n, Py_ssize_t *failed, int *err) {
    struct epoll_event ev[1];
    for (;;) {
        double now = clock_s(CLOCK_MONOTONIC);
        double next = limit;
        for (Py_ssize_t i = 0; i < n; i++)
            if (s[i].deadline < next) next = s[i].deadline;
        if (now < next) {
            int ms = (int)((next - now) * 1000.0 + 0.999);  /* rounded up: never before a deadline */
            int got = epoll_wait(epfd, ev, 1, ms);
            if (got > 0) return EVENT;
            if (got < 0) {
                if (errno == EINTR) return EVENT;
                *err = errno;
                return -1;
            }
            now = clock_s(CLOCK_MONOTONIC);
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            sender_t *x = &s[i];
            if (x->deadline > now) continue;
            double nxt = x->deadline + x->interval;
            x->deadline = nxt > now ? nxt : now + x->interval;
            x->rounds++;
            x->last = now;
            if (sendto(x->fd, x->advert, (size_t)x->len, 0, (struct sockaddr *)&x->dest, sizeof x->dest) < 0) {
                *failed = i;
                *err = errno;
                return SENDERR;
            }
        }
        if (now >= limit) return LIMIT;
    }
}

static PyObject *master_wait(PyObject *Py_UNUSED(self), PyObject *args) {
    int epfd;
    double limit;
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "idO", &epfd, &limit, &seq)) return NULL;
    PyObject *fast = PySequence_Fast(seq, "senders must be a sequence");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    sender_t *s = PyMem_Calloc(n ? (size_t)n : 1, sizeof(sender_t));
    Py_buffer *bufs = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    PyObject *result = NULL;
    Py_ssize_t parsed = 0;
    if (s == NULL || bufs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; parsed < n; parsed++) {
        Py_buffer dest;
        sender_t *x = &s[parsed];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, parsed), "iy*y*dd", &x->fd, &bufs[parsed], &dest,
                              &x->deadline, &x->interval))
            goto done;
        if (dest.len != 4 || x->interval <= 0) {
            PyBuffer_Release(&dest);
            PyBuffer_Release(&bufs[parsed]);
            PyErr_SetString(PyExc_ValueError, "a sender needs a 4-byte IPv4 destination and an interval > 0");
            goto done;
        }
        x->advert = bufs[parsed].buf;
        x->len = bufs[parsed].len;
        x->dest.sin_family = AF_INET;
        memcpy(&x->dest.sin_addr, dest.buf, 4);
        PyBuffer_Release(&dest);
        x->last = -1.0;
    }
    Py_ssize_t failed = -1;
    int err = 0, status;
    Py_BEGIN_ALLOW_THREADS
    status = send_loop(epfd, limit, s, n, &failed, &err);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    PyObject *rounds = PyTuple_New(n), *last = PyTuple_New(n);
    if (rounds == NULL || last == NULL) {
        Py_XDECREF(rounds);
        Py_XDECREF(last);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(rounds, i, PyLong_FromLong(s[i].rounds));
        PyTuple_SET_ITEM(last, i, PyFloat_FromDouble(s[i].last));
    }
    result = Py_BuildValue("iNNni", status, rounds, last, failed, err);
done:
    for (Py_ssize_t i = 0; i < parsed; i++) PyBuffer_Release(&bufs[i]);
    PyMem_Free(bufs);
    PyMem_Free(s);
    Py_DECREF(fast);
    return result;
}

static PyMethodDef methods[] = {
    {"master_wait", master_wait, METH_VARARGS, "Masters' routine sends (module docstring of the C source)."},
    {"idle_wait", idle_wait, METH_VARARGS, "An idle IPv4 Backup's wait (module docstring of the C source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "VrrpFailover._idlewait",
                                    "An idle IPv4 VRRP router's waits in C (VrrpFailover/_idlewait.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__idlewait(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "SILENCE", SILENCE) || PyModule_AddIntConstant(m, "OTHER", OTHER)
        || PyModule_AddIntConstant(m, "EVENT", EVENT) || PyModule_AddIntConstant(m, "LIMIT", LIMIT)
        || PyModule_AddIntConstant(m, "SENDERR", SENDERR)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
