/* Unit tests for the probe's ZMTP client (probe/zmtp.c) against a real libzmq ROUTER on a
 * loopback port: handshake, small and long (> 255 bytes) messages both ways, a multi-frame
 * message from the peer, sends refused while disconnected, the ROUTER going away and coming
 * back on the same port, an ipc:// endpoint; and against hand-written peers in a thread: one that
 * speaks garbage, one that pings and then says ERROR, one that sends a frame with reserved
 * flag bits. Every wait is a poll loop with a generous deadline, never a fixed sleep. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "test.h"
#include "zmtp.h"

#define WAIT_MS 20000

static void *zctx;

/* --- helpers -------------------------------------------------------------------------------- */

static void *router_bind(const char *endpoint, char *ret_endpoint, size_t size)
{
    void *r = zmq_socket(zctx, ZMQ_ROUTER);
    int zero = 0;

    fp_assert(r != NULL);
    (void)zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
    fp_assert(zmq_bind(r, endpoint) == 0);
    if (ret_endpoint != NULL)
        fp_assert(zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ret_endpoint, &size) == 0);
    return r;
}

static struct fp_zmtp *client(const char *endpoint)
{
    struct fp_zmtp_options o = {
        .endpoint = endpoint,
        .reconnect_ivl_ms = 20,
        .reconnect_ivl_max_ms = 200,
        .handshake_timeout_ms = 5000,
    };
    struct fp_zmtp *z = NULL;
    char err[256] = "";

    if (fp_zmtp_new(&o, &z, err, sizeof(err)) != 0)
        FP_TEST_FAIL("fp_zmtp_new(%s): %s", endpoint, err);
    fp_assert(z != NULL);
    return z;
}

/* Drives the client until it is connected (want true) or not. */
static void wait_connected(struct fp_zmtp *z, bool want)
{
    int64_t end = fp_clock_mono_ms() + WAIT_MS;

    while (fp_zmtp_connected(z) != want && fp_clock_mono_ms() < end) {
        const uint8_t *d;
        size_t n;
        bool more;

        (void)fp_zmtp_poll(z, 10);
        while (fp_zmtp_recv(z, &d, &n, &more) == 0)
            ;
    }
    fp_assert(fp_zmtp_connected(z) == want);
}

/* Receives one frame at the client, waiting for it. */
static void client_recv(struct fp_zmtp *z, const void *want, size_t want_len, bool want_more)
{
    int64_t end = fp_clock_mono_ms() + WAIT_MS;
    const uint8_t *d = NULL;
    size_t n = 0;
    bool more = false;

    while (fp_zmtp_recv(z, &d, &n, &more) != 0) {
        fp_assert(fp_clock_mono_ms() < end);
        (void)fp_zmtp_poll(z, 50);
    }
    check_int(n, want_len);
    check(n == want_len && memcmp(d, want, n) == 0);
    check_int(more, want_more);
}

/* Receives one message at the ROUTER: [routing id, body]; keeps the id in id/id_len. */
static void router_recv(void *r, struct fp_zmtp *z, uint8_t *id, size_t *id_len, const void *want,
                        size_t want_len)
{
    int64_t end = fp_clock_mono_ms() + WAIT_MS;
    zmq_msg_t m;
    int more = 0;
    size_t more_size = sizeof(more);

    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, r, ZMQ_DONTWAIT) < 0) {
        fp_assert(errno == EAGAIN && fp_clock_mono_ms() < end);
        (void)fp_zmtp_poll(z, 10); /* lets the client flush */
    }
    fp_assert(zmq_msg_size(&m) <= 256);
    *id_len = zmq_msg_size(&m);
    memcpy(id, zmq_msg_data(&m), *id_len);
    fp_assert(zmq_getsockopt(r, ZMQ_RCVMORE, &more, &more_size) == 0 && more == 1);
    fp_assert(zmq_msg_recv(&m, r, 0) >= 0);
    check_int(zmq_msg_size(&m), want_len);
    check(zmq_msg_size(&m) == want_len && memcmp(zmq_msg_data(&m), want, want_len) == 0);
    fp_assert(zmq_getsockopt(r, ZMQ_RCVMORE, &more, &more_size) == 0);
    check_int(more, 0);
    zmq_msg_close(&m);
}

static void fill(uint8_t *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 31u + seed);
}

/* --- against libzmq ------------------------------------------------------------------------- */

