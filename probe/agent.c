/* The probe daemon's loop and the device identity it reports.
 *
 * One thread does everything: samplers are cheap file reads, encoding is microseconds, and the
 * sender's poll is where the thread waits. Each round's samples share one timestamp, taken when
 * the round starts, so series of one device line up. The DeviceInfo rides on every batch until
 * the collector has acknowledged one that carried it. */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "batch.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "sampler.h"
#include "sender.h"
#include "spool.h"

#define MAX_SOURCES 32
#define MAX_INFO 48

struct source {
    const struct fp_sampler_ops *ops;
    void *ctx;
    uint64_t errors; /* values that could not be read, since start */
};

struct fp_agent {
    struct fp_agent_options opts;
    struct source sources[MAX_SOURCES];
    size_t n_sources;
    struct fp_batch_builder *builder;
    struct fp_sender *sender;
    uint64_t epoch, seq;
    bool info_acked;
    struct fp_label info[MAX_INFO];
    size_t n_info;
    char info_store[4096]; /* backing for info strings this file produced */
    size_t info_used;
    /* Set by a signal handler (the daemon) or by another thread (the library's
     * fleetpulse_probe_destroy): a lock-free atomic is safe for both. */
    atomic_int stop;
    struct fp_spool *spool;           /* NULL: batches are held in memory only */
    uint64_t spool_dropped_reported;  /* spool drop total already turned into an event */
};

void fp_agent_options_default(struct fp_agent_options *ret)
{
    *ret = (struct fp_agent_options){
        .collector = FP_DEFAULT_COLLECTOR_ENDPOINT,
        .env =
            {
                .procfs = "/proc",
                .sysfs = "/sys",
                .scrape_timeout_ms = 5000,
                .canary_prompt = "Say hello in one short sentence.",
                .canary_max_tokens = 16,
                .canary_timeout_ms = 30000,
                .inproc_interval_ms = 60000,
            },
        .interval_ms = 10000,
        .first_round_ms = 1000,
        .max_queue_bytes = 64u << 20,
        .spool_max_bytes = UINT64_C(64) << 20,
    };
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '"'))
        s[--n] = '\0';
}

static int read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    if (fgets(buf, (int)size, f) == NULL) {
        fclose(f);
        return -ENODATA;
    }
    fclose(f);
    trim(buf);
    return buf[0] != '\0' ? 0 : -ENODATA;
}

int fp_agent_default_device_id(char *buf, size_t size)
{
    if (read_line("/etc/machine-id", buf, size) == 0)
        return 0;
    if (gethostname(buf, size) < 0)
        return -errno;
    buf[size - 1] = '\0';
    return buf[0] != '\0' ? 0 : -ENODATA;
}

/* Keeps a copy of s in the agent's identity storage. Returns NULL when full. */
static const char *keep(struct fp_agent *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p;
    if (a->info_used + n > sizeof(a->info_store))
        return NULL;
    p = a->info_store + a->info_used;
    memcpy(p, s, n);
    a->info_used += n;
    return p;
}

static void add_info(struct fp_agent *a, const char *name, const char *value)
{
    const char *v;
    if (value == NULL || value[0] == '\0' || a->n_info >= MAX_INFO)
        return;
    for (size_t i = 0; i < a->n_info; i++)
        if (strcmp(a->info[i].name, name) == 0)
            return; /* the operator's flags win over what we found */
    v = keep(a, value);
    if (v != NULL)
        a->info[a->n_info++] = (struct fp_label){name, v};
}

/* Host identity from the running system (not the fixture roots: they describe sensors). */
static void discover_identity(struct fp_agent *a)
{
    char buf[256], line[512];
    struct utsname u;
    FILE *f;
    long ncpu;

    for (size_t i = 0; i < a->opts.n_info; i++)
        add_info(a, a->opts.info[i].name, a->opts.info[i].value);
    if (gethostname(buf, sizeof(buf)) == 0) {
        buf[sizeof(buf) - 1] = '\0';
        add_info(a, "hostname", buf);
    }
    if (uname(&u) == 0) {
        add_info(a, "kernel", u.release);
        add_info(a, "arch", u.machine);
    }
    f = fopen("/etc/os-release", "re");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
                char *v = line + 12 + (line[12] == '"');
                trim(v);
                add_info(a, "os", v);
            }
        }
        fclose(f);
    }
    f = fopen("/proc/cpuinfo", "re");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
                char *v = colon + 1 + (colon[1] == ' ');
                trim(v);
                add_info(a, "cpu", v);
                break;
            }
        }
        fclose(f);
    }
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0) {
        (void)snprintf(buf, sizeof(buf), "%ld", ncpu);
        add_info(a, "cpu_count", buf);
    }
    add_info(a, "probe_version", FP_VERSION);
}

