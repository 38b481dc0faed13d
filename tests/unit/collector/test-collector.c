/* The collector end to end on a loopback port: a DEALER (as the probe's sender uses) sends encoded
 * batches and gets one Ack each: OK with the exact sample count, DUPLICATE for a resend, and the
 * refusals (BAD_SCHEMA, UNSUPPORTED_VERSION, TOO_LARGE) with a reason. Two devices sending back to
 * back are all acknowledged; afterwards the store, opened read-only, holds every value exactly
 * once, the device identity and the events. Also: a missing data directory and a busy endpoint
 * are refused by fp_collector_new with a reason.
 *
 * Every receive polls with a timeout, so a collector that stops answering fails the test instead
 * of hanging it. */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "batch.h"
#include "collector.h"
#include "store.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* How long an ack may take: generous, since a group commit fsyncs (slow disks, sanitizers). */
#define ACK_TIMEOUT_MS 10000
/* Small, so a TOO_LARGE batch is cheap to build. The collector lets ZeroMQ drop anything over
 * twice this without an answer, so the oversized batch must stay under 2x. */
#define MAX_MESSAGE_BYTES 4096
/* Samples an hour old: the collector stamps batches with its own clock, and the store refuses
 * samples past the raw retention (15 days) as too old. */
static int64_t T0;
/* Batches per device in the back-to-back burst. */
#define BURST 60

static void *zctx;

/* --- helpers ----------------------------------------------------------------------------------- */

struct server {
    struct fp_collector *c;
    pthread_t thread;
    int run_rc;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    s->run_rc = fp_collector_run(s->c);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void *dealer(const char *endpoint)
{
    void *sock = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    fp_assert(sock != NULL);
    fp_assert(zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) == 0);
    fp_assert(zmq_connect(sock, endpoint) == 0);
    return sock;
}

static void send_buf(void *sock, const uint8_t *buf, size_t len)
{
    fp_assert(zmq_send(sock, buf, len, 0) == (int)len);
}

/* Waits up to timeout_ms for one Ack. Returns it (new) or NULL when none came. */
static Fleetpulse__V1__Ack *try_recv_ack(void *sock, long timeout_ms)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    Fleetpulse__V1__Ack *a = NULL;
    zmq_msg_t msg;
    int more = 0;
    size_t more_len = sizeof(more);

    if (zmq_poll(&item, 1, timeout_ms) <= 0 || !(item.revents & ZMQ_POLLIN))
        return NULL;
    fp_assert(zmq_msg_init(&msg) == 0);
    fp_assert(zmq_msg_recv(&msg, sock, 0) >= 0);
    /* A DEALER sees the ack alone: the ROUTER consumed our routing id. */
    fp_assert(zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len) == 0);
    check_int(more, 0);
    check_int(fp_ack_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &a), 0);
    (void)zmq_msg_close(&msg);
    return a;
}

/* Waits for one Ack; a missing one is fatal (the collector is wedged or crashed). */
static Fleetpulse__V1__Ack *recv_ack_at(void *sock, const char *file, int line)
{
    Fleetpulse__V1__Ack *a = try_recv_ack(sock, ACK_TIMEOUT_MS);
    if (a == NULL) {
        fprintf(stderr, "%s:%d: no ack within %d ms\n", file, line, ACK_TIMEOUT_MS);
        fp_test_failures++;
        exit(1);
    }
    return a;
}
#define recv_ack(sock) recv_ack_at((sock), __FILE__, __LINE__)

/* Sends buf and checks the answer's status, epoch/seq, accepted count and that detail mentions
 * detail_part (NULL: detail must be empty). */
static void roundtrip_at(void *sock, const uint8_t *buf, size_t len, int status, uint64_t epoch,
                         uint64_t seq, uint64_t accepted, const char *detail_part,
                         const char *file, int line)
{
    Fleetpulse__V1__Ack *a;
    int before = fp_test_failures;

    send_buf(sock, buf, len);
    a = recv_ack_at(sock, file, line);
    check_int(a->status, status);
    check_int(a->epoch, epoch);
    check_int(a->seq, seq);
    check_int(a->samples_accepted, accepted);
    check_int(a->samples_refused, 0);
    if (detail_part == NULL)
        check_str(a->detail, "");
    else
        check(strstr(a->detail, detail_part) != NULL);
    if (fp_test_failures != before)
        fprintf(stderr, "%s:%d: ^ for this ack: status %s, detail \"%s\"\n", file, line,
                fp_ack_status_name(a->status), a->detail);
    fleetpulse__v1__ack__free_unpacked(a, NULL);
}
#define roundtrip(sock, buf, len, status, epoch, seq, accepted, detail)                            \
    roundtrip_at((sock), (buf), (len), (status), (epoch), (seq), (accepted), (detail), __FILE__,   \
                 __LINE__)