static void test_router(void)
{
    char ep[256];
    void *r = router_bind("tcp://127.0.0.1:*", ep, sizeof(ep));
    struct fp_zmtp *z = client(ep);
    static uint8_t big_out[70000], big_in[300];
    uint8_t id[256];
    size_t id_len = 0;
    struct fp_zmtp_stats st;

    wait_connected(z, true);

    /* Small, both ways. */
    check_int(fp_zmtp_send(z, "hello", 5), 0);
    router_recv(r, z, id, &id_len, "hello", 5);
    fp_assert(zmq_send(r, id, id_len, ZMQ_SNDMORE) == (int)id_len);
    fp_assert(zmq_send(r, "world", 5, 0) == 5);
    client_recv(z, "world", 5, false);

    /* Empty and long frames (8-byte sizes) both ways. */
    check_int(fp_zmtp_send(z, "", 0), 0);
    router_recv(r, z, id, &id_len, "", 0);
    fill(big_out, sizeof(big_out), 7);
    check_int(fp_zmtp_send(z, big_out, sizeof(big_out)), 0);
    router_recv(r, z, id, &id_len, big_out, sizeof(big_out));
    fill(big_in, sizeof(big_in), 11);
    fp_assert(zmq_send(r, id, id_len, ZMQ_SNDMORE) == (int)id_len);
    fp_assert(zmq_send(r, big_in, sizeof(big_in), 0) == (int)sizeof(big_in));
    client_recv(z, big_in, sizeof(big_in), false);

    /* A three-frame message: MORE on all but the last. */
    fp_assert(zmq_send(r, id, id_len, ZMQ_SNDMORE) == (int)id_len);
    fp_assert(zmq_send(r, "a", 1, ZMQ_SNDMORE) == 1);
    fp_assert(zmq_send(r, big_in, sizeof(big_in), ZMQ_SNDMORE) == (int)sizeof(big_in));
    fp_assert(zmq_send(r, "c", 1, 0) == 1);
    client_recv(z, "a", 1, true);
    client_recv(z, big_in, sizeof(big_in), true);
    client_recv(z, "c", 1, false);

    /* Several messages in a row arrive in order. */
    for (int i = 0; i < 50; i++) {
        char msg[16];

        snprintf(msg, sizeof(msg), "m%d", i);
        check_int(fp_zmtp_send(z, msg, strlen(msg)), 0);
    }
    for (int i = 0; i < 50; i++) {
        char msg[16];

        snprintf(msg, sizeof(msg), "m%d", i);
        router_recv(r, z, id, &id_len, msg, strlen(msg));
    }

    /* The ROUTER goes away: the client notices, refuses sends, and reconnects when a new one
     * binds the same port. */
    zmq_close(r);
    wait_connected(z, false);
    check_int(fp_zmtp_send(z, "lost", 4), -EAGAIN);
    r = router_bind(ep, NULL, 0);
    wait_connected(z, true);
    check_int(fp_zmtp_send(z, "again", 5), 0);
    router_recv(r, z, id, &id_len, "again", 5);
    fp_assert(zmq_send(r, id, id_len, ZMQ_SNDMORE) == (int)id_len);
    fp_assert(zmq_send(r, "back", 4, 0) == 4);
    client_recv(z, "back", 4, false);

    fp_zmtp_get_stats(z, &st);
    check_int(st.connects, 2);
    check_int(st.disconnects, 1);
    check_int(st.protocol_errors, 0);

    fp_zmtp_destroy(&z);
    check(z == NULL);
    fp_zmtp_destroy(&z);
    zmq_close(r);
}

