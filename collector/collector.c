/* Receive, validate, group-commit, acknowledge.
 *
 * Three threads, one pipeline. The network thread (the caller of fp_collector_run) owns the
 * ROUTER socket: it drains up to max_group messages without blocking, decodes and validates each,
 * and hands the group to the store thread, which writes all valid batches in one LMDB
 * transaction (group commit: one fsync for many probes). The store's own sync thread makes that
 * commit durable while the store thread writes the next group and the network thread decodes the
 * one after. Answers to a group wait until its commit is on disk: a probe never sees OK for a
 * batch that is not. Refused batches are answered at once with the reason, so probes stop
 * resending what will never be accepted; every refusal is counted.
 *
 * Back-pressure: two groups (each bounded by max_group and GROUP_MAX_BYTES) and ZeroMQ's receive
 * high-water mark bound what waits in memory; while both groups are busy, further batches wait in
 * the kernel and in the probes' spools, never in an unbounded queue here. */
#include "collector.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "store.h"

#define MAX_ENVELOPE 4  /* routing id, plus a REQ delimiter and some slack */
#define LOG_EVERY_MS 5000
#define SELF_INTERVAL_MS 10000
/* Messages ZeroMQ queues per connection before it stops reading that peer's socket. Its default
 * (1000) lets a few backfilling probes park hundreds of MiB here; this bounds the queue by
 * count, GROUP_MAX_BYTES bounds one group by payload, and the rest waits in the kernel and in
 * the probes' spools. A group fills while the store writes the previous one, so its size follows
 * the arrival rate, not this queue. bench/ingest: with 4 MiB groups the collector peaks near
 * 108 MiB for 1000 devices backfilling (8 MiB: 136 MiB) at the same rate; live groups of ~5000
 * batches reach ~100k batches/s, 1 MiB groups ~73k. */
#define RCV_HWM 32
#define GROUP_MAX_BYTES (4u << 20)
/* Answers ZeroMQ queues per connection. A ROUTER drops what does not fit, and the probe then
 * waits out its ack timeout and resends: a connection carrying many devices (the simulator's)
 * gets up to two groups' answers at once. Answers are a few dozen bytes. */
#define SND_HWM 16384

/* An answer that waits for its group's commit to be durable. */
struct pending_ack {
    zmq_msg_t env[MAX_ENVELOPE];
    size_t n_env;
    uint64_t epoch, seq, accepted, refused;
    Fleetpulse__V1__AckStatus status;
};

struct msg {
    zmq_msg_t env[MAX_ENVELOPE];
    size_t n_env;
    zmq_msg_t payload;
    Fleetpulse__V1__Batch *batch;
    int decode_rc;
    char err[160];
    /* storage view of the batch */
    struct fp_series_in *series;
    struct fp_label *labels;
    struct fp_event_in *events;
    struct fp_label *info; /* in the group's arena, when the batch carries DeviceInfo */
    size_t n_info;
};

#define INFO_MAX 64
#define INFO_SCRATCH 8192 /* holds any valid DeviceInfo (fp_device_info_to_labels) */

/* One group of messages on its way through the pipeline: filled and decoded by the network
 * thread for as long as the store thread is busy with the other group (so a group holds what
 * arrived during one commit, whatever ZeroMQ's queues hold), written by the store thread,
 * answered and released by the network thread. */
struct group {
    struct msg *msgs;
    size_t n, bytes; /* messages and their payload bytes */
    struct fp_write_batch *wb;
    struct fp_write_result *wr;
    size_t *valid_idx; /* msgs index of each wb entry */
    size_t n_valid;
    struct fp_batch_arena *arena; /* the group's decoded batches and their storage views */
    /* the collector's own series, written before the group when self_due */
    bool self_due;
    struct fp_collector_stats self_stats;
    int64_t self_now_ms;
    /* set by the store thread */
    int rc;
    uint64_t commit; /* fp_store_committed after the write */
    uint64_t took_ns;
};

