/* ZMTP 3.0 over one socket, as a DEALER with the NULL mechanism: what the probe needs of
 * ZeroMQ, in a few hundred lines and no threads.
 *
 * Wire (ZMTP 3.0, RFC 23): each side sends a 64-byte greeting (0xFF, 8 padding bytes, 0x7F;
 * version 3.0; mechanism "NULL" padded to 20 bytes; as-server 0; 31 zero bytes), then a READY
 * command whose metadata names its socket type. After that, frames: a flags byte (MORE 0x01,
 * LONG 0x02, COMMAND 0x04, the rest reserved and zero), a size (1 byte, or 8 big-endian bytes
 * when LONG) and the body. We send the greeting and READY together without waiting for the
 * peer's greeting: NULL has no roles, and libzmq buffers what follows the greeting.
 *
 * States: IDLE (no socket; the next attempt is due at next_attempt_ms), CONNECTING (a
 * non-blocking connect in progress), HANDSHAKE (greeting and READY exchanged, not both yet),
 * READY. Any failure closes the socket, drops both buffers and schedules the next attempt as
 * libzmq does with RECONNECT_IVL/RECONNECT_IVL_MAX: the current interval plus a random part of
 * the first one, the interval doubling up to the maximum and falling back to the first after a
 * completed handshake. Messages buffered but not written when a link drops are lost, as they are
 * in libzmq: the sender above resends what is not acknowledged.
 *
 * Incoming data lands in one buffer, grown to the largest frame seen (bounded by max_in_bytes);
 * recv hands out pointers into it, and consumes the frame at the next call. Commands are handled
 * as they are parsed: PING is answered with PONG (echoing its context), ERROR drops the link,
 * anything else is ignored. Outgoing frames go to the socket directly when nothing is waiting,
 * and only what the kernel did not take is copied.
 *
 * Host names are resolved with getaddrinfo at each attempt, IPv4 only, as libzmq does without
 * ZMQ_IPV6: "localhost" must reach a collector bound to all IPv4 addresses ("*"). It can block on a
 * slow resolver; numeric addresses never do.
 *
 * Rejected: linking libzmq (its threads, C++ runtime and security libraries cost the probe about
 * 3.6 MiB of resident pages); a thread of our own (the agent already waits in poll). */
#include "zmtp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define GREETING_BYTES 64
#define FLAG_MORE 0x01
#define FLAG_LONG 0x02
#define FLAG_COMMAND 0x04
#define FLAGS_RESERVED 0xf8
/* A frame's header: the flags byte and at most 8 size bytes. */
#define MAX_HEADER_BYTES 9
#define INITIAL_IN_BYTES 4096
/* An outgoing buffer this big is freed once drained, so one big batch does not stay resident. */
#define KEEP_OUT_BYTES 16384
/* PING's context is at most 16 bytes (ZMTP 3.1); a PONG echoes it. */
#define MAX_PING_CONTEXT 16

enum state { IDLE, CONNECTING, HANDSHAKE, READY };

struct fp_zmtp {
    struct fp_zmtp_options opts;
    char host[256];     /**< tcp: host name or address, without brackets */
    char port[8];       /**< tcp: decimal port */
    char ipc_path[108]; /**< ipc: socket path; "" for tcp */
    char endpoint[300]; /**< for log lines */

    enum state state;
    int fd;
    int64_t next_attempt_ms; /**< IDLE: when to try again (monotonic ms) */
    int64_t deadline_ms;     /**< CONNECTING/HANDSHAKE: give up at this time */
    int64_t cur_ivl_ms;      /**< the next backoff interval before jitter */
    bool got_greeting;       /**< HANDSHAKE: the peer's greeting was valid */

    uint8_t *in; /**< received bytes; in[in_off, in_len) not yet parsed */
    size_t in_off, in_len, in_cap;
    size_t consume;  /**< bytes of the frame recv handed out, skipped at the next call */
    bool have_frame; /**< a data frame starts at in_off (commands before it are handled) */

    uint8_t *out; /**< bytes to write; out[out_off, out_len) pending */
    size_t out_off, out_len, out_cap;

    struct fp_zmtp_stats st;
};