static void on_ack(void *userdata, uint64_t seq, const char *status, const char *detail)
{
    struct fp_agent *a = userdata;
    /* Every batch carries the identity until this flips, so any stored batch delivered it. */
    if (strcmp(status, "ok") == 0 || strcmp(status, "duplicate") == 0)
        a->info_acked = true;
    /* Stored, or refused for good: either way the spool need not keep it. */
    if (a->spool != NULL)
        (void)fp_spool_ack(a->spool, seq);
}

/* The sender asks for a spooled batch's bytes when it sends it. */
static int spool_load(void *userdata, uint64_t seq, uint8_t **ret_buf, size_t *ret_len)
{
    struct fp_agent *a = userdata;
    uint64_t got_seq, samples;
    size_t index;
    int r;

    if (fp_spool_find(a->spool, seq, &index) < 0)
        return -ENOENT;
    r = fp_spool_read(a->spool, index, &got_seq, ret_buf, ret_len, &samples);
    if (r == FP_SPOOL_E_CORRUPT) {
        /* Damaged on disk since it was written: it will never read back, so give it up. */
        fp_log_warn("probe", "spooled batch seq=%" PRIu64 " is damaged on disk, dropping %" PRIu64
                             " samples",
                    seq, samples);
        (void)fp_spool_ack(a->spool, seq);
        return -ENOENT;
    }
    return r > 0 ? -EIO : r;
}

/* Opens the spool, adopts its epoch and sequence, and queues what it still holds. */
static int open_spool(struct fp_agent *a, char *err, size_t err_size)
{
    struct fp_spool_report rep;
    int r;

    r = fp_spool_open(a->opts.spool_dir, a->opts.spool_max_bytes, &a->spool, &rep, err, err_size);
    if (r != 0)
        return r < 0 ? r : -EIO;
    a->epoch = fp_spool_epoch(a->spool);
    a->seq = fp_spool_next_seq(a->spool) - 1;
    a->spool_dropped_reported = fp_spool_dropped_samples_total(a->spool);
    if (rep.pending_records > 0)
        fp_log_info("probe", "spool %s: replaying %" PRIu64 " batches (%" PRIu64 " samples)",
                    a->opts.spool_dir, rep.pending_records, rep.pending_samples);
    if (rep.discarded_records > 0 || rep.discarded_segments > 0) {
        char msg[256];
        (void)snprintf(msg, sizeof(msg),
                       "spool %s: discarded %" PRIu64 " damaged records (%" PRIu64
                       " bytes, %" PRIu64 " files)",
                       a->opts.spool_dir, rep.discarded_records, rep.discarded_bytes,
                       rep.discarded_segments);
        fp_log_warn("probe", "%s, keeping the rest", msg);
        (void)fp_batch_builder_add_event(a->builder, fp_clock_now_ms(), "spool_discarded",
                                         FP_SEVERITY_WARNING, msg, NULL, 0);
    }
    return 0;
}

static int replay_spool(struct fp_agent *a)
{
    size_t n = fp_spool_pending(a->spool);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq, samples;
        size_t len;
        int r = fp_spool_peek(a->spool, i, &seq, &len, &samples);
        if (r == 0)
            r = fp_sender_enqueue(a->sender, seq, NULL, len, samples);
        if (r < 0)
            return r;
    }
    return 0;
}

static int emit_sample(void *userdata, const char *metric, enum fp_metric_type type,
                       const struct fp_label *labels, size_t n_labels, int64_t ts_ms, double value)
{
    struct fp_agent *a = userdata;
    return fp_batch_builder_add(a->builder, metric, type, labels, n_labels, ts_ms, value);
}

