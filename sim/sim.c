/* The simulator engine behind sim.h: one thread generates batches for every device, sends them
 * on a few DEALER sockets, matches acks to devices and resends what was not acknowledged in time.
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>
#include <zmq.h>

#include "batch.h"
#include "clock.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "model.h"

#define BACKFILL_BATCH_STEPS 360 /* an hour of 10 s samples: large batches, as a replay would */
#define RESEND_SCAN_MS 100
#define LATENCY_KEEP 1000000 /* ack latencies kept for the quantiles (reservoir beyond) */

/* One batch waiting for its ack. */
struct entry {
    uint64_t seq; /* 0: slot free */
    uint8_t *buf;
    size_t len;
    uint32_t samples;
    int64_t sent_ns; /* monotonic time of the last transmission; 0 not sent yet */
    bool has_info;
};

struct dev {
    struct fp_sim_device model;
    uint64_t epoch, next_seq, base_seq; /* base_seq: oldest seq without an ack */
    int64_t next_ts;
    struct entry *win; /* [window], slot seq % window */
    size_t conn;
    bool info_acked;
    struct fp_sim_device_stats st;
};

struct fp_sim {
    struct fp_sim_options opts;
    void *zctx;
    void **socks;
    bool *blocked; /* the socket refused a send this round (no peer, or full) */
    struct dev *devs;
    size_t *by_epoch;   /* open addressing: device index + 1, 0 empty */
    size_t epoch_slots; /* power of two */
    int64_t *ts;        /* [batch_steps] */
    double *values;     /* [FP_SIM_SERIES_MAX][batch_steps] */
    size_t n_series;
    int64_t start_ms, end_ms; /* live part starts at start_ms; nothing at or after end_ms */
    atomic_int stop;
    float *lat; /* ack latencies, ms */
    size_t n_lat;
    uint64_t lat_seen, lat_rng;
    int64_t first_send_ns, last_ack_ns;
    struct fp_sim_totals totals;
};

void fp_sim_options_default(struct fp_sim_options *ret)
{
    *ret = (struct fp_sim_options){
        .devices = 1000,
        .interval_ms = 10000,
        .ack_timeout_ms = 5000,
        .drain_ms = 60000,
        .seed = 42,
        .prefix = "edge-",
        .slow_factor = 1.0,
    };
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return x;
}

static void epoch_insert(struct fp_sim *s, size_t i)
{
    size_t mask = s->epoch_slots - 1, h = (size_t)mix(s->devs[i].epoch) & mask;
    while (s->by_epoch[h] != 0)
        h = (h + 1) & mask;
    s->by_epoch[h] = i + 1;
}

static struct dev *epoch_find(struct fp_sim *s, uint64_t epoch)
{
    size_t mask = s->epoch_slots - 1, h = (size_t)mix(epoch) & mask;
    while (s->by_epoch[h] != 0) {
        struct dev *d = &s->devs[s->by_epoch[h] - 1];
        if (d->epoch == epoch)
            return d;
        h = (h + 1) & mask;
    }
    return NULL;
}