static uint32_t random_u32(void)
{
    uint32_t v;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        v = (uint32_t)fp_clock_mono_ns();
    return v;
}

/* --- endpoint ------------------------------------------------------------------------------- */

static int parse_endpoint(struct fp_zmtp *z, const char *ep, char *err, size_t err_size)
{
    const char *hp, *colon;
    size_t hlen;
    char *end;
    long port;

    if (strlen(ep) >= sizeof(z->endpoint))
        goto bad;
    snprintf(z->endpoint, sizeof(z->endpoint), "%s", ep);
    if (strncmp(ep, "ipc://", 6) == 0) {
        if (ep[6] == '\0' || strlen(ep + 6) >= sizeof(z->ipc_path))
            goto bad;
        snprintf(z->ipc_path, sizeof(z->ipc_path), "%s", ep + 6);
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) != 0) {
        (void)snprintf(err, err_size, "endpoint \"%s\": only tcp:// and ipc:// are supported", ep);
        return -EINVAL;
    }
    hp = ep + 6;
    colon = strrchr(hp, ':');
    if (colon == NULL || colon == hp)
        goto bad;
    hlen = (size_t)(colon - hp);
    if (hp[0] == '[') {
        /* [IPv6]:port */
        if (hlen < 3 || hp[hlen - 1] != ']')
            goto bad;
        hp++;
        hlen -= 2;
    }
    if (hlen >= sizeof(z->host) || memchr(hp, '*', hlen) != NULL)
        goto bad;
    memcpy(z->host, hp, hlen);
    z->host[hlen] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        goto bad;
    snprintf(z->port, sizeof(z->port), "%ld", port);
    return 0;
bad:
    (void)snprintf(err, err_size, "endpoint \"%s\" is not tcp://HOST:PORT or ipc://PATH", ep);
    return -EINVAL;
}

/* --- connection lifecycle ------------------------------------------------------------------- */

static void schedule_retry(struct fp_zmtp *z, int64_t now)
{
    int64_t base = z->opts.reconnect_ivl_ms;

    z->next_attempt_ms = now + z->cur_ivl_ms + (int64_t)(random_u32() % (uint32_t)base);
    if (z->opts.reconnect_ivl_max_ms > base) {
        z->cur_ivl_ms *= 2;
        if (z->cur_ivl_ms > z->opts.reconnect_ivl_max_ms)
            z->cur_ivl_ms = z->opts.reconnect_ivl_max_ms;
    }
}

/* Closes the socket and drops everything buffered; reason is for the debug log. */
static void drop(struct fp_zmtp *z, int64_t now, const char *reason)
{
    if (z->fd >= 0)
        (void)close(z->fd);
    z->fd = -1;
    if (z->state == READY)
        z->st.disconnects++;
    else if (z->state != IDLE)
        z->st.failed_attempts++;
    fp_log_debug("zmtp", "%s: %s", z->endpoint, reason);
    z->state = IDLE;
    z->in_off = z->in_len = z->consume = 0;
    z->have_frame = false;
    z->out_off = z->out_len = 0;
    if (z->out_cap > KEEP_OUT_BYTES) {
        free(z->out);
        z->out = NULL;
        z->out_cap = 0;
    }
    schedule_retry(z, now);
}

static void protocol_error(struct fp_zmtp *z, int64_t now, const char *what)
{
    z->st.protocol_errors++;
    drop(z, now, what);
}

/* Appends bytes to the outgoing buffer, growing it. Returns 0 or -ENOMEM. */
static int out_append(struct fp_zmtp *z, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t need;

    if (z->out_off > 0 && z->out_off == z->out_len)
        z->out_off = z->out_len = 0;
    need = z->out_len + alen + blen;
    if (need > z->out_cap) {
        size_t cap = z->out_cap ? z->out_cap : 256;
        uint8_t *p;

        while (cap < need)
            cap *= 2;
        p = realloc(z->out, cap);
        if (p == NULL)
            return -ENOMEM;
        z->out = p;
        z->out_cap = cap;
    }
    memcpy(z->out + z->out_len, a, alen);
    if (blen > 0)
        memcpy(z->out + z->out_len + alen, b, blen);
    z->out_len += alen + blen;
    return 0;
}