struct fp_collector {
    void *zctx;
    void *sock;
    struct fp_store *store;
    struct fp_collector_options opts;
    char endpoint[256];
    atomic_int stop; /* set from a signal handler or another thread; lock-free, so both are safe */
    struct fp_collector_stats stats; /* the network thread's */
    struct group groups[2];
    /* the store thread; todo and done under lock */
    pthread_t store_thread;
    bool store_stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct group *todo, *done;
    int wake_fd; /* eventfd: the store thread finished a group */
    struct pending_ack *pending;  /* the answers of the latest group written */
    size_t n_pending;
    uint64_t pending_commit;      /* the commit they wait for (fp_store_committed) */
    int64_t last_refusal_log_ms;
    uint64_t refusals_unlogged;
};

void fp_collector_options_default(struct fp_collector_options *ret)
{
    *ret = (struct fp_collector_options){
        .listen = FP_DEFAULT_COLLECTOR_ENDPOINT,
        /* bench/ingest live (10,000 devices), medians of 3 alternating runs on one day: 4096
         * gives 67.5k batches/s at 180 MiB peak RSS, 1024 gives 40k at 122 MiB, and 16384 was
         * no faster than 4096 with ~15 MiB more. The group's size is what the collector's own
         * memory follows (decoded batches and envelopes held until the commit is durable, and
         * the pages LMDB keeps from the largest commit it made). */
        .max_group = 4096,
    };
    fp_batch_limits_default(&ret->limits);
    fp_store_options_default(&ret->store);
    ret->store.background_sync = true;
}

int fp_collector_new(const struct fp_collector_options *opts, struct fp_collector **ret, char *err,
                     size_t err_size)
{
    struct fp_collector *c;
    size_t len;
    int r, hard_max;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->opts = *opts;
    if (c->opts.max_group == 0)
        c->opts.max_group = 1;
    c->wake_fd = -1;
    (void)pthread_mutex_init(&c->lock, NULL);
    (void)pthread_cond_init(&c->cond, NULL);
    c->pending = calloc(c->opts.max_group, sizeof(*c->pending));
    if (c->pending == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < 2; i++) {
        struct group *g = &c->groups[i];
        g->msgs = calloc(c->opts.max_group, sizeof(*g->msgs));
        g->wb = calloc(c->opts.max_group, sizeof(*g->wb));
        g->wr = calloc(c->opts.max_group, sizeof(*g->wr));
        g->valid_idx = calloc(c->opts.max_group, sizeof(*g->valid_idx));
        if (g->msgs == NULL || g->wb == NULL || g->wr == NULL || g->valid_idx == NULL ||
            fp_batch_arena_new(&g->arena) != 0) {
            r = -ENOMEM;
            goto fail;
        }
    }
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0) {
        r = -errno;
        (void)snprintf(err, err_size, "cannot create eventfd: %s", strerror(errno));
        goto fail;
    }
    r = fp_store_open(opts->data_dir, 0, &opts->store, &c->store, err, err_size);
    if (r != 0)
        goto fail;

    c->zctx = zmq_ctx_new();
    if (c->zctx == NULL) {
        r = -errno;
        (void)snprintf(err, err_size, "cannot create ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    c->sock = zmq_socket(c->zctx, ZMQ_ROUTER);
    if (c->sock == NULL) {
        r = -errno;
        (void)snprintf(err, err_size, "cannot create socket: %s", zmq_strerror(errno));
        goto fail;
    }
    /* Messages a little over the limit still get a TOO_LARGE answer; far over it, ZeroMQ
     * drops the connection before buffering them, which bounds memory against hostile peers. */
    hard_max = (int)(opts->limits.max_message_bytes * 2 > INT32_MAX
                         ? INT32_MAX
                         : opts->limits.max_message_bytes * 2);
    {
        int64_t maxmsg = hard_max;
        int zero = 0;
        (void)zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
        (void)zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
        (void)zmq_setsockopt(c->sock, ZMQ_RCVHWM, &(int){RCV_HWM}, sizeof(int));
        (void)zmq_setsockopt(c->sock, ZMQ_SNDHWM, &(int){SND_HWM}, sizeof(int));
    }
    if (zmq_bind(c->sock, opts->listen) != 0) {
        r = -errno;
        (void)snprintf(err, err_size, "cannot listen on %s: %s", opts->listen,
                       zmq_strerror(errno));
        goto fail;
    }
    len = sizeof(c->endpoint);
    if (zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, c->endpoint, &len) != 0)
        (void)snprintf(c->endpoint, sizeof(c->endpoint), "%s", opts->listen);
    c->opts.listen = c->endpoint;
    c->opts.data_dir = NULL; /* borrowed; not needed after open */
    *ret = c;
    return 0;
fail:
    fp_collector_destroy(&c);
    return r;
}