static int emit_event(void *userdata, int64_t ts_ms, enum fp_severity severity, const char *kind,
                      const char *message, const struct fp_label *attrs, size_t n_attrs)
{
    struct fp_agent *a = userdata;
    return fp_batch_builder_add_event(a->builder, ts_ms, kind, severity, message, attrs, n_attrs);
}

/* A source learned an identity field (model, quantisation, runtime build): keep it, and send the
 * identity again when it changed. */
static int emit_info(void *userdata, const char *name, const char *value)
{
    struct fp_agent *a = userdata;
    for (size_t i = 0; i < a->n_info; i++) {
        if (strcmp(a->info[i].name, name) != 0)
            continue;
        if (strcmp(a->info[i].value, value) == 0)
            return 0;
        const char *v = keep(a, value);
        if (v == NULL)
            return -ENOSPC;
        a->info[i].value = v;
        a->info_acked = false;
        return 0;
    }
    if (a->n_info >= MAX_INFO)
        return -ENOSPC;
    const char *n = keep(a, name), *v = keep(a, value);
    if (n == NULL || v == NULL)
        return -ENOSPC;
    a->info[a->n_info++] = (struct fp_label){n, v};
    a->info_acked = false;
    return 0;
}

int fp_agent_new(const struct fp_agent_options *opts, struct fp_agent **ret, char *err,
                 size_t err_size)
{
    struct fp_sampler_env env = opts->env;
    struct fp_sender_options so = {0};
    struct fp_agent *a;
    int64_t now = fp_clock_now_ms();
    int r;

    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->opts = *opts;
    r = fp_batch_builder_new(&a->builder);
    if (r < 0)
        goto fail;
    /* A fresh epoch per start: without a spool, a restarted probe is a new sequence. With one,
     * the spool's epoch and sequence go on where they stopped, so replays dedup. */
    if (opts->spool_dir != NULL) {
        r = open_spool(a, err, err_size);
        if (r < 0)
            goto fail;
    } else if (getrandom(&a->epoch, sizeof(a->epoch), 0) != (ssize_t)sizeof(a->epoch)) {
        a->epoch = (uint64_t)now ^ ((uint64_t)getpid() << 32);
    }

    /* The endpoint first: a typo in it should be the only thing the operator reads. */
    so.endpoint = opts->collector;
    so.epoch = a->epoch;
    so.ack_timeout_ms = 5000;
    so.window = 32;
    /* With a spool the sender holds only metadata; the spool's byte bound is the one. */
    so.max_queue_bytes = a->spool != NULL ? SIZE_MAX : opts->max_queue_bytes;
    so.on_ack = on_ack;
    so.load = a->spool != NULL ? spool_load : NULL;
    so.userdata = a;
    r = fp_sender_new(&so, &a->sender, err, err_size);
    if (r < 0)
        goto fail;
    if (a->spool != NULL) {
        r = replay_spool(a);
        if (r < 0)
            goto fail;
    }

    char why[768];
    for (size_t i = 0; !opts->no_samplers && fp_samplers[i] != NULL && a->n_sources < MAX_SOURCES;
         i++) {
        const struct fp_sampler_ops *ops = fp_samplers[i];
        void *ctx = NULL;
        char msg[1024];

        if (ops->version < 1)
            continue;
        why[0] = '\0';
        env.open_error = why;
        env.open_error_size = sizeof(why);
        r = ops->open(&env, &ctx);
        if (r == FP_SAMPLER_DISABLED)
            continue;
        if (r == 0) {
            a->sources[a->n_sources++] = (struct source){.ops = ops, .ctx = ctx};
            fp_log_debug("probe", "source %s: open", ops->name);
            continue;
        }
        if (why[0] != '\0')
            (void)snprintf(msg, sizeof(msg), "source %s: %s, skipping", ops->name, why);
        else if (r == -ENOENT)
            (void)snprintf(msg, sizeof(msg), "source %s: not present on this machine, skipping",
                           ops->name);
        else
            (void)snprintf(msg, sizeof(msg), "source %s: cannot open (%s), skipping", ops->name,
                           strerror(-r));
        /* A source that says why it failed was asked for (--model without its module): warn. */
        if (why[0] != '\0')
            fp_log_warn("probe", "%s", msg);
        else
            fp_log_info("probe", "%s", msg);
        /* The fleet sees the gap too, not just this log. */
        (void)fp_batch_builder_add_event(a->builder, now, "source_unavailable",
                                         FP_SEVERITY_INFO, msg,
                                         &(struct fp_label){"source", ops->name}, 1);
    }
    discover_identity(a);

    *ret = a;
    return 0;
fail:
    fp_agent_destroy(&a);
    return r;
}