/* A frame header for len body bytes into hdr; returns its size. */
static size_t frame_header(uint8_t hdr[MAX_HEADER_BYTES], uint8_t flags, uint64_t len)
{
    if (len <= 255) {
        hdr[0] = flags;
        hdr[1] = (uint8_t)len;
        return 2;
    }
    hdr[0] = flags | FLAG_LONG;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 9;
}

/* Queues our greeting and READY (Socket-Type DEALER). Returns 0 or -ENOMEM. */
static int queue_handshake(struct fp_zmtp *z)
{
    static const char type_name[] = "Socket-Type", type_value[] = "DEALER";
    uint8_t g[GREETING_BYTES] = {0}, cmd[64], hdr[MAX_HEADER_BYTES];
    size_t n = 0, h;

    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3; /* version 3.0 */
    g[11] = 0;
    memcpy(g + 12, "NULL", 4);
    /* g[32], as-server, stays 0: NULL has no roles. */
    cmd[n++] = 5;
    memcpy(cmd + n, "READY", 5);
    n += 5;
    cmd[n++] = (uint8_t)(sizeof(type_name) - 1);
    memcpy(cmd + n, type_name, sizeof(type_name) - 1);
    n += sizeof(type_name) - 1;
    cmd[n++] = 0;
    cmd[n++] = 0;
    cmd[n++] = 0;
    cmd[n++] = (uint8_t)(sizeof(type_value) - 1);
    memcpy(cmd + n, type_value, sizeof(type_value) - 1);
    n += sizeof(type_value) - 1;
    h = frame_header(hdr, FLAG_COMMAND, n);
    if (out_append(z, g, sizeof(g), NULL, 0) < 0 || out_append(z, hdr, h, cmd, n) < 0)
        return -ENOMEM;
    return 0;
}

static int open_socket(struct fp_zmtp *z, struct sockaddr_storage *sa, socklen_t *sa_len)
{
    if (z->ipc_path[0] != '\0') {
        struct sockaddr_un *un = (struct sockaddr_un *)sa;

        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, z->ipc_path, strlen(z->ipc_path) + 1);
        *sa_len = (socklen_t)sizeof(*un);
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
        int r;

        /* IPv4 unless the endpoint spelled an IPv6 address (see the top of the file). */
        hints.ai_family = strchr(z->host, ':') != NULL ? AF_INET6 : AF_INET;
        r = getaddrinfo(z->host, z->port, &hints, &ai);
        if (r != 0) {
            fp_log_debug("zmtp", "%s: cannot resolve \"%s\": %s", z->endpoint, z->host,
                         gai_strerror(r));
            return -EHOSTUNREACH;
        }
        memcpy(sa, ai->ai_addr, ai->ai_addrlen);
        *sa_len = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    return socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* True when a TCP socket is connected to itself: connecting to a free port in the ephemeral
 * range can pick that port as the source, and the kernel then joins the two ends (simultaneous
 * open). Our own greeting and READY would come back and pass for a peer's. */
static bool self_connected(int fd)
{
    struct sockaddr_storage a, b;
    socklen_t alen = sizeof(a), blen = sizeof(b);

    if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0 ||
        getpeername(fd, (struct sockaddr *)&b, &blen) < 0)
        return false;
    return a.ss_family != AF_UNIX && alen == blen && memcmp(&a, &b, alen) == 0;
}

/* The TCP (or Unix) connection is up: start the handshake. */
static void connected(struct fp_zmtp *z, int64_t now)
{
    if (self_connected(z->fd)) {
        drop(z, now, "connected to itself (nobody listens on that port)");
        return;
    }
    z->state = HANDSHAKE;
    z->got_greeting = false;
    if (queue_handshake(z) < 0)
        drop(z, now, "out of memory for the handshake");
}