int fp_sim_new(const struct fp_sim_options *opts, struct fp_sim **ret, char *err, size_t err_size)
{
    struct fp_sim *s;
    int r = -ENOMEM;

    if (opts->collector == NULL || opts->collector[0] == '\0') {
        fp_set_err(err, err_size, "no collector endpoint given");
        return -EINVAL;
    }
    if (opts->devices == 0 || opts->devices > 1000000) {
        fp_set_err(err, err_size, "devices must be 1..1000000, not %zu", opts->devices);
        return -EINVAL;
    }
    if (opts->interval_ms < 1) {
        fp_set_err(err, err_size, "the interval must be at least 1 ms");
        return -EINVAL;
    }
    if (opts->slow_label != NULL && !(opts->slow_factor > 0 && opts->slow_factor <= 100)) {
        fp_set_err(err, err_size, "the slow factor must be in (0, 100]");
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->opts = *opts;
    if (s->opts.batch_steps == 0)
        s->opts.batch_steps = opts->backfill_ms > 0 ? BACKFILL_BATCH_STEPS : 1;
    if (s->opts.connections == 0)
        s->opts.connections = opts->devices < 8 ? opts->devices : 8;
    if (s->opts.window == 0)
        s->opts.window = 8;
    if (s->opts.ack_timeout_ms <= 0)
        s->opts.ack_timeout_ms = 5000;
    if (s->opts.prefix == NULL)
        s->opts.prefix = "edge-";
    s->n_series = opts->outcomes ? FP_SIM_SERIES_MAX : FP_SIM_SERIES_STANDARD;
    s->lat_rng = opts->seed;

    s->devs = calloc(opts->devices, sizeof(*s->devs));
    for (s->epoch_slots = 16; s->epoch_slots < opts->devices * 2; s->epoch_slots *= 2)
        ;
    s->by_epoch = calloc(s->epoch_slots, sizeof(*s->by_epoch));
    s->socks = calloc(s->opts.connections, sizeof(*s->socks));
    s->blocked = calloc(s->opts.connections, sizeof(*s->blocked));
    s->ts = malloc(s->opts.batch_steps * sizeof(*s->ts));
    s->values = malloc(FP_SIM_SERIES_MAX * s->opts.batch_steps * sizeof(*s->values));
    s->lat = malloc(LATENCY_KEEP * sizeof(*s->lat));
    if (s->devs == NULL || s->by_epoch == NULL || s->socks == NULL || s->blocked == NULL ||
        s->ts == NULL || s->values == NULL || s->lat == NULL)
        goto fail;

    s->start_ms = fp_clock_now_ms() / opts->interval_ms * opts->interval_ms;
    if (opts->duration_ms > 0)
        s->end_ms = s->start_ms + opts->duration_ms;
    else if (opts->backfill_ms > 0 && !opts->follow)
        s->end_ms = s->start_ms;
    else
        s->end_ms = INT64_MAX;
    for (size_t i = 0; i < opts->devices; i++) {
        struct dev *d = &s->devs[i];
        const char *v;
        fp_sim_device_init(&d->model, s->opts.prefix, opts->first_index + i, opts->seed);
        if (opts->slow_label != NULL && (v = fp_sim_device_identity(&d->model, opts->slow_label)) &&
            strcmp(v, opts->slow_value) == 0)
            d->model.speed = opts->slow_factor;
        /* Random per run, as a probe without a spool: a rerun is a new epoch, never a dup. */
        if (getrandom(&d->epoch, sizeof(d->epoch), 0) != (ssize_t)sizeof(d->epoch))
            d->epoch = mix((uint64_t)fp_clock_mono_ns() + i);
        d->epoch |= 1; /* never 0 */
        d->next_seq = d->base_seq = 1;
        /* Devices sample at their own phase inside the interval, as real ones do. */
        d->next_ts = s->start_ms - opts->backfill_ms / opts->interval_ms * opts->interval_ms +
                     (int64_t)(i * (uint64_t)opts->interval_ms / opts->devices);
        d->conn = i % s->opts.connections;
        d->win = calloc(s->opts.window, sizeof(*d->win));
        if (d->win == NULL)
            goto fail;
        while (epoch_find(s, d->epoch) != NULL)
            d->epoch = mix(d->epoch + i) | 1;
        epoch_insert(s, i);
    }

    s->zctx = zmq_ctx_new();
    if (s->zctx == NULL) {
        r = -errno;
        fp_set_err(err, err_size, "cannot create ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    for (size_t c = 0; c < s->opts.connections; c++) {
        int one = 1, zero = 0, ivl = 100, ivl_max = 2000, hwm = 100000;
        s->socks[c] = zmq_socket(s->zctx, ZMQ_DEALER);
        if (s->socks[c] == NULL) {
            r = -errno;
            fp_set_err(err, err_size, "cannot create socket: %s", zmq_strerror(errno));
            goto fail;
        }
        /* As the probe: no queueing on a connection that is not up, so a send fails fast
         * and the batch waits in its window for the resend scan. */
        (void)zmq_setsockopt(s->socks[c], ZMQ_IMMEDIATE, &one, sizeof(one));
        (void)zmq_setsockopt(s->socks[c], ZMQ_LINGER, &zero, sizeof(zero));
        (void)zmq_setsockopt(s->socks[c], ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
        (void)zmq_setsockopt(s->socks[c], ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
        (void)zmq_setsockopt(s->socks[c], ZMQ_SNDHWM, &hwm, sizeof(hwm));
        (void)zmq_setsockopt(s->socks[c], ZMQ_RCVHWM, &hwm, sizeof(hwm));
        if (zmq_connect(s->socks[c], opts->collector) != 0) {
            r = -errno;
            fp_set_err(err, err_size, "cannot connect to %s: %s", opts->collector,
                       zmq_strerror(errno));
            goto fail;
        }
    }
    *ret = s;
    return 0;
fail:
    if (r == -ENOMEM)
        fp_set_err(err, err_size, "out of memory for %zu devices", opts->devices);
    fp_sim_destroy(&s);
    return r;
}

void fp_sim_destroy(struct fp_sim **sp)
{
    struct fp_sim *s = *sp;
    if (s == NULL)
        return;
    for (size_t c = 0; s->socks != NULL && c < s->opts.connections; c++)
        if (s->socks[c] != NULL)
            (void)zmq_close(s->socks[c]);
    if (s->zctx != NULL)
        (void)zmq_ctx_term(s->zctx);
    for (size_t i = 0; s->devs != NULL && i < s->opts.devices; i++) {
        for (size_t k = 0; s->devs[i].win != NULL && k < s->opts.window; k++)
            free(s->devs[i].win[k].buf);
        free(s->devs[i].win);
    }
    free(s->devs);
    free(s->by_epoch);
    free(s->socks);
    free(s->blocked);
    free(s->ts);
    free(s->values);
    free(s->lat);
    free(s);
    *sp = NULL;
}

void fp_sim_stop(struct fp_sim *s)
{
    atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
}

/* Time steps device d may put into a batch now (0: none due). */
static size_t due_steps(const struct fp_sim *s, const struct dev *d, int64_t now_ms)
{
    int64_t limit = s->end_ms; /* exclusive */
    uint64_t span, n;

    if (!s->opts.fast && now_ms + 1 < limit)
        limit = now_ms + 1 > s->start_ms ? now_ms + 1 : s->start_ms;
    /* Backfill batches stop at the start of the live part, so live batches stay small. */
    if (d->next_ts < s->start_ms && limit > s->start_ms)
        limit = s->start_ms;
    if (limit <= d->next_ts)
        return 0;
    span = (uint64_t)(limit - d->next_ts);
    n = span / (uint64_t)s->opts.interval_ms + (span % (uint64_t)s->opts.interval_ms != 0);
    return n < s->opts.batch_steps ? (size_t)n : s->opts.batch_steps;
}

static void send_entry(struct fp_sim *s, struct dev *d, struct entry *e, int64_t now_ns)
{
    if (s->blocked[d->conn])
        return;
    if (zmq_send(s->socks[d->conn], e->buf, e->len, ZMQ_DONTWAIT) < 0) {
        s->blocked[d->conn] = true;
        return;
    }
    if (e->sent_ns != 0) {
        d->st.retransmits++;
        s->totals.retransmits++;
    }
    e->sent_ns = now_ns;
    if (s->first_send_ns == 0)
        s->first_send_ns = now_ns;
}

/* Sends d's batches that never went out (their socket refused them), oldest first. Returns
 * whether none is left unsent: a newer batch must not overtake an older one, or the store would
 * see history arrive after the present and could refuse it as too old. */
static bool flush_unsent(struct fp_sim *s, struct dev *d, int64_t now_ns)
{
    for (uint64_t q = d->base_seq; q < d->next_seq; q++) {
        struct entry *e = &d->win[q % s->opts.window];
        if (e->seq != q || e->sent_ns != 0)
            continue;
        send_entry(s, d, e, now_ns);
        if (e->sent_ns == 0)
            return false;
    }
    return true;
}

/* Generates, encodes and sends one batch of steps time steps for d. Returns 0 or -ENOMEM. */
static int make_batch(struct fp_sim *s, struct dev *d, size_t steps, int64_t now_ns)
{
    Fleetpulse__V1__Batch b = FLEETPULSE__V1__BATCH__INIT;
    Fleetpulse__V1__DeviceInfo info = FLEETPULSE__V1__DEVICE_INFO__INIT;
    Fleetpulse__V1__SeriesBlock blocks[FP_SIM_SERIES_MAX], *bp[FP_SIM_SERIES_MAX];
    Fleetpulse__V1__Label labels[FP_SIM_SERIES_MAX][2], *lp[FP_SIM_SERIES_MAX][2];
    double v[FP_SIM_SERIES_MAX];
    struct entry *e = &d->win[d->next_seq % s->opts.window];
    char version[64];
    size_t steps_n = s->opts.batch_steps;

    for (size_t k = 0; k < steps; k++) {
        s->ts[k] = d->next_ts + (int64_t)k * s->opts.interval_ms;
        fp_sim_device_step(&d->model, s->opts.interval_ms, s->opts.outcomes, v);
        for (size_t i = 0; i < s->n_series; i++)
            s->values[i * steps_n + k] = v[i];
    }
    for (size_t i = 0; i < s->n_series; i++) {
        const struct fp_sim_series_def *def = &fp_sim_series[i];
        fleetpulse__v1__series_block__init(&blocks[i]);
        blocks[i].metric = (char *)def->metric;
        blocks[i].type = def->counter ? FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_COUNTER
                                      : FLEETPULSE__V1__METRIC_TYPE__METRIC_TYPE_GAUGE;
        for (size_t l = 0; l < def->n_labels; l++) {
            fleetpulse__v1__label__init(&labels[i][l]);
            labels[i][l].name = (char *)def->labels[l].name;
            labels[i][l].value =
                (char *)(def->labels[l].value != NULL ? def->labels[l].value : d->model.model);
            lp[i][l] = &labels[i][l];
        }
        blocks[i].n_labels = def->n_labels;
        blocks[i].labels = lp[i];
        blocks[i].n_timestamps_ms = steps;
        blocks[i].timestamps_ms = s->ts;
        blocks[i].n_values = steps;
        blocks[i].values = &s->values[i * steps_n];
        bp[i] = &blocks[i];
    }
    b.schema_version = FP_SCHEMA_VERSION;
    b.device_id = d->model.id;
    b.epoch = d->epoch;
    b.seq = d->next_seq;
    b.sent_at_ms = fp_clock_now_ms();
    b.n_series = s->n_series;
    b.series = bp;
    if (!d->info_acked) {
        (void)snprintf(version, sizeof(version), "fleetpulse-sim %s", FP_VERSION);
        info.hostname = d->model.id;
        info.hw_class = (char *)d->model.hw;
        info.runtime = (char *)"llama.cpp";
        info.runtime_version = (char *)"simulated";
        info.model = (char *)d->model.model;
        info.model_version = (char *)d->model.model_version;
        info.quant = (char *)d->model.quant;
        info.site = (char *)d->model.site;
        info.cohort = (char *)d->model.cohort;
        info.probe_version = version;
        b.device_info = &info;
    }
    e->len = protobuf_c_message_get_packed_size(&b.base);
    e->buf = malloc(e->len);
    if (e->buf == NULL)
        return -ENOMEM;
    (void)protobuf_c_message_pack(&b.base, e->buf);
    e->seq = d->next_seq++;
    e->samples = (uint32_t)(steps * s->n_series);
    e->sent_ns = 0;
    e->has_info = b.device_info != NULL;
    d->next_ts += (int64_t)steps * s->opts.interval_ms;
    d->st.generated += e->samples;
    d->st.batches++;
    s->totals.generated += e->samples;
    s->totals.batches++;
    send_entry(s, d, e, now_ns);
    return 0;
}

static void record_latency(struct fp_sim *s, double ms)
{
    s->lat_seen++;
    if (s->n_lat < LATENCY_KEEP) {
        s->lat[s->n_lat++] = (float)ms;
    } else {
        /* Reservoir sampling keeps the kept latencies a uniform sample of all of them. */
        uint64_t x = mix(s->lat_rng += 0x9e3779b97f4a7c15u) % s->lat_seen;
        if (x < LATENCY_KEEP)
            s->lat[x] = (float)ms;
    }
}

static void handle_ack(struct fp_sim *s, const void *buf, size_t len, int64_t now_ns)
{
    Fleetpulse__V1__Ack *ack = NULL;
    struct dev *d;
    struct entry *e;

    if (fp_ack_decode(buf, len, &ack) != 0) {
        s->totals.bad_acks++;
        return;
    }
    d = epoch_find(s, ack->epoch);
    if (d == NULL || ack->seq < d->base_seq || ack->seq >= d->next_seq)
        goto out;
    e = &d->win[ack->seq % s->opts.window];
    if (e->seq != ack->seq)
        goto out; /* acked before: an ack for a retransmission */
    switch (ack->status) {
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY:
        /* The store could not take it: the resend scan sends it again after the timeout. */
        goto out;
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK:
        d->st.acknowledged += ack->samples_accepted;
        d->st.refused += e->samples - ack->samples_accepted;
        s->totals.acknowledged += ack->samples_accepted;
        s->totals.refused += e->samples - ack->samples_accepted;
        if (e->has_info)
            d->info_acked = true;
        break;
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE:
        /* Stored by an earlier delivery whose ack was lost (a collector restart). */
        d->st.acknowledged += e->samples;
        d->st.duplicates++;
        s->totals.acknowledged += e->samples;
        s->totals.duplicates++;
        if (e->has_info)
            d->info_acked = true;
        break;
    default:
        d->st.refused += e->samples;
        s->totals.refused += e->samples;
        fp_log_warn("sim", "device=\"%s\" seq=%" PRIu64 " refused: %s: %s", d->model.id, e->seq,
                    fp_ack_status_name(ack->status), ack->detail);
        break;
    }
    s->totals.batches_acked++;
    if (e->sent_ns != 0)
        record_latency(s, (double)(now_ns - e->sent_ns) / 1e6);
    s->last_ack_ns = now_ns;
    free(e->buf);
    e->buf = NULL;
    e->seq = 0;
    while (d->base_seq < d->next_seq && d->win[d->base_seq % s->opts.window].seq == 0)
        d->base_seq++;
out:
    fleetpulse__v1__ack__free_unpacked(ack, NULL);
}

/* Reads every ack waiting on every socket. Returns 0 or -errno. */
static int read_acks(struct fp_sim *s)
{
    for (size_t c = 0; c < s->opts.connections; c++) {
        for (;;) {
            zmq_msg_t m;
            (void)zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s->socks[c], ZMQ_DONTWAIT) < 0) {
                int e = errno;
                (void)zmq_msg_close(&m);
                if (e == EAGAIN)
                    break;
                if (e == EINTR)
                    continue;
                return -e;
            }
            handle_ack(s, zmq_msg_data(&m), zmq_msg_size(&m), fp_clock_mono_ns());
            (void)zmq_msg_close(&m);
        }
    }
    return 0;
}

static void resend_due(struct fp_sim *s, int64_t now_ns)
{
    int64_t timeout_ns = s->opts.ack_timeout_ms * 1000000;
    for (size_t i = 0; i < s->opts.devices; i++) {
        struct dev *d = &s->devs[i];
        for (uint64_t q = d->base_seq; q < d->next_seq; q++) {
            struct entry *e = &d->win[q % s->opts.window];
            if (e->seq == q && (e->sent_ns == 0 || now_ns - e->sent_ns >= timeout_ns))
                send_entry(s, d, e, now_ns);
        }
    }
}

static bool all_acked(const struct fp_sim *s)
{
    for (size_t i = 0; i < s->opts.devices; i++)
        if (s->devs[i].base_seq != s->devs[i].next_seq)
            return false;
    return true;
}

int fp_sim_run(struct fp_sim *s)
{
    zmq_pollitem_t *items = calloc(s->opts.connections, sizeof(*items));
    int64_t next_scan = 0, drain_until = 0;
    bool generating = true;
    size_t rr = 0;
    int r = 0;

    if (items == NULL)
        return -ENOMEM;
    for (size_t c = 0; c < s->opts.connections; c++)
        items[c] = (zmq_pollitem_t){.socket = s->socks[c], .events = ZMQ_POLLIN};
    for (;;) {
        int64_t now_ms = fp_clock_now_ms(), now_ns = fp_clock_mono_ns();
        bool more_now = false, pending = false;
        long timeout = 10;

        if (generating && atomic_load_explicit(&s->stop, memory_order_relaxed))
            generating = false;
        for (size_t c = 0; c < s->opts.connections; c++)
            s->blocked[c] = false;
        if (generating) {
            int64_t next_due = INT64_MAX;
            for (size_t k = 0; k < s->opts.devices; k++) {
                struct dev *d = &s->devs[(rr + k) % s->opts.devices];
                size_t steps;
                if (d->next_ts < s->end_ms)
                    pending = true;
                if (d->next_ts < next_due)
                    next_due = d->next_ts;
                if (s->blocked[d->conn] || d->next_seq - d->base_seq >= s->opts.window ||
                    !flush_unsent(s, d, now_ns))
                    continue;
                steps = due_steps(s, d, now_ms);
                if (steps == 0)
                    continue;
                if (make_batch(s, d, steps, now_ns) != 0) {
                    r = -ENOMEM;
                    goto out;
                }
                if (d->next_seq - d->base_seq < s->opts.window && due_steps(s, d, now_ms) > 0)
                    more_now = true;
            }
            rr = (rr + 1) % s->opts.devices;
            if (!pending) {
                generating = false;
            } else if (!more_now && next_due != INT64_MAX && next_due > now_ms) {
                timeout = (long)(next_due - now_ms) < timeout ? (long)(next_due - now_ms) : timeout;
            }
        }
        if (!generating && drain_until == 0)
            drain_until = now_ns + s->opts.drain_ms * 1000000;
        if (now_ns >= next_scan) {
            resend_due(s, now_ns);
            next_scan = now_ns + RESEND_SCAN_MS * 1000000;
        }
        if (!generating && all_acked(s))
            break;
        if (drain_until != 0 && now_ns >= drain_until) {
            fp_log_warn("sim", "gave up waiting for acks after %" PRId64 " ms", s->opts.drain_ms);
            break;
        }
        if (zmq_poll(items, (int)s->opts.connections, more_now ? 0 : timeout) < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        r = read_acks(s);
        if (r < 0)
            break;
    }
out:
    free(items);
    s->totals.unacknowledged = 0;
    for (size_t i = 0; i < s->opts.devices; i++) {
        struct dev *d = &s->devs[i];
        d->st.unacknowledged = 0;
        for (uint64_t q = d->base_seq; q < d->next_seq; q++)
            if (d->win[q % s->opts.window].seq == q)
                d->st.unacknowledged += d->win[q % s->opts.window].samples;
        s->totals.unacknowledged += d->st.unacknowledged;
    }
    return r;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void fp_sim_totals(const struct fp_sim *s, struct fp_sim_totals *ret)
{
    *ret = s->totals;
    ret->wall_s =
        s->last_ack_ns > s->first_send_ns ? (double)(s->last_ack_ns - s->first_send_ns) / 1e9 : 0;
    if (ret->wall_s > 0) {
        ret->samples_per_s = (double)ret->acknowledged / ret->wall_s;
        ret->batches_per_s = (double)ret->batches_acked / ret->wall_s;
    }
    if (s->n_lat > 0) {
        float *sorted = malloc(s->n_lat * sizeof(*sorted));
        if (sorted != NULL) {
            memcpy(sorted, s->lat, s->n_lat * sizeof(*sorted));
            qsort(sorted, s->n_lat, sizeof(*sorted), cmp_float);
            ret->ack_latency_ms_p50 = sorted[(s->n_lat - 1) / 2];
            ret->ack_latency_ms_p99 = sorted[(size_t)((double)(s->n_lat - 1) * 0.99)];
            free(sorted);
        }
    }
}

size_t fp_sim_device_count(const struct fp_sim *s)
{
    return s->opts.devices;
}

void fp_sim_device_stats(const struct fp_sim *s, size_t i, struct fp_sim_device_stats *ret)
{
    const struct dev *d = &s->devs[i];

    *ret = d->st;
    ret->device = d->model.id;
    ret->epoch = d->epoch;
    ret->last_seq = d->next_seq - 1;
}

static json_t *round3(double x)
{
    return json_real(nearbyint(x * 1000) / 1000);
}

int fp_sim_write_summary(const struct fp_sim *s, const char *path)
{
    struct fp_sim_totals t;
    json_t *root = json_object(), *tot = json_object(), *devs = json_array();
    int r = 0;

    if (root == NULL || tot == NULL || devs == NULL) {
        json_decref(root);
        json_decref(tot);
        json_decref(devs);
        return -ENOMEM;
    }
    fp_sim_totals(s, &t);
    json_object_set_new(tot, "devices", json_integer((json_int_t)s->opts.devices));
    json_object_set_new(tot, "generated", json_integer((json_int_t)t.generated));
    json_object_set_new(tot, "acknowledged", json_integer((json_int_t)t.acknowledged));
    json_object_set_new(tot, "refused", json_integer((json_int_t)t.refused));
    json_object_set_new(tot, "unacknowledged", json_integer((json_int_t)t.unacknowledged));
    json_object_set_new(tot, "dropped", json_integer((json_int_t)(t.refused + t.unacknowledged)));
    json_object_set_new(tot, "batches", json_integer((json_int_t)t.batches));
    json_object_set_new(tot, "batches_acknowledged", json_integer((json_int_t)t.batches_acked));
    json_object_set_new(tot, "retransmits", json_integer((json_int_t)t.retransmits));
    json_object_set_new(tot, "duplicates", json_integer((json_int_t)t.duplicates));
    json_object_set_new(tot, "wall_s", round3(t.wall_s));
    json_object_set_new(tot, "samples_per_s", round3(t.samples_per_s));
    json_object_set_new(tot, "batches_per_s", round3(t.batches_per_s));
    json_object_set_new(tot, "ack_latency_ms_p50", round3(t.ack_latency_ms_p50));
    json_object_set_new(tot, "ack_latency_ms_p99", round3(t.ack_latency_ms_p99));
    json_object_set_new(root, "total", tot);
    for (size_t i = 0; i < s->opts.devices; i++) {
        struct fp_sim_device_stats dst;
        const struct fp_sim_device_stats *st = &dst;
        fp_sim_device_stats(s, i, &dst);
        json_t *o = json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "device", st->device, "generated",
            (json_int_t)st->generated, "acknowledged", (json_int_t)st->acknowledged, "refused",
            (json_int_t)st->refused, "unacknowledged", (json_int_t)st->unacknowledged, "dropped",
            (json_int_t)(st->refused + st->unacknowledged), "batches", (json_int_t)st->batches,
            "retransmits", (json_int_t)st->retransmits, "last_seq", (json_int_t)st->last_seq,
            "model_version", s->devs[i].model.model_version);
        if (o == NULL || json_array_append_new(devs, o) != 0) {
            r = -ENOMEM;
            break;
        }
    }
    json_object_set_new(root, "devices", devs);
    if (r == 0) {
        if (strcmp(path, "-") == 0)
            r = json_dumpf(root, stdout, JSON_COMPACT) == 0 ? 0 : -EIO;
        else
            r = json_dump_file(root, path, JSON_COMPACT) == 0 ? 0 : -EIO;
        if (r == 0 && strcmp(path, "-") == 0)
            fputc('\n', stdout);
    }
    json_decref(root);
    return r;
}