enum {
    ACK_OK = FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK,
    ACK_DUPLICATE = FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE,
    ACK_BAD_SCHEMA = FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA,
    ACK_TOO_LARGE = FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE,
    ACK_VERSION = FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION,
};

/* The burst's batches: one sample of "load_avg" per batch, a value that names device and seq. */
static double burst_value(int dev, uint64_t seq)
{
    return dev == 0 ? (double)seq + 0.25 : -(double)seq * 1.5;
}

static int64_t burst_ts(uint64_t seq)
{
    return T0 + (int64_t)seq * 1000;
}

static void encode_burst(struct fp_batch_builder *b, const char *device, int dev, uint64_t epoch,
                         uint64_t seq, uint8_t **buf, size_t *len)
{
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add(b, "load_avg", FP_METRIC_GAUGE, NULL, 0, burst_ts(seq),
                                   burst_value(dev, seq)),
              0);
    fp_assert(fp_batch_builder_encode(b, device, epoch, seq, T0, 0, buf, len) == 0);
}

struct points {
    int64_t ts[256];
    double v[256];
    size_t n;
};

static int collect(void *ud, int64_t ts, double v)
{
    struct points *p = ud;
    if (p->n < ARRAY_SIZE(p->ts)) {
        p->ts[p->n] = ts;
        p->v[p->n] = v;
    }
    p->n++;
    return 0;
}

/* Reads every point of the one series matching m. */
static void read_series(struct fp_store_reader *r, const struct fp_matcher *m, size_t n,
                        struct points *pts, struct fp_series_desc *ret_desc)
{
    uint64_t *ids = NULL;
    size_t nids = 0;

    pts->n = 0;
    check_int(fp_store_select(r, m, n, &ids, &nids), 0);
    check_int(nids, 1);
    if (nids == 1) {
        check_int(fp_store_read_range(r, ids[0], 0, INT64_MAX, collect, pts), 0);
        if (ret_desc != NULL)
            check_int(fp_store_series_get(r, ids[0], ret_desc), 0);
    }
    free(ids);
}

static const char *info_value(const struct fp_device_desc *d, const char *name)
{
    for (size_t i = 0; i < d->n_info; i++)
        if (strcmp(d->info[i].name, name) == 0)
            return d->info[i].value;
    return NULL;
}

struct events {
    struct fp_event_desc first;
    int n;
};

static int count_events(void *ud, const struct fp_event_desc *e)
{
    struct events *ev = ud;
    if (ev->n++ == 0)
        ev->first = *e;
    return 0;
}