static void start_attempt(struct fp_zmtp *z, int64_t now)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    int one = 1;

    z->fd = open_socket(z, &sa, &sa_len);
    z->state = CONNECTING;
    z->deadline_ms = now + z->opts.handshake_timeout_ms;
    if (z->fd < 0) {
        drop(z, now, "cannot create a socket");
        return;
    }
    if (sa.ss_family != AF_UNIX)
        (void)setsockopt(z->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(z->fd, (struct sockaddr *)&sa, sa_len) == 0)
        connected(z, now);
    else if (errno != EINPROGRESS && errno != EAGAIN)
        drop(z, now, strerror(errno));
}

/* --- output --------------------------------------------------------------------------------- */

/* Writes what is pending. Returns 0, or -1 when the link was dropped. */
static int flush_out(struct fp_zmtp *z, int64_t now)
{
    while (z->out_off < z->out_len) {
        ssize_t n = send(z->fd, z->out + z->out_off, z->out_len - z->out_off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            drop(z, now, strerror(errno));
            return -1;
        }
        z->out_off += (size_t)n;
    }
    z->out_off = z->out_len = 0;
    if (z->out_cap > KEEP_OUT_BYTES) {
        free(z->out);
        z->out = NULL;
        z->out_cap = 0;
    }
    return 0;
}