void fp_agent_destroy(struct fp_agent **ap)
{
    struct fp_agent *a = *ap;
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n_sources; i++)
        a->sources[i].ops->close(&a->sources[i].ctx);
    fp_sender_destroy(&a->sender);
    fp_spool_close(&a->spool);
    fp_batch_builder_destroy(&a->builder);
    free(a);
    *ap = NULL;
}

void fp_agent_stop(struct fp_agent *a)
{
    atomic_store_explicit(&a->stop, 1, memory_order_relaxed);
}

/* Samples this probe lost before the collector had them: dropped from the spool (persisted
 * across restarts) or, without one, from the in-memory queue. */
static uint64_t dropped_total(const struct fp_agent *a)
{
    struct fp_sender_stats st;
    fp_sender_get_stats(a->sender, &st);
    return st.samples_dropped + (a->spool != NULL ? fp_spool_dropped_samples_total(a->spool) : 0);
}

/* The probe's view of itself, as series: what a dashboard needs to tell "no data" from "the
 * probe is losing data". */
static void emit_self(struct fp_agent *a, struct fp_emitter *e)
{
    struct fp_sender_stats st;

    fp_sender_get_stats(a->sender, &st);
    fp_emit_gauge(e, "fleetpulse_probe_queue_batches", NULL, 0, (double)st.batches_queued);
    fp_emit_counter(e, "fleetpulse_probe_spool_dropped_samples_total", NULL, 0,
                    (double)dropped_total(a));
    if (a->spool != NULL) {
        uint64_t total = fp_spool_dropped_samples_total(a->spool);
        fp_emit_gauge(e, "fleetpulse_probe_spool_bytes", NULL, 0,
                      (double)fp_spool_bytes(a->spool));
        if (total > a->spool_dropped_reported) {
            char msg[160], n[32], t[32];
            (void)snprintf(n, sizeof(n), "%" PRIu64, total - a->spool_dropped_reported);
            (void)snprintf(t, sizeof(t), "%" PRIu64, total);
            (void)snprintf(msg, sizeof(msg),
                           "spool full: dropped the oldest batches, %s samples", n);
            fp_log_warn("probe", "%s", msg);
            /* The total rides along: while the spool overflows, batches carrying earlier events
             * can be dropped themselves, so only the newest event is sure to arrive. */
            const struct fp_label attrs[] = {{"samples", n}, {"total", t}};
            (void)fp_emit_event(e, FP_SEVERITY_WARNING, "spool_dropped", msg, attrs, 2);
            a->spool_dropped_reported = total;
        }
    }
    fp_emit_counter(e, "fleetpulse_probe_retransmits_total", NULL, 0, (double)st.retransmits);
    fp_emit_counter(e, "fleetpulse_probe_refused_samples_total", NULL, 0,
                    (double)st.samples_refused);
    for (size_t i = 0; i < a->n_sources; i++)
        fp_emit_counter(e, "fleetpulse_probe_source_errors_total",
                        &(struct fp_label){"source", a->sources[i].ops->name}, 1,
                        (double)a->sources[i].errors);
}