static int count_device(void *ud, const struct fp_device_desc *d)
{
    (*(int *)ud)++;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- the test ---------------------------------------------------------------------------------- */

static void test_serve(const char *dir)
{
    static const struct fp_label cpu0[] = {{"zone", "cpu0"}};
    static const struct fp_label llama[] = {{"model", "llama-3-8b"}};
    static const struct fp_label attrs[] = {{"stage", "2"}};
    static const struct fp_label info[] = {
        {"hostname", "edge-a-host"},
        {"model", "llama-3-8b"},
        {"memory_total_bytes", "8589934592"},
        {"cpu_count", "8"},
        {"tag.rack", "r7"},
    };
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const char *dev_names[2] = {"edge-a", "edge-b"};
    const uint64_t epochs[2] = {11, 22};
    struct fp_collector_options opts;
    struct fp_collector_stats st;
    struct fp_batch_builder *b = NULL;
    struct server srv = {0};
    struct fp_store *store = NULL;
    struct fp_store_reader *rd = NULL;
    struct fp_series_desc desc;
    struct fp_device_desc dd;
    struct points pts;
    struct events ev = {0};
    uint8_t *buf, *first_buf;
    size_t len, first_len;
    void *a, *bsock;
    const char *ep;
    char err[256];
    uint64_t applied = 0, duplicates = 0, received = 0, samples = 0;
    bool acked[2][BURST + 3] = {{false}};
    double t;

    fp_collector_options_default(&opts);
    opts.listen = "tcp://127.0.0.1:0";
    opts.data_dir = dir;
    opts.limits.max_message_bytes = MAX_MESSAGE_BYTES;
    err[0] = '\0';
    if (fp_collector_new(&opts, &srv.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_collector_new: %s\n", err);
        fp_assert(false);
    }
    ep = fp_collector_endpoint(srv.c);
    check(strncmp(ep, "tcp://127.0.0.1:", 16) == 0);
    check(atoi(ep + 16) > 0); /* port 0 resolved to the bound port */
    fp_assert(pthread_create(&srv.thread, NULL, serve, &srv) == 0);

    /* fp_collector_new on an endpoint that is already bound: refused, with the reason. */
    {
        struct fp_collector_options o2 = opts;
        struct fp_collector *c2 = NULL;
        char dir2[] = "/tmp/fp-collector-test-XXXXXX";
        int r;
        fp_assert(mkdtemp(dir2) != NULL);
        o2.listen = ep;
        o2.data_dir = dir2;
        err[0] = '\0';
        r = fp_collector_new(&o2, &c2, err, sizeof(err));
        check(r < 0);
        check(c2 == NULL);
        check(strstr(err, "cannot listen") != NULL);
        check(strstr(err, ep) != NULL);
        (void)nftw(dir2, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }

    a = dealer(ep);
    fp_assert(fp_batch_builder_new(&b) == 0);

    /* 1. A valid batch: 3 + 2 samples, an event, the device identity. */
    check_int(fp_batch_builder_add(b, "temperature_celsius", FP_METRIC_GAUGE, cpu0, 1, T0, 51.234),
              0);
    check_int(fp_batch_builder_add(b, "temperature_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 1000,
                                   -5.0),
              0);
    check_int(fp_batch_builder_add(b, "temperature_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 2000,
                                   1e300),
              0);
    check_int(fp_batch_builder_add(b, "tokens_total", FP_METRIC_COUNTER, llama, 1, T0, 100.0), 0);
    check_int(fp_batch_builder_add(b, "tokens_total", FP_METRIC_COUNTER, llama, 1, T0 + 1000,
                                   250.0),
              0);
    check_int(fp_batch_builder_add_event(b, T0 + 500, "canary", FP_SEVERITY_WARNING,
                                         "p95 latency regressed", attrs, 1),
              0);
    check_int(fp_batch_builder_set_info(b, info, ARRAY_SIZE(info)), 0);
    fp_assert(fp_batch_builder_encode(b, "edge-a", epochs[0], 1, T0, 4, &first_buf, &first_len) ==
              0);
    fp_assert(first_len < MAX_MESSAGE_BYTES);
    roundtrip(a, first_buf, first_len, ACK_OK, epochs[0], 1, 5, NULL);
    received++, applied++, samples += 5;

    /* 2. The same bytes again (a probe that missed the ack): nothing stored twice. */
    roundtrip(a, first_buf, first_len, ACK_DUPLICATE, epochs[0], 1, 0, "already stored");
    received++, duplicates++;

    /* 3. seq 2, no identity this time: the stored one is kept. */
    fp_batch_builder_reset(b);
    check_int(fp_batch_builder_add(b, "temperature_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 3000,
                                   52.5),
              0);
    check_int(fp_batch_builder_add(b, "temperature_celsius", FP_METRIC_GAUGE, cpu0, 1, T0 + 4000,
                                   0.125),
              0);
    fp_assert(fp_batch_builder_encode(b, "edge-a", epochs[0], 2, T0, 4, &buf, &len) == 0);
    roundtrip(a, buf, len, ACK_OK, epochs[0], 2, 2, NULL);
    free(buf);
    received++, applied++, samples += 2;

    /* 4. Refusals, answered at once with the reason. A message that does not decode has no
     * epoch/seq to answer with: 0/0. */
    roundtrip(a, garbage, sizeof(garbage), ACK_BAD_SCHEMA, 0, 0, 0, "decode failed");
    received++;
    roundtrip(a, garbage, 0, ACK_BAD_SCHEMA, 0, 0, 0, "schema_version missing");
    received++;
    /* A refused batch whose header can be read is answered with its own epoch and seq, so the
     * probe matches the refusal and stops resending (it matches acks by seq). */
    {
        /* Valid protobuf, invalid content: a reserved label name. */
        static const struct fp_label dunder[] = {{"__x", "1"}};
        fp_batch_builder_reset(b);
        check_int(fp_batch_builder_add(b, "load_avg", FP_METRIC_GAUGE, dunder, 1, T0, 1.0), 0);
        fp_assert(fp_batch_builder_encode(b, "edge-a", epochs[0], 3, T0, 0, &buf, &len) == 0);
        roundtrip(a, buf, len, ACK_BAD_SCHEMA, epochs[0], 3, 0, "invalid label name");
        free(buf);
        received++;
    }
    {
        /* schema_version 2, as a newer probe would send */
        Fleetpulse__V1__Batch hb = FLEETPULSE__V1__BATCH__INIT;
        hb.schema_version = FP_SCHEMA_VERSION + 1;
        hb.device_id = (char *)"edge-a";
        hb.epoch = epochs[0];
        hb.seq = 3;
        len = fleetpulse__v1__batch__get_packed_size(&hb);
        buf = malloc(len + 1);
        fp_assert(buf != NULL);
        (void)fleetpulse__v1__batch__pack(&hb, buf);
        roundtrip(a, buf, len, ACK_VERSION, epochs[0], 3, 0, "schema_version 2");
        free(buf);
        received++;
    }
    {
        /* Over max_message_bytes but under twice it: a real batch, answered TOO_LARGE. */
        fp_batch_builder_reset(b);
        for (int i = 0; i < 400; i++)
            check_int(fp_batch_builder_add(b, "load_avg", FP_METRIC_GAUGE, NULL, 0, T0 + i,
                                           i * 0.1),
                      0);
        fp_assert(fp_batch_builder_encode(b, "edge-a", epochs[0], 3, T0, 0, &buf, &len) == 0);
        fp_assert(len > MAX_MESSAGE_BYTES && len < 2 * MAX_MESSAGE_BYTES);
        roundtrip(a, buf, len, ACK_TOO_LARGE, epochs[0], 3, 0, "limit 4096");
        free(buf);
        received++;
    }
    {
        /* Far over the limit: ZeroMQ drops that peer without an answer; the others go on. */
        void *big = dealer(ep);
        size_t big_len = 8 * MAX_MESSAGE_BYTES;
        uint8_t *junk = calloc(1, big_len);
        Fleetpulse__V1__Ack *none;
        fp_assert(junk != NULL);
        send_buf(big, junk, big_len);
        none = try_recv_ack(big, 500);
        check(none == NULL);
        if (none != NULL)
            fleetpulse__v1__ack__free_unpacked(none, NULL);
        free(junk);
        (void)zmq_close(big);
    }

    /* 5. Two devices back to back: every batch sent before any ack is read, so the collector
     * finds many waiting and commits them in groups. seq 1 and 2 of edge-a are taken above; its
     * refused seq 3 was never stored, so the burst starts there. The last of edge-b's is a resend
     * of its seq 10, which may meet the original in the same transaction. */
    bsock = dealer(ep);
    for (uint64_t i = 0; i < BURST; i++) {
        for (int dev = 0; dev < 2; dev++) {
            uint64_t seq = dev == 0 ? i + 3 : i + 1;
            encode_burst(b, dev_names[dev], dev, epochs[dev], seq, &buf, &len);
            send_buf(dev == 0 ? a : bsock, buf, len);
            free(buf);
        }
    }
    encode_burst(b, dev_names[1], 1, epochs[1], 10, &buf, &len);
    send_buf(bsock, buf, len);
    free(buf);
    received += 2 * BURST + 1;
    applied += 2 * BURST;
    samples += 2 * BURST;
    duplicates++;
    for (int dev = 0; dev < 2; dev++) {
        void *sock = dev == 0 ? a : bsock;
        int n_dup = 0;
        for (int k = 0; k < BURST + (dev == 1); k++) {
            Fleetpulse__V1__Ack *ack = recv_ack(sock);
            check(ack->epoch == epochs[dev]);
            if (ack->seq < ARRAY_SIZE(acked[0])) {
                if ((int)ack->status == ACK_DUPLICATE) {
                    check_int(ack->seq, 10);
                    check_int(dev, 1);
                    check_int(ack->samples_accepted, 0);
                    n_dup++;
                } else {
                    check_int(ack->status, ACK_OK);
                    check_int(ack->samples_accepted, 1);
                    check(!acked[dev][ack->seq]); /* one OK per batch */
                    acked[dev][ack->seq] = true;
                }
            } else {
                check(ack->seq < ARRAY_SIZE(acked[0]));
            }
            fleetpulse__v1__ack__free_unpacked(ack, NULL);
        }
        check_int(n_dup, dev == 1 ? 1 : 0);
        for (uint64_t i = 0; i < BURST; i++)
            check(acked[dev][dev == 0 ? i + 3 : i + 1]);
    }
    fp_batch_builder_destroy(&b);
    free(first_buf);
    (void)zmq_close(a);
    (void)zmq_close(bsock);

    /* Stop: fp_collector_run returns within about a second. */
    t = now_s();
    fp_collector_stop(srv.c);
    fp_assert(pthread_join(srv.thread, NULL) == 0);
    check(now_s() - t < 3.0);
    check_int(srv.run_rc, 0);

    fp_collector_get_stats(srv.c, &st);
    check_int(st.batches_received, received);
    check_int(st.batches_applied, applied);
    check_int(st.batches_duplicate, duplicates);
    check_int(st.batches_refused[ACK_BAD_SCHEMA], 3);
    check_int(st.batches_refused[ACK_VERSION], 1);
    check_int(st.batches_refused[ACK_TOO_LARGE], 1);
    check_int(st.batches_refused[ACK_OK], 0);
    check_int(st.batches_retry, 0);
    /* Received counts what decoded, duplicates included (5 + 1 samples); applied does not. */
    check_int(st.samples_received, samples + 5 + 1);
    check_int(st.samples_applied, samples);
    check_int(st.samples_refused, 0);
    check_int(st.malformed_messages, 0);
    /* Each commit carries at least one batch that reached the store. How many share one depends
     * on timing, so only the bound is checked (fewer commits than batches = group commit). */
    check(st.commits >= 1);
    check(st.commits <= st.batches_applied + st.batches_duplicate);
    fprintf(stderr, "collector: %" PRIu64 " batches stored in %" PRIu64 " commits\n",
            st.batches_applied + st.batches_duplicate, st.commits);
    fp_collector_destroy(&srv.c);
    check(srv.c == NULL);
    fp_collector_destroy(&srv.c); /* idempotent */

    /* What the store holds, read as the query service would. */
    err[0] = '\0';
    if (fp_store_open(dir, FP_STORE_READONLY, NULL, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_store_open: %s\n", err);
        fp_assert(false);
    }
    fp_assert(fp_store_reader_open(store, &rd) == 0);
    {
        const struct fp_matcher m[] = {{"__name__", "temperature_celsius", FP_MATCH_EQ},
                                       {"device", "edge-a", FP_MATCH_EQ}};
        read_series(rd, m, 2, &pts, &desc);
        check_int(pts.n, 5); /* 3 + 2, the duplicate not again */
        check_int(pts.ts[0], T0);
        check_double(pts.v[0], 51.234);
        check_int(pts.ts[1], T0 + 1000);
        check_double(pts.v[1], -5.0);
        check_int(pts.ts[2], T0 + 2000);
        check_double(pts.v[2], 1e300);
        check_int(pts.ts[3], T0 + 3000);
        check_double(pts.v[3], 52.5);
        check_int(pts.ts[4], T0 + 4000);
        check_double(pts.v[4], 0.125);
        check_int(desc.type, FP_SERIES_GAUGE);
        /* device, and the identity label model from DeviceInfo, are added; sorted */
        fp_assert(desc.n_labels == 3);
        check_str(desc.labels[0].name, "device");
        check_str(desc.labels[0].value, "edge-a");
        check_str(desc.labels[1].name, "model");
        check_str(desc.labels[1].value, "llama-3-8b");
        check_str(desc.labels[2].name, "zone");
        check_str(desc.labels[2].value, "cpu0");
    }
    {
        const struct fp_matcher m[] = {{"__name__", "tokens_total", FP_MATCH_EQ}};
        read_series(rd, m, 1, &pts, &desc);
        check_int(pts.n, 2);
        check_int(pts.ts[0], T0);
        check_double(pts.v[0], 100.0);
        check_int(pts.ts[1], T0 + 1000);
        check_double(pts.v[1], 250.0);
        check_int(desc.type, FP_SERIES_COUNTER);
    }
    for (int dev = 0; dev < 2; dev++) {
        const struct fp_matcher m[] = {{"__name__", "load_avg", FP_MATCH_EQ},
                                       {"device", dev_names[dev], FP_MATCH_EQ}};
        read_series(rd, m, 2, &pts, NULL);
        /* Exactly one point per batch: the refused TOO_LARGE batch left nothing, the resent
         * seq 10 nothing twice. */
        check_int(pts.n, BURST);
        for (size_t i = 0; i < pts.n && i < BURST; i++) {
            uint64_t seq = dev == 0 ? i + 3 : i + 1;
            check_int(pts.ts[i], burst_ts(seq));
            check_double(pts.v[i], burst_value(dev, seq));
        }
    }
    {
        /* The two probes, and the collector's own series under "@collector". */
        int n = 0;
        check_int(fp_store_devices(rd, count_device, &n), 0);
        check_int(n, 3);
        check_int(fp_store_device_get(rd, "@collector", &dd), 0);
        /* Its gauges: what was queued at the last wake-up, the longest commit. */
        const struct fp_matcher q[] = {{"__name__", "fleetpulse_collector_queue_batches",
                                        FP_MATCH_EQ}};
        read_series(rd, q, 1, &pts, &desc);
        check(pts.n >= 1 && pts.v[pts.n - 1] >= 1);
        check_int(desc.type, FP_SERIES_GAUGE);
        const struct fp_matcher cm[] = {{"__name__", "fleetpulse_collector_commit_max_seconds",
                                         FP_MATCH_EQ}};
        read_series(rd, cm, 1, &pts, NULL);
        check(pts.n >= 1 && pts.v[pts.n - 1] > 0 && pts.v[pts.n - 1] < 60);
    }
    check_int(fp_store_device_get(rd, "edge-a", &dd), 0);
    check_int(dd.batches, 2 + BURST);
    check_int(dd.samples, 5 + 2 + BURST);
    check_int(dd.duplicates, 1);
    check_int(dd.last_epoch, epochs[0]);
    check_int(dd.last_seq, BURST + 2);
    check_int(dd.dropped_samples_total, 0); /* as last reported (the burst sends 0) */
    check_str(info_value(&dd, "hostname"), "edge-a-host");
    check_str(info_value(&dd, "model"), "llama-3-8b");
    check_str(info_value(&dd, "memory_total_bytes"), "8589934592");
    check_str(info_value(&dd, "cpu_count"), "8");
    check_str(info_value(&dd, "tag.rack"), "r7");
    check_int(dd.n_info, ARRAY_SIZE(info));
    check_int(fp_store_device_get(rd, "edge-b", &dd), 0);
    check_int(dd.batches, BURST);
    check_int(dd.samples, BURST);
    check_int(dd.duplicates, 1);
    check_int(dd.last_epoch, epochs[1]);
    check_int(dd.n_info, 0);

    check_int(fp_store_events(rd, "edge-a", 0, INT64_MAX, count_events, &ev), 0);
    check_int(ev.n, 1); /* the duplicate's event not again */
    if (ev.n >= 1) {
        check_int(ev.first.ts_ms, T0 + 500);
        check_str(ev.first.device, "edge-a");
        check_str(ev.first.kind, "canary");
        check_int(ev.first.severity, FP_SEVERITY_WARNING);
        check_str(ev.first.message, "p95 latency regressed");
        fp_assert(ev.first.n_attrs == 1);
        check_str(ev.first.attrs[0].name, "stage");
        check_str(ev.first.attrs[0].value, "2");
    }
    fp_store_reader_close(&rd);
    fp_store_close(&store);
}

/* Envelopes: a REQ peer (one empty delimiter frame) gets its answer like a DEALER does; a message
 * with more envelope frames than the collector keeps is, as receive_one's comment promises,
 * drained and counted as malformed, neither stored nor answered. */
static void test_envelopes(const char *dir)
{
    struct fp_collector_options opts;
    struct fp_collector_stats st;
    struct fp_batch_builder *b = NULL;
    struct server srv = {0};
    struct fp_store *store = NULL;
    struct fp_store_reader *rd = NULL;
    struct fp_device_desc dd;
    void *req, *deal;
    uint8_t *buf;
    size_t len;
    char err[256];

    fp_collector_options_default(&opts);
    opts.listen = "tcp://127.0.0.1:0";
    opts.data_dir = dir;
    err[0] = '\0';
    if (fp_collector_new(&opts, &srv.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_collector_new: %s\n", err);
        fp_assert(false);
    }
    fp_assert(pthread_create(&srv.thread, NULL, serve, &srv) == 0);
    fp_assert(fp_batch_builder_new(&b) == 0);

    req = zmq_socket(zctx, ZMQ_REQ);
    fp_assert(req != NULL);
    fp_assert(zmq_connect(req, fp_collector_endpoint(srv.c)) == 0);
    check_int(fp_batch_builder_add(b, "up", FP_METRIC_GAUGE, NULL, 0, T0, 1.0), 0);
    fp_assert(fp_batch_builder_encode(b, "edge-c", 5, 1, T0, 0, &buf, &len) == 0);
    roundtrip(req, buf, len, ACK_OK, 5, 1, 1, NULL);
    free(buf);
    (void)zmq_close(req);

    /* Five envelope frames of our own, plus the routing id the ROUTER adds: six, over
     * MAX_ENVELOPE (4). */
    deal = dealer(fp_collector_endpoint(srv.c));
    fp_assert(fp_batch_builder_encode(b, "edge-c", 5, 2, T0, 0, &buf, &len) == 0);
    for (int i = 0; i < 5; i++)
        fp_assert(zmq_send(deal, "hop", 3, ZMQ_SNDMORE) == 3);
    send_buf(deal, buf, len);
    free(buf);
    /* An envelope deeper than MAX_ENVELOPE is not a fleetpulse peer: no ack, counted as
     * malformed, nothing stored. (Once the extra frames were silently cut and the batch stored,
     * answered on a truncated envelope.) */
    {
        zmq_pollitem_t item = {.socket = deal, .events = ZMQ_POLLIN};
        int got = zmq_poll(&item, 1, 1000);
        check_int(got, 0);
        if (got == 1) {
            int frames = 0, more = 1;
            size_t more_len = sizeof(more);
            while (more) {
                char part[64];
                int n = zmq_recv(deal, part, sizeof(part), 0);
                fp_assert(n >= 0);
                frames++;
                fprintf(stderr, "  answered frame %d: %d bytes%s\n", frames, n,
                        n == 3 && memcmp(part, "hop", 3) == 0 ? " (\"hop\")" : "");
                fp_assert(zmq_getsockopt(deal, ZMQ_RCVMORE, &more, &more_len) == 0);
            }
        }
    }
    (void)zmq_close(deal);

    fp_collector_stop(srv.c);
    fp_assert(pthread_join(srv.thread, NULL) == 0);
    check_int(srv.run_rc, 0);
    fp_collector_get_stats(srv.c, &st);
    check_int(st.malformed_messages, 1);
    check_int(st.batches_applied, 1);
    fp_collector_destroy(&srv.c);
    fp_batch_builder_destroy(&b);

    fp_assert(fp_store_open(dir, FP_STORE_READONLY, NULL, &store, err, sizeof(err)) == 0);
    fp_assert(fp_store_reader_open(store, &rd) == 0);
    check_int(fp_store_device_get(rd, "edge-c", &dd), 0);
    check_int(dd.batches, 1);
    check_int(dd.last_seq, 1);
    fp_store_reader_close(&rd);
    fp_store_close(&store);
}

static void test_bad_data_dir(const char *dir)
{
    struct fp_collector_options opts;
    struct fp_collector *c = NULL;
    char missing[256], err[256];
    int r;

    (void)snprintf(missing, sizeof(missing), "%s/does-not-exist", dir);
    fp_collector_options_default(&opts);
    opts.listen = "tcp://127.0.0.1:0";
    opts.data_dir = missing;
    err[0] = '\0';
    r = fp_collector_new(&opts, &c, err, sizeof(err));
    check(r != 0);
    check(c == NULL);
    if (strstr(err, missing) == NULL)
        FP_TEST_FAIL("err \"%s\" does not name %s", err, missing);

    /* A file where the directory should be. */
    {
        FILE *f = fopen(missing, "w");
        fp_assert(f != NULL);
        fclose(f);
    }
    err[0] = '\0';
    r = fp_collector_new(&opts, &c, err, sizeof(err));
    check(r != 0);
    check(c == NULL);
    check(strstr(err, missing) != NULL);
    check(strstr(err, "not a directory") != NULL);
}

/* A group filled with nothing but refusals is released at once: the valid batch after it is read,
 * stored and answered, not held until the collector's next write of its own series (every 10 s),
 * which is the only other thing that would empty a full group. */
static void test_refused_group(const char *dir)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct fp_collector_options opts;
    struct fp_collector_stats st;
    struct fp_batch_builder *b = NULL;
    struct server srv = {0};
    Fleetpulse__V1__Ack *a;
    uint8_t *buf;
    size_t len;
    void *sock;
    char err[256];

    fp_collector_options_default(&opts);
    opts.listen = "tcp://127.0.0.1:0";
    opts.data_dir = dir;
    opts.max_group = 4;
    err[0] = '\0';
    if (fp_collector_new(&opts, &srv.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fp_collector_new: %s\n", err);
        fp_assert(false);
    }
    fp_assert(pthread_create(&srv.thread, NULL, serve, &srv) == 0);
    sock = dealer(fp_collector_endpoint(srv.c));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++)
            roundtrip(sock, garbage, sizeof(garbage), ACK_BAD_SCHEMA, 0, 0, 0, "decode");
    }
    fp_assert(fp_batch_builder_new(&b) == 0);
    check_int(fp_batch_builder_add(b, "up", FP_METRIC_GAUGE, NULL, 0, T0, 1.0), 0);
    fp_assert(fp_batch_builder_encode(b, "edge-r", 3, 1, T0, 0, &buf, &len) == 0);
    send_buf(sock, buf, len);
    free(buf);
    /* Half the usual wait: a group left full would answer only after the 10 s self write. */
    a = try_recv_ack(sock, ACK_TIMEOUT_MS / 2);
    check(a != NULL);
    if (a != NULL) {
        check_int(a->status, ACK_OK);
        check_int(a->seq, 1);
        fleetpulse__v1__ack__free_unpacked(a, NULL);
    }
    (void)zmq_close(sock);
    fp_collector_stop(srv.c);
    fp_assert(pthread_join(srv.thread, NULL) == 0);
    check_int(srv.run_rc, 0);
    fp_collector_get_stats(srv.c, &st);
    check_int(st.batches_refused[ACK_BAD_SCHEMA], 12);
    check_int(st.batches_applied, 1);
    fp_collector_destroy(&srv.c);
    fp_batch_builder_destroy(&b);
}

int main(void)
{
    char dir[] = "/tmp/fp-collector-test-XXXXXX";
    char data[128], data2[128], data3[128];

    T0 = (int64_t)time(NULL) / 60 * 60000 - 3600000;
    zctx = zmq_ctx_new();
    fp_assert(zctx != NULL);
    fp_assert(mkdtemp(dir) != NULL);
    (void)snprintf(data, sizeof(data), "%s/data", dir);
    fp_assert(mkdir(data, 0700) == 0);
    (void)snprintf(data2, sizeof(data2), "%s/data2", dir);
    fp_assert(mkdir(data2, 0700) == 0);
    (void)snprintf(data3, sizeof(data3), "%s/data3", dir);
    fp_assert(mkdir(data3, 0700) == 0);

    test_bad_data_dir(dir);
    test_serve(data);
    test_envelopes(data2);
    test_refused_group(data3);

    (void)zmq_ctx_term(zctx);
    check(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
    fp_test_end();
}