int fp_zmtp_send(struct fp_zmtp *z, const void *buf, size_t len)
{
    uint8_t hdr[MAX_HEADER_BYTES];
    size_t h = frame_header(hdr, 0, len), pending = z->out_len - z->out_off, done = 0;
    int64_t now = fp_clock_mono_ms();

    if (z->state != READY)
        return -EAGAIN;
    if (pending > 0 && pending + h + len > z->opts.max_out_bytes)
        return -EAGAIN;
    if (pending == 0) {
        /* Straight to the socket; only what it does not take is copied. */
        struct iovec iov[2] = {{hdr, h}, {(void *)buf, len}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
        ssize_t n;

        do
            n = sendmsg(z->fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            drop(z, now, strerror(errno));
            return -EAGAIN;
        }
        done = n > 0 ? (size_t)n : 0;
    }
    if (done >= h + len)
        return 0;
    if (done < h) {
        if (out_append(z, hdr + done, h - done, buf, len) < 0)
            goto nomem;
    } else if (out_append(z, (const uint8_t *)buf + (done - h), len - (done - h), NULL, 0) < 0) {
        goto nomem;
    }
    return 0;
nomem:
    /* Part of the frame may be on the wire already: the stream cannot continue. */
    if (done > 0)
        drop(z, now, "out of memory for a partly written frame");
    return -ENOMEM;
}

/* --- input ---------------------------------------------------------------------------------- */

/* Looks at the frame at in_off. Returns 1 with *ret_flags, *ret_hdr and *ret_body when all of
 * it is buffered, 0 when more bytes are needed (*ret_hdr + *ret_body says how many in all, once
 * the header is in), or -1 for a protocol error (reserved bits, over max_in_bytes). */
static int peek_frame(struct fp_zmtp *z, uint8_t *ret_flags, size_t *ret_hdr, uint64_t *ret_body)
{
    const uint8_t *p = z->in + z->in_off;
    size_t avail = z->in_len - z->in_off;
    uint64_t body = 0;
    size_t h;

    *ret_hdr = 0;
    *ret_body = 0;
    if (avail < 1)
        return 0;
    if (p[0] & FLAGS_RESERVED)
        return -1;
    h = (p[0] & FLAG_LONG) ? 9 : 2;
    if (avail < h)
        return 0;
    if (h == 2) {
        body = p[1];
    } else {
        for (int i = 0; i < 8; i++)
            body = (body << 8) | p[1 + i];
    }
    if (body > z->opts.max_in_bytes)
        return -1;
    *ret_flags = p[0];
    *ret_hdr = h;
    *ret_body = body;
    return avail - h >= body ? 1 : 0;
}

/* The value of metadata property name in a READY body, or NULL. Sets *bad on malformed data. */
static const uint8_t *ready_property(const uint8_t *p, size_t n, const char *name, size_t *ret_len,
                                     bool *bad)
{
    size_t name_len = strlen(name);

    while (n > 0) {
        size_t nl = p[0];
        uint32_t vl;

        if (n < 1 + nl + 4) {
            *bad = true;
            return NULL;
        }
        vl = (uint32_t)p[1 + nl] << 24 | (uint32_t)p[2 + nl] << 16 | (uint32_t)p[3 + nl] << 8 |
             p[4 + nl];
        if (n - (1 + nl + 4) < vl) {
            *bad = true;
            return NULL;
        }
        /* Property names are case-insensitive (ZMTP 3.0). */
        if (nl == name_len && strncasecmp((const char *)p + 1, name, nl) == 0) {
            *ret_len = vl;
            return p + 1 + nl + 4;
        }
        p += 1 + nl + 4 + vl;
        n -= 1 + nl + 4 + vl;
    }
    return NULL;
}

/* Handles one command frame's body. Returns 0, or -1 when the link was dropped. */
static int handle_command(struct fp_zmtp *z, const uint8_t *p, size_t n, int64_t now)
{
    size_t name_len;
    const uint8_t *data;
    size_t data_len;

    if (n < 1 || n < 1 + (size_t)p[0]) {
        protocol_error(z, now, "malformed command");
        return -1;
    }
    name_len = p[0];
    data = p + 1 + name_len;
    data_len = n - 1 - name_len;
    if (name_len == 5 && memcmp(p + 1, "READY", 5) == 0) {
        const uint8_t *type;
        size_t type_len = 0;
        bool bad = false;

        if (z->state != HANDSHAKE) {
            protocol_error(z, now, "READY after the handshake");
            return -1;
        }
        type = ready_property(data, data_len, "Socket-Type", &type_len, &bad);
        /* A DEALER talks to a ROUTER or another DEALER (RFC 28). */
        if (bad || type == NULL ||
            !((type_len == 6 && memcmp(type, "ROUTER", 6) == 0) ||
              (type_len == 6 && memcmp(type, "DEALER", 6) == 0))) {
            protocol_error(z, now, "peer's READY names no ROUTER or DEALER socket type");
            return -1;
        }
        z->state = READY;
        z->cur_ivl_ms = z->opts.reconnect_ivl_ms;
        z->st.connects++;
        fp_log_debug("zmtp", "%s: connected", z->endpoint);
        return 0;
    }
    if (name_len == 5 && memcmp(p + 1, "ERROR", 5) == 0) {
        protocol_error(z, now, "peer sent ERROR");
        return -1;
    }
    if (z->state != READY) {
        protocol_error(z, now, "command before READY");
        return -1;
    }
    if (name_len == 4 && memcmp(p + 1, "PING", 4) == 0) {
        uint8_t pong[1 + 4 + MAX_PING_CONTEXT], hdr[MAX_HEADER_BYTES];
        size_t ctx_len, h;

        /* TTL (2 bytes), then the context to echo. */
        if (data_len < 2 || data_len - 2 > MAX_PING_CONTEXT) {
            protocol_error(z, now, "malformed PING");
            return -1;
        }
        ctx_len = data_len - 2;
        pong[0] = 4;
        memcpy(pong + 1, "PONG", 4);
        memcpy(pong + 5, data + 2, ctx_len);
        h = frame_header(hdr, FLAG_COMMAND, 5 + ctx_len);
        /* Answered even over the bound: a PONG is tiny and keeps the peer from timing us out. */
        if (out_append(z, hdr, h, pong, 5 + ctx_len) < 0) {
            drop(z, now, "out of memory for a PONG");
            return -1;
        }
        z->st.pings++;
    }
    /* PONG, SUBSCRIBE, CANCEL and commands we do not know: ignored, as ZMTP asks. */
    return 0;
}

/* Parses buffered input: validates the greeting, handles commands, stops at the first data
 * frame (have_frame). Returns 0, or -1 when the link was dropped. */
static int process_input(struct fp_zmtp *z, int64_t now)
{
    while (!z->have_frame) {
        uint8_t flags = 0;
        size_t h;
        uint64_t body;
        int r;

        if (z->state == HANDSHAKE && !z->got_greeting) {
            const uint8_t *g = z->in + z->in_off;

            if (z->in_len - z->in_off < GREETING_BYTES) {
                /* Reject a non-ZMTP peer as soon as its first byte shows it. */
                if (z->in_len > z->in_off && g[0] != 0xff) {
                    protocol_error(z, now, "peer does not speak ZMTP");
                    return -1;
                }
                return 0;
            }
            if (g[0] != 0xff || (g[9] & 1) != 1 || g[10] < 3) {
                protocol_error(z, now, "bad greeting (not ZMTP 3)");
                return -1;
            }
            if (memcmp(g + 12, "NULL", 4) != 0 || g[16] != 0) {
                protocol_error(z, now, "peer wants a security mechanism other than NULL");
                return -1;
            }
            z->got_greeting = true;
            z->in_off += GREETING_BYTES;
            continue;
        }
        r = peek_frame(z, &flags, &h, &body);
        if (r < 0) {
            protocol_error(z, now, "bad frame header or frame over the size limit");
            return -1;
        }
        if (r == 0)
            return 0;
        if (flags & FLAG_COMMAND) {
            if (flags & FLAG_MORE) {
                protocol_error(z, now, "command with MORE set");
                return -1;
            }
            if (handle_command(z, z->in + z->in_off + h, (size_t)body, now) < 0)
                return -1;
            z->in_off += h + (size_t)body;
            continue;
        }
        if (z->state != READY) {
            protocol_error(z, now, "message before the handshake completed");
            return -1;
        }
        z->have_frame = true;
    }
    return 0;
}

/* Reads once from the socket into the input buffer, grown only as far as the frame being read
 * needs (at most max_in_bytes and a header): a peer that floods us fills the buffer and waits for
 * the parser. Called with nothing handed out by recv. Returns 0, or -1 when the link was
 * dropped (peer gone). */
static int read_in(struct fp_zmtp *z, int64_t now)
{
    size_t need = INITIAL_IN_BYTES, h = 0;
    uint64_t body = 0;
    uint8_t flags;
    ssize_t n;

    if (z->in_off > 0) {
        memmove(z->in, z->in + z->in_off, z->in_len - z->in_off);
        z->in_len -= z->in_off;
        z->in_off = 0;
    }
    if ((z->state == READY || z->got_greeting) && peek_frame(z, &flags, &h, &body) == 0 &&
        h + body > need)
        need = h + (size_t)body;
    if (need > z->in_cap) {
        uint8_t *p = realloc(z->in, need);

        if (p == NULL) {
            drop(z, now, "out of memory for input");
            return -1;
        }
        z->in = p;
        z->in_cap = need;
    }
    if (z->in_len == z->in_cap)
        return 0; /* complete frames wait for the parser */
    do
        n = recv(z->fd, z->in + z->in_len, z->in_cap - z->in_len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        z->in_len += (size_t)n;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN))
        return 0;
    drop(z, now, n == 0 ? "peer closed the connection" : strerror(errno));
    return -1;
}