void fp_collector_destroy(struct fp_collector **cp)
{
    struct fp_collector *c = *cp;
    if (c == NULL)
        return;
    if (c->sock != NULL)
        (void)zmq_close(c->sock);
    if (c->zctx != NULL)
        (void)zmq_ctx_term(c->zctx);
    fp_store_close(&c->store);
    for (size_t i = 0; i < 2; i++) {
        struct group *g = &c->groups[i];
        free(g->msgs);
        free(g->wb);
        free(g->wr);
        free(g->valid_idx);
        fp_batch_arena_destroy(&g->arena);
    }
    for (size_t i = 0; c->pending != NULL && i < c->n_pending; i++)
        for (size_t k = 0; k < c->pending[i].n_env; k++)
            (void)zmq_msg_close(&c->pending[i].env[k]);
    free(c->pending);
    if (c->wake_fd >= 0)
        (void)close(c->wake_fd);
    (void)pthread_mutex_destroy(&c->lock);
    (void)pthread_cond_destroy(&c->cond);
    free(c);
    *cp = NULL;
}

void fp_collector_stop(struct fp_collector *c)
{
    atomic_store_explicit(&c->stop, 1, memory_order_relaxed);
}

void fp_collector_get_stats(const struct fp_collector *c, struct fp_collector_stats *ret)
{
    *ret = c->stats;
}

const char *fp_collector_endpoint(const struct fp_collector *c)
{
    return c->endpoint;
}

static void msg_release(struct msg *m)
{
    for (size_t i = 0; i < m->n_env; i++)
        (void)zmq_msg_close(&m->env[i]);
    m->n_env = 0;
    (void)zmq_msg_close(&m->payload);
    m->batch = NULL; /* in the group's arena */
    m->series = NULL;
    m->labels = NULL;
    m->events = NULL;
}

/* Receives one whole multipart message without blocking. Returns 1 when one was read, 0 when
 * none is waiting, -errno on socket failure. A message without an envelope or with one deeper
 * than MAX_ENVELOPE is drained, counted as malformed and never answered (returns 1 with
 * decode_rc set). */