static int round_once(struct fp_agent *a)
{
    struct fp_emitter e = {
        .sample = emit_sample,
        .event = emit_event,
        .info = emit_info,
        .userdata = a,
        .ts_ms = fp_clock_now_ms(),
    };
    struct fp_sender_stats st;
    uint8_t *buf;
    size_t len;
    uint64_t samples;
    int r;

    for (size_t i = 0; i < a->n_sources; i++) {
        struct source *s = &a->sources[i];
        r = s->ops->sample(s->ctx, &e);
        if (r > 0) {
            s->errors += (uint64_t)r;
            fp_log_debug("probe", "source %s: %d values unreadable", s->ops->name, r);
        } else if (r < 0) {
            s->errors++;
            fp_log_debug("probe", "source %s: %s", s->ops->name, strerror(-r));
        }
    }
    if (a->opts.round_hook != NULL) {
        r = a->opts.round_hook(a->opts.hook_userdata, &e);
        if (r < 0)
            fp_log_debug("probe", "round hook: %s", strerror(-r));
    }
    emit_self(a, &e);
    if (!a->info_acked)
        (void)fp_batch_builder_set_info(a->builder, a->info, a->n_info);
    fp_sender_get_stats(a->sender, &st);
    samples = fp_batch_builder_samples(a->builder);
    r = fp_batch_builder_encode(a->builder, a->opts.device_id, a->epoch, ++a->seq, e.ts_ms,
                                dropped_total(a), &buf, &len);
    fp_batch_builder_reset(a->builder);
    if (r < 0)
        return r;
    if (a->spool != NULL) {
        /* On disk before it is sent: a crash from here on loses nothing. */
        r = fp_spool_append(a->spool, a->seq, buf, len, samples);
        if (r == 0) {
            free(buf);
            return fp_sender_enqueue(a->sender, a->seq, NULL, len, samples);
        }
        fp_log_warn("probe", "spool append failed (%s); holding the batch in memory only",
                    r < 0 ? strerror(-r) : "spool error");
    }
    return fp_sender_enqueue(a->sender, a->seq, buf, len, samples);
}

int fp_agent_run(struct fp_agent *a)
{
    int64_t next = fp_clock_mono_ms() + a->opts.first_round_ms;
    uint64_t rounds = 0;
    struct fp_sender_stats st;
    int r = 0;

    fp_log_info("probe", "device=\"%s\" epoch=%" PRIu64 ": sending to %s every %.3g s, %zu sources",
                a->opts.device_id, a->epoch, a->opts.collector, (double)a->opts.interval_ms / 1000,
                a->n_sources);
    while (!a->stop) {
        int64_t now = fp_clock_mono_ms();
        if (now >= next) {
            r = round_once(a);
            if (r == -ENOMEM)
                fp_log_warn("probe", "out of memory building a batch, dropping this round");
            rounds++;
            if (a->opts.max_rounds != 0 && rounds >= a->opts.max_rounds)
                break;
            next += a->opts.interval_ms;
            /* After a stall (suspend, SIGSTOP) start afresh rather than firing a burst. */
            if (next <= now)
                next = now + a->opts.interval_ms;
        }
        r = fp_sender_poll(a->sender, next - fp_clock_mono_ms());
        if (r < 0 && r != -EINTR)
            return r;
    }
    if (a->stop && a->opts.final_round) {
        r = round_once(a);
        if (r < 0)
            fp_log_warn("probe", "last round failed (%s), dropping it", strerror(-r));
        rounds++;
    }
    /* Give the last batches a moment to be acknowledged before they are lost with us (or left
     * in the spool): a collector that came back while the reconnect backoff was waiting gets
     * them now rather than after the wait. */
    fp_sender_retry_now(a->sender);
    for (int64_t end = fp_clock_mono_ms() + 2000; fp_clock_mono_ms() < end;) {
        fp_sender_get_stats(a->sender, &st);
        if (st.batches_queued == 0)
            break;
        if (fp_sender_poll(a->sender, 100) < 0 && !a->stop)
            break;
    }
    fp_sender_get_stats(a->sender, &st);
    if (st.batches_queued > 0)
        fp_log_warn("probe", "exiting with %" PRIu64 " batches unacknowledged; they are lost",
                    st.batches_queued);
    fp_log_info("probe", "stopped after %" PRIu64 " rounds: %" PRIu64 " batches acknowledged, %"
                         PRIu64 " samples dropped",
                rounds, st.batches_acked, st.samples_dropped);
    return 0;
}