int fp_zmtp_recv(struct fp_zmtp *z, const uint8_t **ret_data, size_t *ret_len, bool *ret_more)
{
    int64_t now = fp_clock_mono_ms();
    uint8_t flags = 0;
    size_t h;
    uint64_t body;

    if (z->consume > 0) {
        z->in_off += z->consume;
        z->consume = 0;
        z->have_frame = false;
    }
    if (z->state != HANDSHAKE && z->state != READY)
        return -EAGAIN;
    if (process_input(z, now) < 0)
        return -EAGAIN;
    if (!z->have_frame) {
        if (read_in(z, now) < 0 || process_input(z, now) < 0 || !z->have_frame)
            return -EAGAIN;
    }
    if (peek_frame(z, &flags, &h, &body) != 1)
        return -EAGAIN; /* cannot happen: have_frame means it is all here */
    *ret_data = z->in + z->in_off + h;
    *ret_len = (size_t)body;
    *ret_more = (flags & FLAG_MORE) != 0;
    z->consume = h + (size_t)body;
    return 0;
}

/* --- driving -------------------------------------------------------------------------------- */

/* Finishes a non-blocking connect. */
static void finish_connect(struct fp_zmtp *z, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(z->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0)
        drop(z, now, strerror(err));
    else
        connected(z, now);
}