static int receive_one(struct fp_collector *c, struct msg *m)
{
    zmq_msg_t part;
    int more;
    size_t more_len;
    bool first = true, too_deep = false;

    m->n_env = 0;
    m->batch = NULL;
    m->decode_rc = 0;
    m->err[0] = '\0';
    (void)zmq_msg_init(&m->payload);
    for (;;) {
        (void)zmq_msg_init(&part);
        if (zmq_msg_recv(&part, c->sock, first ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            (void)zmq_msg_close(&part);
            if (first) {
                (void)zmq_msg_close(&m->payload);
                if (e == EAGAIN)
                    return 0;
            }
            return -e;
        }
        first = false;
        more_len = sizeof(more);
        (void)zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
        if (!more) {
            (void)zmq_msg_move(&m->payload, &part);
            (void)zmq_msg_close(&part);
            break;
        }
        if (m->n_env < MAX_ENVELOPE) {
            (void)zmq_msg_init(&m->env[m->n_env]);
            (void)zmq_msg_move(&m->env[m->n_env++], &part);
        } else {
            too_deep = true;
        }
        (void)zmq_msg_close(&part);
    }
    if (m->n_env == 0 || too_deep) {
        /* A ROUTER always prepends the peer's id, and our probes add nothing more: no envelope
         * means nobody to answer, a deep one is not a fleetpulse peer. Count, do not store. */
        c->stats.malformed_messages++;
        m->decode_rc = -EBADMSG;
        for (size_t i = 0; i < m->n_env; i++)
            (void)zmq_msg_close(&m->env[i]);
        m->n_env = 0;
    }
    return 1;
}

/* The DeviceInfo pairs of m, in a: formatted on the stack, then copied at their size (a
 * restarted fleet sends thousands of them in one group; 9 KiB each would add up). */
static int prepare_info(struct fp_batch_arena *a, struct msg *m,
                        const Fleetpulse__V1__DeviceInfo *di)
{
    struct fp_label info[INFO_MAX];
    char scratch[INFO_SCRATCH], *copy;
    uintptr_t lo = (uintptr_t)scratch, hi = lo + sizeof(scratch);
    size_t n, used = 0;

    n = fp_device_info_to_labels(di, info, INFO_MAX, scratch, sizeof(scratch));
    for (size_t i = 0; i < n; i++) {
        const char *str[2] = {info[i].name, info[i].value};
        for (size_t k = 0; k < 2; k++) {
            uintptr_t at = (uintptr_t)str[k];
            if (at >= lo && at < hi && at - lo + strlen(str[k]) + 1 > used)
                used = at - lo + strlen(str[k]) + 1;
        }
    }
    copy = fp_batch_arena_alloc(a, used + 1);
    m->info = fp_batch_arena_alloc(a, (n + 1) * sizeof(*m->info));
    if (copy == NULL || m->info == NULL)
        return -ENOMEM;
    memcpy(copy, scratch, used);
    for (size_t i = 0; i < n; i++) {
        /* Names and values formatted into scratch move with it; the rest stay borrowed. */
        uintptr_t name = (uintptr_t)info[i].name, value = (uintptr_t)info[i].value;
        m->info[i] = info[i];
        if (name >= lo && name < hi)
            m->info[i].name = copy + (name - lo);
        if (value >= lo && value < hi)
            m->info[i].value = copy + (value - lo);
    }
    m->n_info = n;
    return 0;
}

/* Turns a decoded batch into the storage view: plain arrays borrowing the protobuf strings. */
static int prepare(struct fp_batch_arena *a, struct msg *m, struct fp_write_batch *wb,
                   int64_t now_ms)
{
    const Fleetpulse__V1__Batch *b = m->batch;
    size_t n_labels = 0, n_attrs = 0, li = 0;
    int r;

    for (size_t i = 0; i < b->n_series; i++)
        n_labels += b->series[i]->n_labels;
    for (size_t i = 0; i < b->n_events; i++)
        n_attrs += b->events[i]->n_attributes;
    m->series = fp_batch_arena_alloc(a, (b->n_series + 1) * sizeof(*m->series));
    m->labels = fp_batch_arena_alloc(a, (n_labels + n_attrs + 1) * sizeof(*m->labels));
    m->events = fp_batch_arena_alloc(a, (b->n_events + 1) * sizeof(*m->events));
    if (m->series == NULL || m->labels == NULL || m->events == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_series; i++) {
        const Fleetpulse__V1__SeriesBlock *s = b->series[i];
        struct fp_series_in *in = &m->series[i];
        in->metric = s->metric;
        in->type = s->type == FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_COUNTER
                       ? FP_SERIES_COUNTER
                       : FP_SERIES_GAUGE;
        in->labels = &m->labels[li];
        in->n_labels = s->n_labels;
        for (size_t k = 0; k < s->n_labels; k++)
            m->labels[li++] = (struct fp_label){s->labels[k]->name, s->labels[k]->value};
        in->ts_ms = s->timestamps_ms;
        in->values = s->values;
        in->n = s->n_values;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const Fleetpulse__V1__Event *e = b->events[i];
        struct fp_event_in *ev = &m->events[i];
        ev->ts_ms = e->timestamp_ms;
        ev->kind = e->kind;
        ev->severity = (int)e->severity;
        ev->message = e->message;
        ev->attrs = &m->labels[li];
        ev->n_attrs = e->n_attributes;
        for (size_t k = 0; k < e->n_attributes; k++)
            m->labels[li++] =
                (struct fp_label){e->attributes[k]->name, e->attributes[k]->value};
    }
    m->n_info = 0;
    m->info = NULL;
    if (b->device_info != NULL && (r = prepare_info(a, m, b->device_info)) != 0)
        return r;
    *wb = (struct fp_write_batch){
        .device = b->device_id,
        .epoch = b->epoch,
        .seq = b->seq,
        .received_ms = now_ms,
        .info = m->info,
        .n_info = m->n_info,
        .series = m->series,
        .n_series = b->n_series,
        .events = m->events,
        .n_events = b->n_events,
        .dropped_samples_total = b->dropped_samples_total,
    };
    return 0;
}

static uint64_t batch_samples(const Fleetpulse__V1__Batch *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < b->n_series; i++)
        n += b->series[i]->n_values;
    return n;
}