/* Nobody listening: sends are refused, attempts keep failing, nothing crashes. */
static void test_nobody_listening(void)
{
    char ep[256];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct fp_zmtp *z;
    struct fp_zmtp_stats st;
    int64_t end;

    /* A port bound but not listening: connects are refused, and no other test running at the
     * same time can take it (a port closed a moment ago could be). */
    fp_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    fp_assert(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    (void)snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    z = client(ep);
    check_int(fp_zmtp_send(z, "x", 1), -EAGAIN);
    end = fp_clock_mono_ms() + WAIT_MS;
    do {
        check_int(fp_zmtp_poll(z, 20), 0);
        fp_zmtp_get_stats(z, &st);
    } while (st.failed_attempts < 3 && fp_clock_mono_ms() < end);
    check(st.failed_attempts >= 3);
    check_int(st.connects, 0);
    check_int(fp_zmtp_send(z, "x", 1), -EAGAIN);
    fp_zmtp_destroy(&z);
    (void)close(fd);
}

static void test_ipc(void)
{
    char ep[128];
    void *r;
    struct fp_zmtp *z;
    uint8_t id[256];
    size_t id_len = 0;

    snprintf(ep, sizeof(ep), "ipc:///tmp/fp-test-zmtp-%ld.sock", (long)getpid());
    r = router_bind(ep, NULL, 0);
    z = client(ep);
    wait_connected(z, true);
    check_int(fp_zmtp_send(z, "over ipc", 8), 0);
    router_recv(r, z, id, &id_len, "over ipc", 8);
    fp_zmtp_destroy(&z);
    zmq_close(r);
    (void)unlink(ep + 6);
}

static void test_bad_endpoints(void)
{
    static const char *const bad[] = {
        "",
        "tcp://",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:65536",
        "tcp://:9470",
        "tcp://*:9470",
        "tcp://127.0.0.1:94x",
        "udp://127.0.0.1:9470",
        "inproc://x",
        "ipc://",
        "tcp://[::1:9470",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fp_zmtp_options o = {.endpoint = bad[i]};
        struct fp_zmtp *z = NULL;
        char err[256] = "";

        check_int(fp_zmtp_new(&o, &z, err, sizeof(err)), -EINVAL);
        check(z == NULL);
        check(strstr(err, "endpoint") != NULL);
    }
}

/* --- against hand-written peers ------------------------------------------------------------- */

enum raw_mode { RAW_GARBAGE, RAW_PING_THEN_ERROR, RAW_RESERVED_BITS };

struct raw_peer {
    int lfd;
    int port;
    enum raw_mode mode;
    pthread_t thread;
    bool ok;       /**< the scenario ran to its end */
    char pong[32]; /**< context echoed in the client's PONG */
    size_t pong_len;
    char got_msg[32]; /**< the client's message after the PONG */
};

static bool read_full(int fd, void *buf, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t r = read(fd, (char *)buf + off, n - off);

        if (r <= 0)
            return false;
        off += (size_t)r;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t n)
{
    return write(fd, buf, n) == (ssize_t)n;
}

/* Reads one frame; body must hold 255 bytes (short frames only in these scenarios). */
static bool read_frame(int fd, uint8_t *ret_flags, uint8_t *body, size_t *ret_len)
{
    uint8_t h[2];

    if (!read_full(fd, h, 2) || (h[0] & 0x02))
        return false;
    *ret_flags = h[0];
    *ret_len = h[1];
    return read_full(fd, body, h[1]);
}

/* Our side of the handshake as a ROUTER: read the client's greeting and READY, send ours. */
static bool raw_handshake(int fd)
{
    static const uint8_t ready[] = {0x04, 28,  5,   'R', 'E', 'A', 'D', 'Y', 11,  'S',
                                    'o',  'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e',
                                    0,    0,   0,   6,   'R', 'O', 'U', 'T', 'E', 'R'};
    uint8_t g[64] = {0}, body[255], flags;
    size_t len;

    if (!read_full(fd, g, 64) || g[0] != 0xff || g[9] != 0x7f || g[10] != 3 ||
        memcmp(g + 12, "NULL", 5) != 0)
        return false;
    if (!read_frame(fd, &flags, body, &len) || flags != 0x04 || len < 6 ||
        memcmp(body, "\x05READY", 6) != 0 || memmem(body, len, "DEALER", 6) == NULL)
        return false;
    memset(g, 0, sizeof(g));
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    memcpy(g + 12, "NULL", 4);
    return write_full(fd, g, 64) && write_full(fd, ready, sizeof(ready));
}

static void *raw_thread(void *arg)
{
    struct raw_peer *p = arg;
    struct timeval tv = {.tv_sec = 10};
    uint8_t body[255], flags;
    size_t len;
    int fd = accept(p->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    switch (p->mode) {
    case RAW_GARBAGE: {
        static const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

        p->ok = write_full(fd, junk, sizeof(junk) - 1) && !read_full(fd, body, sizeof(body));
        break;
    }
    case RAW_PING_THEN_ERROR: {
        /* PING: TTL 0x000a, context "ctx-42". */
        static const uint8_t ping[] = {0x04, 13,  4,   'P', 'I', 'N', 'G', 0,
                                       10,   'c', 't', 'x', '-', '4', '2'};
        static const uint8_t hello[] = {0x00, 5, 'h', 'e', 'l', 'l', 'o'};
        static const uint8_t error[] = {0x04, 10, 5, 'E', 'R', 'R', 'O', 'R', 3, 'b', 'y', 'e'};

        if (!raw_handshake(fd) || !write_full(fd, ping, sizeof(ping)))
            break;
        if (!read_frame(fd, &flags, body, &len) || flags != 0x04 || len < 5 ||
            memcmp(body, "\x04PONG", 5) != 0)
            break;
        p->pong_len = len - 5;
        memcpy(p->pong, body + 5, p->pong_len);
        /* The client's message after the PONG, then ours, then ERROR. */
        if (!read_frame(fd, &flags, body, &len) || flags != 0 || len >= sizeof(p->got_msg))
            break;
        memcpy(p->got_msg, body, len);
        if (!write_full(fd, hello, sizeof(hello)) || !write_full(fd, error, sizeof(error)))
            break;
        /* The client must hang up. */
        p->ok = !read_full(fd, body, 1);
        break;
    }
    case RAW_RESERVED_BITS: {
        static const uint8_t bad[] = {0x80, 2, 'h', 'i'};

        p->ok = raw_handshake(fd) && write_full(fd, bad, sizeof(bad)) && !read_full(fd, body, 1);
        break;
    }
    }
    (void)close(fd);
    return NULL;
}

static void raw_start(struct raw_peer *p, enum raw_mode mode)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fp_assert(p->lfd >= 0);
    fp_assert(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    fp_assert(listen(p->lfd, 4) == 0);
    fp_assert(getsockname(p->lfd, (struct sockaddr *)&sa, &len) == 0);
    p->port = ntohs(sa.sin_port);
    fp_assert(pthread_create(&p->thread, NULL, raw_thread, p) == 0);
}

/* Joins the peer's thread and closes its listener; the port is free again. */
static void raw_stop(struct raw_peer *p)
{
    fp_assert(pthread_join(p->thread, NULL) == 0);
    (void)close(p->lfd);
}

/* Polls the client until its protocol-error count reaches n. */
static void wait_protocol_errors(struct fp_zmtp *z, uint64_t n)
{
    int64_t end = fp_clock_mono_ms() + WAIT_MS;
    struct fp_zmtp_stats st;

    do {
        const uint8_t *d;
        size_t len;
        bool more;

        (void)fp_zmtp_poll(z, 10);
        while (fp_zmtp_recv(z, &d, &len, &more) == 0)
            ;
        fp_zmtp_get_stats(z, &st);
    } while (st.protocol_errors < n && fp_clock_mono_ms() < end);
    check_int(st.protocol_errors, n);
}

/* A peer that is not ZeroMQ: protocol error, link dropped; a real ROUTER that then takes the
 * port over gets a working connection. */
static void test_garbage_then_router(void)
{
    struct raw_peer p;
    struct fp_zmtp *z;
    char ep[64];
    void *r;
    uint8_t id[256];
    size_t id_len;

    raw_start(&p, RAW_GARBAGE);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", p.port);
    z = client(ep);
    wait_protocol_errors(z, 1);
    check(!fp_zmtp_connected(z));
    check_int(fp_zmtp_send(z, "x", 1), -EAGAIN);
    raw_stop(&p);
    check(p.ok);

    r = router_bind(ep, NULL, 0);
    wait_connected(z, true);
    check_int(fp_zmtp_send(z, "fine", 4), 0);
    router_recv(r, z, id, &id_len, "fine", 4);
    fp_zmtp_destroy(&z);
    zmq_close(r);
}

/* PING is answered with PONG and its context; ERROR drops the link. */
static void test_ping_and_error(void)
{
    struct raw_peer p;
    struct fp_zmtp *z;
    struct fp_zmtp_stats st;
    char ep[64];

    raw_start(&p, RAW_PING_THEN_ERROR);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", p.port);
    z = client(ep);
    wait_connected(z, true);
    /* Poll until the PING has been answered, then send our message behind the PONG. */
    for (int64_t end = fp_clock_mono_ms() + WAIT_MS; fp_clock_mono_ms() < end;) {
        (void)fp_zmtp_poll(z, 10);
        fp_zmtp_get_stats(z, &st);
        if (st.pings == 1)
            break;
    }
    check_int(st.pings, 1);
    check_int(fp_zmtp_send(z, "after-pong", 10), 0);
    client_recv(z, "hello", 5, false);
    wait_protocol_errors(z, 1); /* the ERROR command */
    check(!fp_zmtp_connected(z));
    raw_stop(&p);
    check(p.ok);
    check_int(p.pong_len, 6);
    check(memcmp(p.pong, "ctx-42", 6) == 0);
    check_str(p.got_msg, "after-pong");
    fp_zmtp_get_stats(z, &st);
    check_int(st.connects, 1);
    check_int(st.disconnects, 1);
    fp_zmtp_destroy(&z);
}

static void test_reserved_bits(void)
{
    struct raw_peer p;
    struct fp_zmtp *z;
    char ep[64];

    raw_start(&p, RAW_RESERVED_BITS);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", p.port);
    z = client(ep);
    wait_protocol_errors(z, 1);
    check(!fp_zmtp_connected(z));
    raw_stop(&p);
    check(p.ok);
    fp_zmtp_destroy(&z);
}

int main(void)
{
    zctx = zmq_ctx_new();
    fp_assert(zctx != NULL);
    test_bad_endpoints();
    test_router();
    test_nobody_listening();
    test_ipc();
    test_garbage_then_router();
    test_ping_and_error();
    test_reserved_bits();
    zmq_ctx_term(zctx);
    fp_test_end();
}