int fp_zmtp_poll(struct fp_zmtp *z, int64_t timeout_ms)
{
    int64_t now = fp_clock_mono_ms(), deadline = now + (timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        struct pollfd pfd = {.fd = -1};
        int64_t wait = deadline - now;
        int r;

        if (z->state == IDLE && now >= z->next_attempt_ms)
            start_attempt(z, now);
        if ((z->state == CONNECTING || z->state == HANDSHAKE) && now >= z->deadline_ms)
            drop(z, now, "connect or handshake timed out");
        if (z->consume > 0) {
            /* The frame recv handed out is done with: look past it. */
            z->in_off += z->consume;
            z->consume = 0;
            z->have_frame = false;
        }
        if ((z->state == HANDSHAKE || z->state == READY) && process_input(z, now) == 0 &&
            z->have_frame)
            return 1;
        if (z->state == IDLE) {
            if (z->next_attempt_ms - now < wait)
                wait = z->next_attempt_ms - now;
        } else {
            pfd.fd = z->fd;
            pfd.events = z->state == CONNECTING ? POLLOUT : POLLIN;
            if (z->state != CONNECTING && z->out_off < z->out_len)
                pfd.events |= POLLOUT;
            if (z->deadline_ms - now < wait && z->state != READY)
                wait = z->deadline_ms - now;
        }
        if (wait < 0)
            wait = 0;
        r = poll(&pfd, pfd.fd >= 0 ? 1 : 0, (int)wait);
        if (r < 0) {
            if (errno == EINTR)
                return -EINTR;
            return -errno;
        }
        now = fp_clock_mono_ms();
        if (r > 0 && pfd.fd >= 0) {
            if (z->state == CONNECTING) {
                finish_connect(z, now);
                if (z->state == HANDSHAKE)
                    (void)flush_out(z, now);
            } else {
                if ((pfd.revents & POLLOUT) && flush_out(z, now) < 0)
                    continue;
                if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && read_in(z, now) < 0)
                    continue;
                /* A PONG queued while reading goes out at once. */
                if (z->state != IDLE && process_input(z, now) == 0 && z->out_off < z->out_len)
                    (void)flush_out(z, now);
                if (z->state != IDLE && z->have_frame)
                    return 1;
            }
        }
        if (now >= deadline)
            return 0;
    }
}

bool fp_zmtp_connected(const struct fp_zmtp *z)
{
    return z->state == READY;
}

void fp_zmtp_retry_now(struct fp_zmtp *z)
{
    if (z->state == IDLE)
        z->next_attempt_ms = 0;
}

void fp_zmtp_get_stats(const struct fp_zmtp *z, struct fp_zmtp_stats *ret)
{
    *ret = z->st;
}

int fp_zmtp_new(const struct fp_zmtp_options *opts, struct fp_zmtp **ret, char *err,
                size_t err_size)
{
    struct fp_zmtp *z = calloc(1, sizeof(*z));
    int r;

    if (z == NULL) {
        (void)snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    z->fd = -1;
    z->opts = *opts;
    z->opts.endpoint = NULL;
    if (z->opts.reconnect_ivl_ms <= 0)
        z->opts.reconnect_ivl_ms = 100;
    if (z->opts.handshake_timeout_ms <= 0)
        z->opts.handshake_timeout_ms = 30000;
    if (z->opts.max_out_bytes == 0)
        z->opts.max_out_bytes = 1024 * 1024;
    if (z->opts.max_in_bytes == 0)
        z->opts.max_in_bytes = 1024 * 1024;
    z->cur_ivl_ms = z->opts.reconnect_ivl_ms;
    r = parse_endpoint(z, opts->endpoint != NULL ? opts->endpoint : "", err, err_size);
    if (r < 0) {
        free(z);
        return r;
    }
    /* As zmq_connect does: the first attempt starts at once. */
    start_attempt(z, fp_clock_mono_ms());
    *ret = z;
    return 0;
}

void fp_zmtp_destroy(struct fp_zmtp **zp)
{
    struct fp_zmtp *z = *zp;

    if (z == NULL)
        return;
    if (z->fd >= 0)
        (void)close(z->fd);
    free(z->in);
    free(z->out);
    free(z);
    *zp = NULL;
}