static void send_ack(struct fp_collector *c, zmq_msg_t *env, size_t n_env, uint64_t epoch,
                     uint64_t seq, Fleetpulse__V1__AckStatus status, const char *detail,
                     uint64_t accepted, uint64_t refused)
{
    uint8_t *buf;
    size_t len;

    if (n_env == 0)
        return;
    if (fp_ack_encode(epoch, seq, status, detail, accepted, refused, &buf, &len) < 0)
        return;
    for (size_t i = 0; i < n_env; i++) {
        /* Copy, so the envelope can be released with the message as usual. */
        zmq_msg_t part;
        (void)zmq_msg_init(&part);
        (void)zmq_msg_copy(&part, &env[i]);
        if (zmq_msg_send(&part, c->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            (void)zmq_msg_close(&part);
            free(buf);
            return;
        }
    }
    /* A peer that went away or stopped reading loses its ack and resends: dedup absorbs it. */
    (void)zmq_send(c->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
}

static void reply(struct fp_collector *c, struct msg *m, uint64_t epoch, uint64_t seq,
                  Fleetpulse__V1__AckStatus status, const char *detail, uint64_t accepted,
                  uint64_t refused)
{
    send_ack(c, m->env, m->n_env, epoch, seq, status, detail, accepted, refused);
}

/* Keeps m's answer until commit is durable; takes m's envelope. */
static void defer_ack(struct fp_collector *c, struct msg *m, Fleetpulse__V1__AckStatus status,
                      uint64_t accepted, uint64_t refused)
{
    struct pending_ack *a = &c->pending[c->n_pending++];

    *a = (struct pending_ack){.n_env = m->n_env, .epoch = m->batch->epoch, .seq = m->batch->seq,
                              .accepted = accepted, .refused = refused, .status = status};
    for (size_t i = 0; i < m->n_env; i++) {
        (void)zmq_msg_init(&a->env[i]);
        (void)zmq_msg_move(&a->env[i], &m->env[i]);
    }
}

/* Sends the waiting answers once their commit is on disk. Returns 0, or -EIO when the store
 * could not sync: the answers are dropped unsent, and the probes will resend. */
static int flush_acks(struct fp_collector *c)
{
    int r = 0;

    if (c->n_pending > 0)
        r = fp_store_wait_durable(c->store, c->pending_commit, -1);
    for (size_t i = 0; i < c->n_pending; i++) {
        struct pending_ack *a = &c->pending[i];
        if (r == 0)
            send_ack(c, a->env, a->n_env, a->epoch, a->seq, a->status,
                     a->status == FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE
                         ? "already stored"
                         : NULL,
                     a->accepted, a->refused);
        for (size_t k = 0; k < a->n_env; k++)
            (void)zmq_msg_close(&a->env[k]);
    }
    c->n_pending = 0;
    if (r != 0)
        fp_log_error("collector", "the store could not sync to disk (%s); stopping without "
                     "answering the last batches, which their probes will resend",
                     fp_store_strerror(r));
    return r;
}

static void log_refusal(struct fp_collector *c, const struct msg *m, const char *device,
                        const char *status)
{
    int64_t now = fp_clock_mono_ms();
    /* Refusals can come at the rate of a misconfigured fleet: log one per interval, count all. */
    if (c->last_refusal_log_ms != 0 && now - c->last_refusal_log_ms < LOG_EVERY_MS) {
        c->refusals_unlogged++;
        return;
    }
    fp_log_warn("collector", "device=\"%s\": batch refused (%s): %s%s", device, status, m->err,
                c->refusals_unlogged > 0 ? " (and more refusals not logged)" : "");
    c->last_refusal_log_ms = now;
    c->refusals_unlogged = 0;
}

/* Decodes and validates messages from..g->n of g (network thread). Refusals are answered at
 * once; the valid ones are added to g->wb. */
static void decode_group(struct fp_collector *c, struct group *g, size_t from)
{
    int64_t now = fp_clock_now_ms();

    for (size_t i = from; i < g->n; i++) {
        struct msg *m = &g->msgs[i];
        if (m->decode_rc != 0)
            continue;
        c->stats.batches_received++;
        m->decode_rc = fp_batch_decode_in(g->arena, zmq_msg_data(&m->payload),
                                          zmq_msg_size(&m->payload), &c->opts.limits, &m->batch,
                                          m->err, sizeof(m->err));
        if (m->decode_rc == 0)
            m->decode_rc = prepare(g->arena, m, &g->wb[g->n_valid], now);
        if (m->decode_rc != 0) {
            Fleetpulse__V1__AckStatus st = fp_batch_error_to_ack(m->decode_rc);
            uint64_t epoch, seq;
            fp_batch_peek_id(zmq_msg_data(&m->payload), zmq_msg_size(&m->payload), &epoch, &seq);
            c->stats.batches_refused[st & 15]++;
            log_refusal(c, m, "?", fp_ack_status_name(st));
            reply(c, m, epoch, seq, st, m->err, 0, 0);
            continue;
        }
        c->stats.samples_received += batch_samples(m->batch);
        g->valid_idx[g->n_valid++] = i;
    }
}

static void release_group(struct group *g)
{
    for (size_t i = 0; i < g->n; i++)
        msg_release(&g->msgs[i]);
    g->n = g->n_valid = g->bytes = 0;
    g->self_due = false;
    fp_batch_arena_reset(g->arena);
}

/* Takes the results of a group the store thread wrote (network thread): answers the previous
 * group, whose sync this commit waited for, counts, and keeps this group's answers until its own
 * commit is durable. Returns 0, or -EIO when the store can no longer make anything durable. */
static int finish_group(struct fp_collector *c, struct group *g)
{
    int r = g->rc;

    if (g->n_valid == 0) {
        release_group(g);
        return 0;
    }
    c->stats.commit_ns_total += g->took_ns;
    if (g->took_ns > c->stats.commit_ns_max)
        c->stats.commit_ns_max = g->took_ns;
    if (flush_acks(c) != 0 || r == -EIO) {
        release_group(g);
        return -EIO;
    }
    if (r != 0) {
        fp_log_error("collector", "store write of %zu batches failed: %s; asking probes to retry",
                     g->n_valid, fp_store_strerror(r));
        for (size_t k = 0; k < g->n_valid; k++) {
            struct msg *m = &g->msgs[g->valid_idx[k]];
            c->stats.batches_retry++;
            reply(c, m, m->batch->epoch, m->batch->seq,
                  FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY, fp_store_strerror(r), 0, 0);
        }
        release_group(g);
        return 0;
    }
    c->stats.commits++;
    c->pending_commit = g->commit;
    for (size_t k = 0; k < g->n_valid; k++) {
        struct msg *m = &g->msgs[g->valid_idx[k]];
        const struct fp_write_result *res = &g->wr[k];
        if (res->status == FP_STORE_E_DUP) {
            c->stats.batches_duplicate++;
            /* Its first copy may be in the commit still syncing: answer after it, too. */
            defer_ack(c, m, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE, 0, 0);
            continue;
        }
        c->stats.batches_applied++;
        c->stats.samples_applied += res->samples_written;
        c->stats.samples_refused += res->samples_refused;
        if (res->samples_refused > 0) {
            (void)snprintf(m->err, sizeof(m->err), "%" PRIu64 " samples refused by storage",
                           res->samples_refused);
            log_refusal(c, m, m->batch->device_id, "partial");
        }
        defer_ack(c, m, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK, res->samples_written,
                  res->samples_refused);
    }
    release_group(g);
    return 0;
}

struct self_value {
    const char *metric;
    double value;
    struct fp_label label; /* name NULL: none */
    enum fp_series_type type;
};

/* The collector's own counters, stored as the series of device "@collector" every
 * SELF_INTERVAL_MS, so its history is queried like any device's. */
static void write_self(struct fp_store *store, const struct fp_collector_stats *st,
                       int64_t now_ms)
{
    static const char *const reasons[] = {"bad_schema", "unauthorized", "too_large",
                                          "over_cardinality", "unsupported_version"};
    static const Fleetpulse__V1__AckStatus reason_codes[] = {
        FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_BAD_SCHEMA,
        FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNAUTHORIZED,
        FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_TOO_LARGE,
        FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OVER_CARDINALITY,
        FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_UNSUPPORTED_VERSION,
    };
    struct self_value v[24];
    struct fp_series_in in[24];
    int64_t ts[24];
    size_t n = 0;
    struct fp_write_batch b;
    struct fp_write_result res;

#define SELF(m, val)                                                                               \
    (v[n++] = (struct self_value){(m), (double)(val), {NULL, NULL}, FP_SERIES_COUNTER})
#define SELF_GAUGE(m, val)                                                                         \
    (v[n++] = (struct self_value){(m), (double)(val), {NULL, NULL}, FP_SERIES_GAUGE})
    SELF("fleetpulse_collector_batches_received_total", st->batches_received);
    SELF("fleetpulse_collector_batches_applied_total", st->batches_applied);
    SELF("fleetpulse_collector_batches_duplicate_total", st->batches_duplicate);
    SELF("fleetpulse_collector_batches_retry_total", st->batches_retry);
    SELF("fleetpulse_collector_samples_received_total", st->samples_received);
    SELF("fleetpulse_collector_samples_applied_total", st->samples_applied);
    SELF("fleetpulse_collector_samples_refused_total", st->samples_refused);
    SELF("fleetpulse_collector_commits_total", st->commits);
    SELF("fleetpulse_collector_commit_seconds_total", (double)st->commit_ns_total / 1e9);
    SELF("fleetpulse_collector_malformed_messages_total", st->malformed_messages);
    SELF_GAUGE("fleetpulse_collector_queue_batches", st->queue_batches);
    SELF_GAUGE("fleetpulse_collector_commit_max_seconds", (double)st->commit_ns_max / 1e9);
#undef SELF
#undef SELF_GAUGE
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        v[n++] = (struct self_value){"fleetpulse_collector_batches_refused_total",
                                     (double)st->batches_refused[reason_codes[i] & 15],
                                     {"reason", reasons[i]}, FP_SERIES_COUNTER};
    for (size_t i = 0; i < n; i++) {
        ts[i] = now_ms;
        in[i] = (struct fp_series_in){
            .metric = v[i].metric,
            .type = v[i].type,
            .labels = v[i].label.name != NULL ? &v[i].label : NULL,
            .n_labels = v[i].label.name != NULL ? 1 : 0,
            .ts_ms = &ts[i],
            .values = &v[i].value,
            .n = 1,
        };
    }
    b = (struct fp_write_batch){.device = "@collector", .received_ms = now_ms, .series = in,
                                .n_series = n};
    if (fp_store_write(store, &b, 1, &res) != 0)
        fp_log_debug("collector", "could not store the collector's own series, ignoring");
}

/* The store thread: writes each group handed to it, one at a time, in order. */
static void *store_main(void *arg)
{
    struct fp_collector *c = arg;

    (void)pthread_mutex_lock(&c->lock);
    for (;;) {
        struct group *g;
        while (c->todo == NULL && !c->store_stop)
            (void)pthread_cond_wait(&c->cond, &c->lock);
        if (c->todo == NULL)
            break;
        g = c->todo;
        c->todo = NULL;
        (void)pthread_mutex_unlock(&c->lock);

        if (g->self_due)
            write_self(c->store, &g->self_stats, g->self_now_ms);
        g->rc = 0;
        g->took_ns = 0;
        if (g->n_valid > 0) {
            int64_t t0 = fp_clock_mono_ns();
            g->rc = fp_store_write(c->store, g->wb, g->n_valid, g->wr);
            g->took_ns = (uint64_t)(fp_clock_mono_ns() - t0);
            g->commit = fp_store_committed(c->store);
        }

        (void)pthread_mutex_lock(&c->lock);
        c->done = g;
        (void)write(c->wake_fd, &(uint64_t){1}, sizeof(uint64_t));
        (void)pthread_cond_broadcast(&c->cond);
    }
    (void)pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Hands g to the store thread (network thread; the store thread must be idle). */
static void hand_over(struct fp_collector *c, struct group *g)
{
    (void)pthread_mutex_lock(&c->lock);
    c->todo = g;
    (void)pthread_cond_broadcast(&c->cond);
    (void)pthread_mutex_unlock(&c->lock);
}

/* The group the store thread finished, if any (network thread). */
static struct group *take_done(struct fp_collector *c, bool wait)
{
    struct group *g;
    uint64_t ignored;

    (void)pthread_mutex_lock(&c->lock);
    while (wait && c->done == NULL)
        (void)pthread_cond_wait(&c->cond, &c->lock);
    g = c->done;
    c->done = NULL;
    (void)pthread_mutex_unlock(&c->lock);
    if (g != NULL)
        (void)read(c->wake_fd, &ignored, sizeof(ignored));
    return g;
}

/* Snapshots the counters into g for the store thread to write as the collector's own series. */
static void attach_self(struct fp_collector *c, struct group *g)
{
    g->self_due = true;
    g->self_stats = c->stats;
    g->self_now_ms = fp_clock_now_ms();
    c->stats.commit_ns_max = 0;
}

static bool group_full(const struct fp_collector *c, const struct group *g)
{
    return g->n >= c->opts.max_group || g->bytes >= GROUP_MAX_BYTES;
}

int fp_collector_run(struct fp_collector *c)
{
    int64_t next_self = fp_clock_mono_ms();
    struct group *writing = NULL, *fill = &c->groups[0];
    int r = 0;

    r = pthread_create(&c->store_thread, NULL, store_main, c);
    if (r != 0)
        return -r;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        zmq_pollitem_t items[2] = {{.fd = c->wake_fd, .events = ZMQ_POLLIN},
                                   {.socket = c->sock, .events = ZMQ_POLLIN}};
        struct group *done;
        long timeout = 1000;
        size_t from;

        if ((done = take_done(c, false)) != NULL) {
            writing = NULL;
            if ((r = finish_group(c, done)) != 0)
                break;
        }
        if (writing == NULL) {
            bool self = fp_clock_mono_ms() >= next_self;
            if (self) {
                attach_self(c, fill);
                next_self = fp_clock_mono_ms() + SELF_INTERVAL_MS;
            }
            /* The store is idle: it takes what has arrived, and the next group fills while it
             * writes. */
            if (fill->n_valid > 0 || self) {
                hand_over(c, fill);
                writing = fill;
                fill = fill == &c->groups[0] ? &c->groups[1] : &c->groups[0];
            }
        }
        /* Answers waiting for a sync: look again soon, unless a write finishing brings them. */
        if (c->n_pending > 0) {
            if (fp_store_wait_durable(c->store, c->pending_commit, 0) == 0) {
                if ((r = flush_acks(c)) != 0)
                    break;
            } else if (writing == NULL) {
                timeout = 1;
            }
        }
        /* A full group reads nothing more: messages wait in ZeroMQ's queues (back-pressure). */
        if (zmq_poll(items, group_full(c, fill) ? 1 : 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        if (group_full(c, fill) || !(items[1].revents & ZMQ_POLLIN))
            continue;
        from = fill->n;
        while (!group_full(c, fill)) {
            int got = receive_one(c, &fill->msgs[fill->n]);
            if (got <= 0) {
                if (got < 0 && got != -EINTR)
                    r = got;
                break;
            }
            fill->bytes += zmq_msg_size(&fill->msgs[fill->n].payload);
            fill->n++;
        }
        c->stats.queue_batches = fill->n - from;
        decode_group(c, fill, from);
        /* Refusals are answered already: a group of nothing else must not sit full until the
         * next write comes along. */
        if (fill->n_valid == 0)
            release_group(fill);
        if (r < 0)
            break;
    }

    /* Stopping: what was received is still written and answered; then the final totals, so the
     * store has them even for a run shorter than the interval. */
    if (r != -EIO && writing != NULL) {
        writing = NULL;
        if (finish_group(c, take_done(c, true)) != 0)
            r = -EIO;
    }
    if (r != -EIO) {
        attach_self(c, fill);
        hand_over(c, fill);
        if (finish_group(c, take_done(c, true)) != 0 || flush_acks(c) != 0)
            r = -EIO;
    }
    (void)pthread_mutex_lock(&c->lock);
    c->store_stop = true;
    (void)pthread_cond_broadcast(&c->cond);
    (void)pthread_mutex_unlock(&c->lock);
    (void)pthread_join(c->store_thread, NULL);
    for (size_t i = 0; i < 2; i++)
        release_group(&c->groups[i]);
    return r;
}
