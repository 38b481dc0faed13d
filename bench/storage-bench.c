/* Storage engine benchmark, run by bench/storage: the standard fleet workload (bench/workload.h,
 * after shared/reference/workload/fleetgen.py) through the storage API, measured the way the
 * peers in the workload README were, and checked against the generated data.
 *
 *  1. ingest: one fp_store_write per minute of data carrying every device (one batch per device
 *     with epoch and seq, 6 samples per series), durable commits (as the collector commits:
 *     background_sync, each commit's fsync overlapping the next write, the last one waited for),
 *     into a fresh data dir: the backfill shape, comparable with the peers'
 *     6-samples-per-series batches. Wall time and process CPU (getrusage) of the writes; then
 *     fp_store_compact, timed on its own.
 *  2. size: a compacted copy of the environment (mdb_env_copy2 with MDB_CP_COMPACT, see
 *     lmdb-limits.h) per sample, as "on disk after compaction"; the live data.mdb per sample as
 *     well (it keeps free pages for reuse), and the copy's bytes per named database.
 *  3. queries Q1-Q5 of the README through the storage API, each opening its own reader on a
 *     read-only store as the query service does; warm (one untimed run first), median of --reps.
 *     Every answer is checked: Q1 and Q3 against averages computed from the workload, Q2 against
 *     the exact pooled p95 (sketch_max_rel_error, at most 1%), Q4 against the workload's latest
 *     temperatures, Q5 against the devices the workload silenced. A wrong answer exits 1.
 *  4. HTTP: the real fleetpulse-query on a free loopback port against the data dir, timed with
 *     curl's time_total (warm, median of --reps) for the queries the API can express; the others
 *     are null and listed in http_missing with the reason (a 400 names the missing parameter).
 *  5. the LMDB ceiling: as many raw appends as there are samples (16-byte values, MDB_APPEND, 10k
 *     puts per durable commit), so the figures read as ratios on whatever machine runs them.
 *
 * Time: the workload's last sample is 10 s before bench/chunk's fixed end (midnight UTC), so the
 * 6 h lie in one day partition of the store, as three windows in four ending "now" would; the
 * queries run at "now" = midnight, the moment the next sample would be due, so "the last hour"
 * [now - 1 h, now) holds exactly 360 samples of every live series. received_ms follows the data,
 * so the store's retention (which runs on received_ms) keeps everything whatever the wall clock
 * says, and the runs are comparable with each other.
 *
 * Progress lines go to stdout; the last line is one JSON object. A store call that fails, or a
 * wrong answer, ends the run with exit status 1 and one line on stderr naming what failed. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "lmdb-limits.h"
#include "store.h"
#include "workload.h"

extern char **environ;

#define MINUTE_MS INT64_C(60000)
#define HOUR_MS (60 * MINUTE_MS)
#define SILENT_MS (5 * MINUTE_MS)    /* Q5: "silent for 5 min"; also Q4's lookback */
#define STEPS_PER_WRITE 6            /* one minute of 10 s samples per fp_store_write */
#define N_LABELS 6                   /* hw, model, model_version, quant, site, [zone] */
#define REPS_MAX 101
#define TOPK 10
#define LMDB_PUTS_PER_TXN 10000
#define LMDB_VALUE_BYTES 16
/* Q1 and Q3 must equal plain averages of the same samples; only summation order differs. */
#define AVG_REL_TOL 1e-9

/* --- cleanup on every exit ------------------------------------------------------------------- */

static char tmp_root[4096];  /* our temp dir, removed at exit unless --keep */
static bool keep_tmp;
static pid_t server_pid = -1; /* fleetpulse-query while it runs */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)remove(path);
    return 0;
}

static void cleanup(void)
{
    if (server_pid > 0) {
        (void)kill(server_pid, SIGTERM);
        (void)waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    if (tmp_root[0] != '\0' && !keep_tmp)
        (void)nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Ctrl-C or a kill: stop the query service and remove the temp dir (which holds up to a GB)
 * before going. Neither is async-signal-safe; the process is ending anyway, and the worst case
 * is a temp dir left behind. */
static void on_signal(int sig)
{
    cleanup();
    _exit(128 + sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "storage-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* buf = dir/name; a path too long for buf ends the run. */
static void path_join(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        die("path too long: %s/%s", dir, name);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* --- clocks ------------------------------------------------------------------------------------ */

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(void) /* this process, user + system */
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Bytes this process has sent to the storage layer so far (Linux /proc/self/io write_bytes);
 * NAN where that is not available. */
static double io_write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    double v = NAN;

    if (f == NULL)
        return NAN;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long x;
        if (sscanf(line, "write_bytes: %llu", &x) == 1)
            v = (double)x;
    }
    fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *a, int n)
{
    qsort(a, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

/* --- the run's settings and results ----------------------------------------------------------- */

struct settings {
    bool quick;
    size_t devices;
    int reps;
    uint64_t seed;
    const char *tmp_parent; /* where the temp dir goes: the disk being measured */
    const char *query_bin;  /* fleetpulse-query, or NULL: no HTTP figures */
};

enum { Q1, Q2, Q3, Q4, Q5, N_QUERIES };

struct results {
    size_t writes, batches;
    double ingest_wall_s, ingest_cpu_s, compact_s;
    double ingest_io_bytes, lmdb_io_bytes; /* written to storage (NAN: unknown) */
    uint64_t file_bytes;
    struct fp_lmdb_size copy;
    double q_ms[N_QUERIES];
    double q1_read_ms; /* Q1's fp_store_read_range calls alone */
    double http_ms[N_QUERIES]; /* NAN: not measured */
    double http_first_ms[N_QUERIES]; /* the first request: the service's chunk cache cold */
    char http_missing[N_QUERIES][256];
    double q2_value, q2_exact;
    double q1_err, q3_err;
    size_t q5_result;
    double lmdb_wall_s, lmdb_cpu_s;
    uint64_t lmdb_file_bytes;
};

/* --- 1. ingest ------------------------------------------------------------------------------- */

static void ingest(struct fp_store *st, const struct fp_workload *w, struct results *res)
{
    size_t nd = w->devices;
    struct fp_label *labels = xcalloc(nd * FP_WORKLOAD_SERIES * N_LABELS, sizeof(*labels));
    struct fp_series_in *series = xcalloc(nd * FP_WORKLOAD_SERIES, sizeof(*series));
    struct fp_write_batch *batches = xcalloc(nd, sizeof(*batches));
    struct fp_write_result *wres = xcalloc(nd, sizeof(*wres));
    uint64_t written = 0;
    double t0, c0, io0;
    /* The values in the order the writes hand them over (write, device, series, step), as a
     * collector holds a group of freshly decoded batches. Read in place, the workload's arrays
     * (device, series, all steps) made every series of every write start on another page: a
     * TLB and cache miss per series that was ~12% of the measured ingest CPU, all the client's. */
    double *staged = xcalloc(w->samples, sizeof(*staged));
    size_t at = 0;

    for (size_t t0i = 0; t0i < w->steps; t0i += STEPS_PER_WRITE)
        for (size_t d = 0; d < nd; d++)
            for (size_t s = 0; s < FP_WORKLOAD_SERIES; s++)
                for (size_t t = t0i; t < t0i + STEPS_PER_WRITE && t < w->len[d]; t++)
                    staged[at++] = fp_workload_values(w, d, s)[t];
    if (at != w->samples)
        die("staging the writes: %zu samples of %zu", at, w->samples);
    at = 0;

    /* Everything but the per-minute pointers is set up once: the client's cost stays out. */
    for (size_t d = 0; d < nd; d++) {
        const struct fp_workload_device *dv = &w->dev[d];
        for (size_t s = 0; s < FP_WORKLOAD_SERIES; s++) {
            const struct fp_workload_series_def *def = &fp_workload_series[s];
            struct fp_label *l = labels + (d * FP_WORKLOAD_SERIES + s) * N_LABELS;
            struct fp_series_in *in = &series[d * FP_WORKLOAD_SERIES + s];

            l[0] = (struct fp_label){"hw", dv->hw};
            l[1] = (struct fp_label){"model", dv->model};
            l[2] = (struct fp_label){"model_version", dv->model_version};
            l[3] = (struct fp_label){"quant", dv->quant};
            l[4] = (struct fp_label){"site", dv->site};
            l[5] = (struct fp_label){"zone", def->zone};
            in->metric = def->metric;
            in->type = def->counter ? FP_SERIES_COUNTER : FP_SERIES_GAUGE;
            in->labels = l;
            in->n_labels = def->zone != NULL ? 6 : 5;
        }
    }

    t0 = mono_s();
    c0 = cpu_s();
    io0 = io_write_bytes();
    for (size_t t0i = 0, minute = 0; t0i < w->steps; t0i += STEPS_PER_WRITE, minute++) {
        size_t nb = 0;
        int r;

        for (size_t d = 0; d < nd; d++) {
            size_t end = t0i + STEPS_PER_WRITE, n;
            struct fp_write_batch *b = &batches[nb];

            if (end > w->len[d])
                end = w->len[d];
            if (end <= t0i)
                continue; /* the device has gone silent */
            n = end - t0i;
            for (size_t s = 0; s < FP_WORKLOAD_SERIES; s++) {
                struct fp_series_in *in = &series[d * FP_WORKLOAD_SERIES + s];
                in->ts_ms = w->ts + t0i;
                in->values = staged + at;
                in->n = n;
                at += n;
            }
            *b = (struct fp_write_batch){
                .device = w->dev[d].id,
                .epoch = 1,
                .seq = minute + 1,
                .received_ms = w->ts[end - 1] + 150, /* the collector sees it a little later */
                /* identity on the first batch; n_info == 0 keeps it afterwards */
                .info = labels + d * FP_WORKLOAD_SERIES * N_LABELS,
                .n_info = minute == 0 ? 5 : 0,
                .series = &series[d * FP_WORKLOAD_SERIES],
                .n_series = FP_WORKLOAD_SERIES,
            };
            nb++;
        }
        r = fp_store_write(st, batches, nb, wres);
        if (r != 0)
            die("fp_store_write (minute %zu, %zu batches): %s", minute, nb, fp_store_strerror(r));
        for (size_t i = 0; i < nb; i++) {
            if (wres[i].status != 0 || wres[i].samples_refused != 0)
                die("fp_store_write (minute %zu): batch of %s: status %d (%s), %" PRIu64
                    " samples refused",
                    minute, batches[i].device, wres[i].status, fp_store_strerror(wres[i].status),
                    wres[i].samples_refused);
            written += wres[i].samples_written;
        }
        res->writes++;
        res->batches += nb;
    }
    /* Durable: the last commit's sync is part of the ingest time. */
    if (fp_store_wait_durable(st, fp_store_committed(st), -1) != 0)
        die("fp_store_wait_durable: the store could not sync");
    res->ingest_cpu_s = cpu_s() - c0;
    res->ingest_wall_s = mono_s() - t0;
    res->ingest_io_bytes = io_write_bytes() - io0;
    if (written != w->samples)
        die("fp_store_write stored %" PRIu64 " samples of %zu", written, w->samples);

    free(staged);
    free(labels);
    free(series);
    free(batches);
    free(wres);
}

/* --- 3. queries ----------------------------------------------------------------------------- */

struct query_ctx {
    struct fp_store *store;
    const struct fp_workload *w;
    int64_t now_ms;
    size_t q3_device; /* index of the device Q3 reads */
    /* answers of the last run, for the checks */
    struct fp_agg_result *agg;
    double q2;
    size_t q1_groups; /* groups of the in-process Q1 answer */
    char top_dev[TOPK][64];
    double top_val[TOPK];
    size_t n_top;
    size_t silent;
    size_t points; /* counted by run_q1_read */
};

static struct fp_store_reader *reader_open(struct query_ctx *c)
{
    struct fp_store_reader *r = NULL;
    int rc = fp_store_reader_open(c->store, &r);
    if (rc != 0)
        die("fp_store_reader_open: %s", fp_store_strerror(rc));
    return r;
}

static void aggregate(struct query_ctx *c, const char *what, const struct fp_agg_query *q)
{
    struct fp_store_reader *r = reader_open(c);
    int rc;

    fp_agg_result_destroy(&c->agg);
    rc = fp_store_aggregate(r, q, &c->agg);
    fp_store_reader_close(&r);
    if (rc != 0)
        die("%s: fp_store_aggregate: %s", what, rc == FP_AGG_E_TOO_MANY ? "too many points"
                                                                        : fp_store_strerror(rc));
}

/* Q1: fleet avg tokens_per_second by model, last 1 h, 1 min step. */
static void run_q1(struct query_ctx *c)
{
    static const char *const by[] = {"model"};
    struct fp_matcher m = {"__name__", "tokens_per_second", FP_MATCH_EQ};
    struct fp_agg_query q = {
        .matchers = &m, .n_matchers = 1, .from_ms = c->now_ms - HOUR_MS, .to_ms = c->now_ms,
        .step_ms = MINUTE_MS, .fn = FP_AGG_AVG, .by = by, .n_by = 1, .max_points = 1u << 20,
    };
    aggregate(c, "Q1", &q);
}

static int count_point(void *userdata, int64_t ts_ms, double value)
{
    (*(size_t *)userdata)++;
    return 0;
}

/* Q1's reading alone, for the split between storage and aggregation: select the series and
 * fp_store_read_range each over the same hour, counting the points. */
static void run_q1_read(struct query_ctx *c)
{
    struct fp_matcher m = {"__name__", "tokens_per_second", FP_MATCH_EQ};
    struct fp_store_reader *r = reader_open(c);
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int rc;

    c->points = 0;
    rc = fp_store_select(r, &m, 1, &ids, &n_ids);
    if (rc != 0)
        die("Q1 read: fp_store_select: %s", fp_store_strerror(rc));
    for (size_t i = 0; i < n_ids; i++) {
        rc = fp_store_read_range(r, ids[i], c->now_ms - HOUR_MS, c->now_ms - 1, count_point,
                                 &c->points);
        if (rc != 0)
            die("Q1 read: fp_store_read_range: %s", fp_store_strerror(rc));
    }
    fp_store_reader_close(&r);
    free(ids);
}

/* Q2: fleet p95 ttft_seconds over the last hour, pooled, one bucket. */
static void run_q2(struct query_ctx *c)
{
    struct fp_matcher m = {"__name__", "ttft_seconds", FP_MATCH_EQ};
    struct fp_agg_query q = {
        .matchers = &m, .n_matchers = 1, .from_ms = c->now_ms - HOUR_MS, .to_ms = c->now_ms,
        .step_ms = HOUR_MS, .fn = FP_AGG_QUANTILE, .q = 0.95, .max_points = 16,
    };
    aggregate(c, "Q2", &q);
    if (c->agg->n_groups != 1 || c->agg->groups[0].n_points != 1)
        die("Q2: %zu groups, expected one group with one point", c->agg->n_groups);
    c->q2 = c->agg->groups[0].points[0].value;
}

/* Q3: one device, all 10 series, last 6 h, 1 min step: avg per series. */
static void run_q3(struct query_ctx *c)
{
    static const char *const by[] = {"__name__", "zone"};
    struct fp_matcher m = {"device", c->w->dev[c->q3_device].id, FP_MATCH_EQ};
    struct fp_agg_query q = {
        .matchers = &m, .n_matchers = 1, .from_ms = c->now_ms - 6 * HOUR_MS, .to_ms = c->now_ms,
        .step_ms = MINUTE_MS, .fn = FP_AGG_AVG, .by = by, .n_by = 2, .max_points = 1u << 20,
    };
    aggregate(c, "Q3", &q);
}

struct dev_temp {
    const char *device; /* borrowed from the reader */
    double value;
};

static int cmp_dev_temp(const void *a, const void *b)
{
    const struct dev_temp *x = a, *y = b;
    return strcmp(x->device, y->device);
}

/* Q4: top 10 devices by latest temperature (the hotter zone), among series with a sample in
 * the last 5 min (Prometheus' lookback: a silent device has no latest temperature). */
static void run_q4(struct query_ctx *c)
{
    struct fp_matcher m = {"__name__", "temperature_celsius", FP_MATCH_EQ};
    struct fp_store_reader *r = reader_open(c);
    struct fp_series_desc desc;
    struct dev_temp *dt;
    uint64_t *ids = NULL;
    size_t n_ids = 0, n = 0, n_dev = 0;
    int rc;

    rc = fp_store_select(r, &m, 1, &ids, &n_ids);
    if (rc != 0)
        die("Q4: fp_store_select: %s", fp_store_strerror(rc));
    dt = xcalloc(n_ids, sizeof(*dt));
    for (size_t i = 0; i < n_ids; i++) {
        int64_t ts;
        double v;

        rc = fp_store_latest(r, ids[i], &ts, &v);
        if (rc == FP_STORE_E_NOTFOUND)
            continue;
        if (rc != 0)
            die("Q4: fp_store_latest: %s", fp_store_strerror(rc));
        if (ts < c->now_ms - SILENT_MS)
            continue;
        rc = fp_store_series_get(r, ids[i], &desc);
        if (rc != 0)
            die("Q4: fp_store_series_get: %s", fp_store_strerror(rc));
        for (size_t l = 0; l < desc.n_labels; l++)
            if (strcmp(desc.labels[l].name, "device") == 0)
                dt[n++] = (struct dev_temp){desc.labels[l].value, v};
    }
    /* one entry per device, its hotter zone */
    qsort(dt, n, sizeof(*dt), cmp_dev_temp);
    for (size_t i = 0; i < n; i++) {
        if (n_dev > 0 && strcmp(dt[n_dev - 1].device, dt[i].device) == 0) {
            if (dt[i].value > dt[n_dev - 1].value)
                dt[n_dev - 1].value = dt[i].value;
        } else {
            dt[n_dev++] = dt[i];
        }
    }
    /* partial sort: keep the 10 hottest, hottest first, by insertion */
    c->n_top = 0;
    for (size_t i = 0; i < n_dev; i++) {
        size_t k = c->n_top < TOPK ? c->n_top++ : TOPK;
        while (k > 0 && c->top_val[k - 1] < dt[i].value) {
            if (k < TOPK) {
                c->top_val[k] = c->top_val[k - 1];
                memcpy(c->top_dev[k], c->top_dev[k - 1], sizeof(c->top_dev[k]));
            }
            k--;
        }
        if (k < TOPK) {
            c->top_val[k] = dt[i].value;
            (void)snprintf(c->top_dev[k], sizeof(c->top_dev[k]), "%s", dt[i].device);
        }
    }
    fp_store_reader_close(&r);
    free(dt);
    free(ids);
}

static int count_silent(void *userdata, const struct fp_device_desc *d)
{
    struct query_ctx *c = userdata;
    if (d->last_seen_ms < c->now_ms - SILENT_MS)
        c->silent++;
    return 0;
}

/* Q5: count of devices silent for 5 min (collector clock of their last batch). */
static void run_q5(struct query_ctx *c)
{
    struct fp_store_reader *r = reader_open(c);
    int rc;

    c->silent = 0;
    rc = fp_store_devices(r, count_silent, c);
    fp_store_reader_close(&r);
    if (rc != 0)
        die("Q5: fp_store_devices: %s", fp_store_strerror(rc));
}

/* Runs q once to warm up, then reps times; returns the median in ms. */
static double time_query(void (*q)(struct query_ctx *), struct query_ctx *c, int reps)
{
    double t[REPS_MAX];

    q(c);
    for (int i = 0; i < reps; i++) {
        double t0 = mono_s();
        q(c);
        t[i] = (mono_s() - t0) * 1e3;
    }
    return median(t, reps);
}

/* --- checks against the workload --------------------------------------------------------------- */

static double rel_err(double got, double want)
{
    if (got == want)
        return 0;
    return fabs(got - want) / fmax(fabs(want), 1e-300);
}

/* Largest relative error of an avg-by-bucket answer: group gi of res against the exact averages of
 * series s (all when s == SIZE_MAX) over the devices for which take(d) holds. */
struct avg_check {
    const struct fp_workload *w;
    int64_t from_ms, step_ms;
    size_t n_buckets;
    double *sum, *cnt;
};

static void avg_add(struct avg_check *a, size_t d, size_t s)
{
    const double *v = fp_workload_values(a->w, d, s);
    for (size_t t = 0; t < a->w->len[d]; t++) {
        int64_t ts = a->w->ts[t];
        if (ts < a->from_ms)
            continue;
        size_t k = (size_t)((ts - a->from_ms) / a->step_ms);
        if (k >= a->n_buckets)
            break;
        a->sum[k] += v[t];
        a->cnt[k] += 1;
    }
}

/* Compares group g with the sums collected, then clears them. Returns the largest relative error;
 * a missing or extra bucket dies. */
static double avg_compare(struct avg_check *a, const struct fp_agg_group *g, const char *what)
{
    double worst = 0;
    size_t p = 0;

    for (size_t k = 0; k < a->n_buckets; k++) {
        if (a->cnt[k] == 0)
            continue;
        if (p >= g->n_points || g->points[p].ts_ms != a->from_ms + (int64_t)k * a->step_ms)
            die("%s: bucket at %" PRId64 " missing from the answer", what,
                a->from_ms + (int64_t)k * a->step_ms);
        worst = fmax(worst, rel_err(g->points[p].value, a->sum[k] / a->cnt[k]));
        p++;
    }
    if (p != g->n_points)
        die("%s: %zu points in the answer, %zu expected", what, g->n_points, p);
    memset(a->sum, 0, a->n_buckets * sizeof(double));
    memset(a->cnt, 0, a->n_buckets * sizeof(double));
    return worst;
}

static const char *group_label(const struct fp_agg_group *g, const char *name)
{
    for (size_t i = 0; i < g->n_labels; i++)
        if (strcmp(g->labels[i].name, name) == 0)
            return g->labels[i].value;
    return NULL;
}

static double check_q1(struct query_ctx *c)
{
    const struct fp_workload *w = c->w;
    struct avg_check a = {w, c->now_ms - HOUR_MS, MINUTE_MS, 60, NULL, NULL};
    const struct fp_agg_result *res = c->agg;
    double worst = 0;

    a.sum = xcalloc(a.n_buckets, sizeof(double));
    a.cnt = xcalloc(a.n_buckets, sizeof(double));
    if (res->n_groups == 0)
        die("Q1: no groups in the answer");
    for (size_t g = 0; g < res->n_groups; g++) {
        const char *model = group_label(&res->groups[g], "model");
        size_t found = 0;
        if (model == NULL)
            die("Q1: a group without the model label");
        for (size_t d = 0; d < w->devices; d++) {
            if (strcmp(w->dev[d].model, model) == 0) {
                avg_add(&a, d, 0);
                found++;
            }
        }
        if (found == 0)
            die("Q1: model \"%s\" is not in the workload", model);
        worst = fmax(worst, avg_compare(&a, &res->groups[g], "Q1"));
    }
    free(a.sum);
    free(a.cnt);
    return worst;
}

static double check_q3(struct query_ctx *c)
{
    const struct fp_workload *w = c->w;
    struct avg_check a = {w, c->now_ms - 6 * HOUR_MS, MINUTE_MS, 360, NULL, NULL};
    const struct fp_agg_result *res = c->agg;
    double worst = 0;

    a.sum = xcalloc(a.n_buckets, sizeof(double));
    a.cnt = xcalloc(a.n_buckets, sizeof(double));
    if (res->n_groups != FP_WORKLOAD_SERIES)
        die("Q3: %zu groups in the answer, %d expected", res->n_groups, FP_WORKLOAD_SERIES);
    for (size_t g = 0; g < res->n_groups; g++) {
        const char *name = group_label(&res->groups[g], "__name__");
        const char *zone = group_label(&res->groups[g], "zone");
        size_t s;
        for (s = 0; s < FP_WORKLOAD_SERIES; s++) {
            const struct fp_workload_series_def *def = &fp_workload_series[s];
            if (name != NULL && strcmp(def->metric, name) == 0 &&
                (def->zone == NULL ? zone == NULL : zone != NULL && strcmp(def->zone, zone) == 0))
                break;
        }
        if (s == FP_WORKLOAD_SERIES)
            die("Q3: group %s{zone=%s} is not a series of the workload", name ? name : "?",
                zone ? zone : "");
        avg_add(&a, c->q3_device, s);
        worst = fmax(worst, avg_compare(&a, &res->groups[g], "Q3"));
    }
    free(a.sum);
    free(a.cnt);
    return worst;
}

/* The exact pooled p95 of ttft over [now - 1 h, now): rank floor(0.95 (N - 1)) of the sorted
 * values, the rank storage/sketch.h estimates. */
static double exact_q2(const struct query_ctx *c)
{
    const struct fp_workload *w = c->w;
    double *all = xcalloc(w->devices * w->steps, sizeof(double)), x;
    size_t n = 0;

    for (size_t d = 0; d < w->devices; d++) {
        const double *v = fp_workload_values(w, d, 1);
        for (size_t t = 0; t < w->len[d]; t++)
            if (w->ts[t] >= c->now_ms - HOUR_MS && w->ts[t] < c->now_ms)
                all[n++] = v[t];
    }
    if (n == 0)
        die("Q2: no ttft samples in the last hour of the workload");
    qsort(all, n, sizeof(double), cmp_double);
    x = all[(size_t)floor(0.95 * (double)(n - 1))];
    free(all);
    return x;
}

static void check_q4(const struct query_ctx *c)
{
    const struct fp_workload *w = c->w;
    double want[TOPK];
    size_t n = 0;

    for (size_t d = 0; d < w->devices; d++) {
        size_t last = w->len[d] - 1;
        double v;
        if (w->ts[last] < c->now_ms - SILENT_MS)
            continue;
        v = fmax(fp_workload_values(w, d, 7)[last], fp_workload_values(w, d, 8)[last]);
        size_t k = n < TOPK ? n++ : TOPK;
        while (k > 0 && want[k - 1] < v) {
            if (k < TOPK)
                want[k] = want[k - 1];
            k--;
        }
        if (k < TOPK)
            want[k] = v;
    }
    if (c->n_top != n)
        die("Q4: %zu devices in the answer, %zu expected", c->n_top, n);
    for (size_t i = 0; i < n; i++)
        if (c->top_val[i] != want[i])
            die("Q4: place %zu is %s at %.3f, the workload says %.3f", i + 1, c->top_dev[i],
                c->top_val[i], want[i]);
}

/* The shortest %g form of v that reads back as v (as the query service prints numbers). */
static void shortest(char *buf, size_t size, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        (void)snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* --- 4. HTTP ----------------------------------------------------------------------------------- */

static void json_escape(char *out, size_t size, const char *s)
{
    size_t o = 0;
    for (; *s != '\0' && o + 7 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static bool read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (f == NULL)
        return false;
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

/* The "error" of an error answer ({"status":"error","error":"..."}), else the whole text; cuts
 * text. */
static const char *error_text(char *text)
{
    char *p = strstr(text, "\"error\":\""), *end;

    if (p == NULL)
        return text;
    p += strlen("\"error\":\"");
    end = strrchr(p, '"');
    if (end != NULL)
        *end = '\0';
    /* undo the JSON escapes of quotes and backslashes; the output escapes them again */
    for (char *r = p, *w = p;; r++) {
        if (r[0] == '\\' && (r[1] == '"' || r[1] == '\\'))
            r++;
        *w++ = *r;
        if (*r == '\0')
            break;
    }
    return p;
}

/* Checks an HTTP answer against the in-process one: Q1 has as many series (groups), Q2 carries the
 * same p95, printed as the service prints numbers. A wrong answer ends the run. */
static void check_http(int q, const char *body_path, const struct query_ctx *c)
{
    static char text[1 << 20];
    char want[40];
    size_t n = 0;

    if (!read_file(body_path, text, sizeof(text)))
        die("http: Q%d: cannot read the answer", q + 1);
    if (q == Q1) {
        for (const char *p = text; (p = strstr(p, "\"labels\":")) != NULL; p++)
            n++;
        if (n != c->q1_groups || strstr(text, "\"agg\":\"avg\"") == NULL)
            die("http: Q1: %zu series in the answer, %zu in-process: %.200s", n, c->q1_groups,
                text);
    } else if (q == Q2) {
        want[0] = ',';
        shortest(want + 1, sizeof(want) - 2, c->q2);
        strcat(want, "]");
        if (strstr(text, want) == NULL)
            die("http: Q2: the answer does not carry the in-process p95 %s: %.200s", want + 1,
                text);
    } else if (q == Q4) {
        char key[96];
        for (const char *p = text; (p = strstr(p, "{\"device\":")) != NULL; p++)
            n++;
        if (n != c->n_top)
            die("http: Q4: %zu devices in the answer, %zu in-process", n, c->n_top);
        for (size_t i = 0; i < c->n_top; i++) {
            (void)snprintf(key, sizeof(key), "{\"device\":\"%s\"", c->top_dev[i]);
            if (strstr(text, key) == NULL)
                die("http: Q4: %s (place %zu in-process) is not in the answer", c->top_dev[i],
                    i + 1);
        }
    } else if (q == Q5) {
        (void)snprintf(want, sizeof(want), "\"total\":%zu,", c->silent);
        if (strstr(text, want) == NULL)
            die("http: Q5: the answer does not count %zu silent devices: %.200s", c->silent,
                text);
    }
}

/* Starts fleetpulse-query on 127.0.0.1, port 0, logging to log; returns the port or 0 (why in
 * err). */
static unsigned start_server(const char *bin, const char *data_dir, const char *as_of,
                             const char *log, char *err, size_t err_size)
{
    posix_spawn_file_actions_t fa;
    /* --as-of: device states (Q4, Q5) at the workload's "now", as the in-process queries. */
    char *argv[] = {(char *)bin,    (char *)"--data",  (char *)data_dir,    (char *)"--listen",
                    (char *)"127.0.0.1:0", (char *)"--as-of", (char *)as_of, NULL};
    char text[8192];
    int r;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    r = posix_spawn(&server_pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        server_pid = -1;
        (void)snprintf(err, err_size, "cannot start %s: %s", bin, strerror(r));
        return 0;
    }
    for (int i = 0; i < 500; i++) { /* up to 10 s */
        const char *p;
        int status;

        if (read_file(log, text, sizeof(text)) &&
            (p = strstr(text, "listening on 127.0.0.1:")) != NULL)
            return (unsigned)strtoul(p + strlen("listening on 127.0.0.1:"), NULL, 10);
        if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
            server_pid = -1;
            text[strcspn(text, "\n")] = '\0';
            (void)snprintf(err, err_size, "fleetpulse-query exited at start: %.200s", text);
            return 0;
        }
        usleep(20000);
    }
    (void)snprintf(err, err_size, "fleetpulse-query did not report its port within 10 s");
    return 0;
}

/* One curl request; returns the HTTP status (0: curl failed) and its time_total in ms. The body
 * goes to body_path. */
static int curl_get(const char *url, const char *body_path, double *ret_ms)
{
    char cmd[8192], line[128];
    FILE *p;
    int code = 0;
    double secs = 0;

    (void)snprintf(cmd, sizeof(cmd),
                   "curl -s -o '%s' -w '%%{http_code} %%{time_total}' '%s' 2>/dev/null",
                   body_path, url);
    p = popen(cmd, "r");
    if (p == NULL)
        return 0;
    if (fgets(line, sizeof(line), p) == NULL || sscanf(line, "%d %lf", &code, &secs) != 2)
        code = 0;
    (void)pclose(p);
    *ret_ms = secs * 1e3;
    return code;
}

static void time_fmt(char *buf, size_t size, int64_t ms)
{
    (void)snprintf(buf, size, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
}

static void run_http(const struct settings *set, const char *data_dir, const struct query_ctx *c,
                     struct results *res)
{
    char log[4200], body[4200], err[1024], text[1024], now[32], h1[32], h6[32];
    char urls[N_QUERIES][1024] = {{0}};
    unsigned port;

    for (int q = 0; q < N_QUERIES; q++)
        res->http_ms[q] = res->http_first_ms[q] = NAN;
    if (set->query_bin == NULL) {
        for (int q = Q1; q <= Q5; q++)
            (void)snprintf(res->http_missing[q], sizeof(res->http_missing[q]),
                           "fleetpulse-query was not built");
        return;
    }
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        for (int q = Q1; q <= Q5; q++)
            (void)snprintf(res->http_missing[q], sizeof(res->http_missing[q]),
                           "curl not found");
        return;
    }
    path_join(log, sizeof(log), tmp_root, "query.log");
    path_join(body, sizeof(body), tmp_root, "body.json");
    time_fmt(now, sizeof(now), c->now_ms);
    port = start_server(set->query_bin, data_dir, now, log, err, sizeof(err));
    if (port == 0) {
        for (int q = Q1; q <= Q5; q++)
            (void)snprintf(res->http_missing[q], sizeof(res->http_missing[q]), "%.200s", err);
        progress("http: %s", err);
        return;
    }
    progress("http: fleetpulse-query on 127.0.0.1:%u", port);

    time_fmt(now, sizeof(now), c->now_ms);
    time_fmt(h1, sizeof(h1), c->now_ms - HOUR_MS);
    time_fmt(h6, sizeof(h6), c->now_ms - 6 * HOUR_MS);
    /* The aggregation parameters of GET /api/v1/series (docs/api.md). */
    (void)snprintf(urls[Q1], sizeof(urls[Q1]),
                   "http://127.0.0.1:%u/api/v1/series?metric=tokens_per_second&from=%s&to=%s"
                   "&step=60&agg=avg&by=model",
                   port, h1, now);
    (void)snprintf(urls[Q2], sizeof(urls[Q2]),
                   "http://127.0.0.1:%u/api/v1/series?metric=ttft_seconds&from=%s&to=%s"
                   "&step=3600&agg=quantile&q=0.95",
                   port, h1, now);
    /* Every series of one device in one request: no metric. */
    (void)snprintf(urls[Q3], sizeof(urls[Q3]),
                   "http://127.0.0.1:%u/api/v1/series?device=%s&from=%s&to=%s"
                   "&step=60&agg=avg&by=__name__,zone",
                   port, c->w->dev[c->q3_device].id, h6, now);
    /* The device listing sorted by the latest temperature (the hotter zone), silent devices
     * (nothing for 5 min, Q4's lookback) left out; and the silent ones counted ("total"). */
    (void)snprintf(urls[Q4], sizeof(urls[Q4]),
                   "http://127.0.0.1:%u/api/v1/devices?sort=-temperature_celsius&limit=%d"
                   "&state=ok,stale,degraded",
                   port, TOPK);
    (void)snprintf(urls[Q5], sizeof(urls[Q5]),
                   "http://127.0.0.1:%u/api/v1/devices?state=silent&limit=1", port);

    for (int q = Q1; q <= Q5; q++) {
        double t[REPS_MAX], ms;
        int code = curl_get(urls[q], body, &ms); /* warm-up, and does the API take it? */

        if (code != 200) {
            if (!read_file(body, text, sizeof(text)))
                text[0] = '\0';
            text[strcspn(text, "\n")] = '\0';
            if (code == 0)
                (void)snprintf(res->http_missing[q], sizeof(res->http_missing[q]),
                               "curl failed on %.200s", urls[q]);
            else
                (void)snprintf(res->http_missing[q], sizeof(res->http_missing[q]),
                               "%sthe API does not take it yet: HTTP %d: %.150s",
                               q == Q3 ? "every series of one device in one request: " : "",
                               code, error_text(text));
            progress("http: Q%d not expressible: %s", q + 1, res->http_missing[q]);
            continue;
        }
        check_http(q, body, c);
        res->http_first_ms[q] = ms;
        for (int i = 0; i < set->reps; i++) {
            if (curl_get(urls[q], body, &t[i]) != 200)
                die("http: Q%d: a repeated request failed", q + 1);
        }
        res->http_ms[q] = median(t, set->reps);
        progress("http: Q%d %.2f ms", q + 1, res->http_ms[q]);
    }
    (void)kill(server_pid, SIGTERM);
    (void)waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

/* --- output ------------------------------------------------------------------------------------ */

/* ,"key":v with at most digits significant digits, or null for NaN. */
static void print_sig(const char *key, double v, int digits)
{
    printf(",\"%s\":", key);
    if (isnan(v))
        printf("null");
    else
        printf("%.*g", digits, v);
}

/* ,"key":v with decimals digits after the point, or null for NaN. */
static void print_num(const char *key, double v, int decimals)
{
    printf(",\"%s\":", key);
    if (isnan(v))
        printf("null");
    else
        printf("%.*f", decimals, v);
}

static void print_json(const struct settings *set, const struct fp_workload *w,
                       const struct results *res)
{
    static const char *const peers[3] = {"victoriametrics", "prometheus", "influxdb"};
    static const double peer_bps[3] = {1.45, 5.22, 4.94};
    static const double peer_ingest[3] = {2.04e6, 1.96e6, 1.60e6};
    static const double peer_cpu[3] = {0.72, 0.97, 1.16};
    static const double peer_q[3][N_QUERIES] = {
        {11.7, 18.4, 1.7, 12.1, 25.6}, {25.1, 51.9, 2.0, 5.6, 99.6}, {84.6, 245.9, 10.1, 11.7, 20.0}};
    double ns = (double)w->samples;
    char key[64], esc[512];
    bool first = true;

    printf("{\"bench\":\"storage\",\"quick\":%s,\"devices\":%zu,\"series\":%zu,\"samples\":%zu,"
           "\"interval_s\":10,\"hours\":6,\"seed\":%" PRIu64 ",\"reps\":%d,"
           "\"writes\":%zu,\"batches\":%zu",
           set->quick ? "true" : "false", w->devices, w->devices * FP_WORKLOAD_SERIES, w->samples,
           set->seed, set->reps, res->writes, res->batches);
    print_num("bytes_per_sample", (double)res->copy.file_bytes / ns, 4);
    print_num("file_bytes_per_sample", (double)res->file_bytes / ns, 4);
    print_num("ingest_samples_per_s", ns / res->ingest_wall_s, 0);
    print_num("cpu_s_per_million_samples", res->ingest_cpu_s / ns * 1e6, 4);
    print_num("ingest_wall_s", res->ingest_wall_s, 3);
    print_num("ingest_cpu_s", res->ingest_cpu_s, 3);
    print_num("writes_per_s", (double)res->writes / res->ingest_wall_s, 1);
    print_num("ingest_disk_write_bytes_per_sample", res->ingest_io_bytes / ns, 2);
    print_num("compact_s", res->compact_s, 3);
    for (int q = 0; q < N_QUERIES; q++) {
        (void)snprintf(key, sizeof(key), "q%d_ms", q + 1);
        print_num(key, res->q_ms[q], 3);
    }
    print_num("q1_read_range_only_ms", res->q1_read_ms, 3);
    for (int q = 0; q < N_QUERIES; q++) {
        (void)snprintf(key, sizeof(key), "http_q%d_ms", q + 1);
        print_num(key, res->http_ms[q], 3);
    }
    for (int q = 0; q < N_QUERIES; q++) {
        (void)snprintf(key, sizeof(key), "http_q%d_first_ms", q + 1);
        print_num(key, res->http_first_ms[q], 3);
    }
    printf(",\"http_missing\":[");
    for (int q = 0; q < N_QUERIES; q++) {
        if (res->http_missing[q][0] == '\0')
            continue;
        json_escape(esc, sizeof(esc), res->http_missing[q]);
        printf("%s\"q%d: %s\"", first ? "" : ",", q + 1, esc);
        first = false;
    }
    printf("]");
    printf(",\"q5_result\":%zu,\"q5_expected\":%zu", res->q5_result, w->silent);
    print_sig("q2_result", res->q2_value, 17);
    print_sig("q2_exact", res->q2_exact, 17);
    print_num("sketch_max_rel_error", rel_err(res->q2_value, res->q2_exact), 5);
    print_sig("q1_avg_max_rel_error", res->q1_err, 3);
    print_sig("q3_avg_max_rel_error", res->q3_err, 3);
    print_num("lmdb_append_limit_per_s", ns / res->lmdb_wall_s, 0);
    print_num("lmdb_append_cpu_s_per_million", res->lmdb_cpu_s / ns * 1e6, 4);
    print_num("lmdb_append_bytes_per_sample", (double)res->lmdb_file_bytes / ns, 3);
    print_num("lmdb_append_disk_write_bytes_per_sample", res->lmdb_io_bytes / ns, 2);
    print_num("ingest_vs_lmdb_append", res->lmdb_wall_s / res->ingest_wall_s, 3);
    printf(",\"compacted_bytes_by_db\":{");
    for (size_t i = 0; i < res->copy.n_dbs; i++) {
        json_escape(esc, sizeof(esc), res->copy.dbs[i].name);
        printf("%s\"%s\":%" PRIu64, i ? "," : "", esc, res->copy.dbs[i].bytes);
    }
    printf("}");
    for (size_t i = 0; i < res->copy.n_dbs; i++) {
        if (strcmp(res->copy.dbs[i].name, "raw.*") != 0)
            continue;
        print_num("raw_chunk_entries", (double)res->copy.dbs[i].entries, 0);
        print_num("raw_payload_bytes_per_sample", (double)res->copy.dbs[i].payload_bytes / ns, 4);
        print_num("raw_page_fill", (double)res->copy.dbs[i].payload_bytes /
                                       (double)res->copy.dbs[i].bytes, 3);
    }
    for (int p = 0; p < 3; p++) {
        (void)snprintf(key, sizeof(key), "%s_bytes_per_sample", peers[p]);
        print_num(key, peer_bps[p], 2);
        (void)snprintf(key, sizeof(key), "%s_ingest_samples_per_s", peers[p]);
        print_num(key, peer_ingest[p], 0);
        (void)snprintf(key, sizeof(key), "%s_cpu_s_per_million_samples", peers[p]);
        print_num(key, peer_cpu[p], 2);
        for (int q = 0; q < N_QUERIES; q++) {
            (void)snprintf(key, sizeof(key), "%s_q%d_ms", peers[p], q + 1);
            print_num(key, peer_q[p][q], 1);
        }
    }
    printf(",\"victoriametrics_remote_write_ingest_samples_per_s\":4990000"
           ",\"victoriametrics_remote_write_cpu_s_per_million_samples\":0.37"
           ",\"peers_machine_lmdb_append_100b_per_s\":5160000"
           ",\"note\":\"peers: shared/reference/workload/README.md (2 vCPU, their own data; "
           "query times there are HTTP round trips, compare http_q*_ms). q*_ms: storage API "
           "in-process, a reader per query, no decoded-chunk cache. http_q*_ms: warm, as the "
           "peers were measured (the service keeps decoded chunks); http_q*_first_ms: the "
           "first request, cold. bytes_per_sample: compacted LMDB copy incl. index\"}\n");
}

/* --- main -------------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: storage-bench [--quick] [--devices N] [--reps N] [--seed N] "
                    "[--tmp DIR] [--query-bin PATH] [--keep]\n");
    exit(2);
}

static void mkdir_or_die(const char *path)
{
    if (mkdir(path, 0755) < 0)
        die("mkdir \"%s\": %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    struct settings set = {.devices = 1000, .reps = 7, .seed = 42, .tmp_parent = NULL};
    struct fp_workload w;
    struct results res;
    struct query_ctx qc = {0};
    struct fp_store *st = NULL;
    struct fp_store_options so;
    char data_dir[4200], copy_dir[4200], lmdb_dir[4200], path[4300], err[1024];
    struct stat sb;
    double t0, c0, io0;
    int r;

    memset(&res, 0, sizeof(res));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            set.quick = true;
            set.devices = 50;
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep_tmp = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--devices") == 0) {
            set.devices = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0) {
            set.reps = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0) {
            set.seed = strtoull(argv[++i], NULL, 10);
        } else if (i + 1 < argc && strcmp(argv[i], "--tmp") == 0) {
            set.tmp_parent = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--query-bin") == 0) {
            set.query_bin = argv[++i];
        } else {
            usage();
        }
    }
    if (set.devices < 1 || set.reps < 7 || set.reps > REPS_MAX)
        usage(); /* at least 7: the peers' medians are of 7 */
    if (set.tmp_parent == NULL)
        set.tmp_parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (strchr(set.tmp_parent, '\'') != NULL)
        die("--tmp: a path with a single quote is not supported");

    /* The temp dir lives on the disk being measured; cleanup() removes it on every exit. */
    (void)snprintf(tmp_root, sizeof(tmp_root), "%s/storage-bench.XXXXXX", set.tmp_parent);
    if (mkdtemp(tmp_root) == NULL) {
        tmp_root[0] = '\0';
        die("mkdtemp in \"%s\": %s", set.tmp_parent, strerror(errno));
    }
    atexit(cleanup);
    (void)signal(SIGINT, on_signal);
    (void)signal(SIGTERM, on_signal);
    path_join(data_dir, sizeof(data_dir), tmp_root, "data");
    path_join(copy_dir, sizeof(copy_dir), tmp_root, "compacted");
    path_join(lmdb_dir, sizeof(lmdb_dir), tmp_root, "lmdb-append");
    mkdir_or_die(data_dir);
    mkdir_or_die(copy_dir);
    mkdir_or_die(lmdb_dir);

    /* the workload */
    t0 = mono_s();
    r = fp_workload_init(&w, set.devices, set.seed,
                         FP_WORKLOAD_FIXED_END_MS - FP_WORKLOAD_STEP_MS);
    if (r != 0)
        die("generating the workload: %s", strerror(-r));
    progress("workload: %zu devices x %d series, %zu samples, %zu silent, seed %" PRIu64
             " (%.1f s); data in %s",
             w.devices, FP_WORKLOAD_SERIES, w.samples, w.silent, set.seed, mono_s() - t0,
             tmp_root);

    /* 1. ingest, compact */
    fp_store_options_default(&so);
    /* As the collector writes: each commit synced while the next is written. */
    so.background_sync = true;
    r = fp_store_open(data_dir, 0, &so, &st, err, sizeof(err));
    if (r != 0)
        die("fp_store_open: %s", err);
    ingest(st, &w, &res);
    progress("ingest: %zu writes of %zu batches, %.2f s wall, %.2f s CPU: %.0f samples/s, "
             "%.3f CPU-s per million; %.1f bytes written to disk per sample",
             res.writes, res.batches, res.ingest_wall_s, res.ingest_cpu_s,
             (double)w.samples / res.ingest_wall_s, res.ingest_cpu_s / (double)w.samples * 1e6,
             res.ingest_io_bytes / (double)w.samples);
    t0 = mono_s();
    r = fp_store_compact(st);
    if (r != 0)
        die("fp_store_compact: %s", fp_store_strerror(r));
    res.compact_s = mono_s() - t0;
    fp_store_close(&st);
    path_join(path, sizeof(path), data_dir, "data.mdb");
    if (stat(path, &sb) < 0)
        die("stat \"%s\": %s", path, strerror(errno));
    res.file_bytes = (uint64_t)sb.st_size;

    /* 2. size */
    if (fp_lmdb_limits_compact_copy(data_dir, copy_dir, &res.copy, err, sizeof(err)) != 0)
        die("compacted copy: %s", err);
    progress("size: compact %.2f s; compacted copy %.4f bytes/sample (%" PRIu64
             " bytes), live file %.4f bytes/sample",
             res.compact_s, (double)res.copy.file_bytes / (double)w.samples, res.copy.file_bytes,
             (double)res.file_bytes / (double)w.samples);
    for (size_t i = 0; i < res.copy.n_dbs; i++)
        progress("  %-12s %12" PRIu64 " bytes %10" PRIu64 " entries, %12" PRIu64
                 " bytes of keys and values",
                 res.copy.dbs[i].name, res.copy.dbs[i].bytes, res.copy.dbs[i].entries,
                 res.copy.dbs[i].payload_bytes);

    /* 3. queries, on a read-only store as the query service opens it */
    r = fp_store_open(data_dir, FP_STORE_READONLY, NULL, &st, err, sizeof(err));
    if (r != 0)
        die("fp_store_open (read-only): %s", err);
    qc.store = st;
    qc.w = &w;
    qc.now_ms = w.ts[w.steps - 1] + FP_WORKLOAD_STEP_MS;
    for (qc.q3_device = w.devices / 2; w.len[qc.q3_device] != w.steps;)
        qc.q3_device = (qc.q3_device + 1) % w.devices; /* a device that reports to the end */

    res.q_ms[Q1] = time_query(run_q1, &qc, set.reps);
    res.q1_err = check_q1(&qc);
    qc.q1_groups = qc.agg->n_groups;
    progress("Q1 avg tokens/s by model, 1 h, 1 min step: %.3f ms (%zu groups, %zu points, "
             "max rel error %.2g)",
             res.q_ms[Q1], qc.agg->n_groups, qc.agg->n_points, res.q1_err);
    if (res.q1_err > AVG_REL_TOL)
        die("Q1: answer differs from the workload's averages by %.3g", res.q1_err);
    res.q1_read_ms = time_query(run_q1_read, &qc, set.reps);
    progress("Q1 reading alone (select + fp_store_read_range per series): %.3f ms, %zu points",
             res.q1_read_ms, qc.points);

    res.q_ms[Q2] = time_query(run_q2, &qc, set.reps);
    res.q2_value = qc.q2;
    res.q2_exact = exact_q2(&qc);
    progress("Q2 fleet p95 ttft, 1 h: %.3f ms (%.6g, exact %.6g, rel error %.4f)", res.q_ms[Q2],
             res.q2_value, res.q2_exact, rel_err(res.q2_value, res.q2_exact));
    if (rel_err(res.q2_value, res.q2_exact) > 0.01)
        die("Q2: p95 %.6g is more than 1%% from the exact %.6g", res.q2_value, res.q2_exact);

    res.q_ms[Q3] = time_query(run_q3, &qc, set.reps);
    res.q3_err = check_q3(&qc);
    progress("Q3 %s, 10 series, 6 h, 1 min step: %.3f ms (%zu points, max rel error %.2g)",
             w.dev[qc.q3_device].id, res.q_ms[Q3], qc.agg->n_points, res.q3_err);
    if (res.q3_err > AVG_REL_TOL)
        die("Q3: answer differs from the workload's averages by %.3g", res.q3_err);
    fp_agg_result_destroy(&qc.agg);

    res.q_ms[Q4] = time_query(run_q4, &qc, set.reps);
    check_q4(&qc);
    progress("Q4 top %d devices by latest temperature: %.3f ms (first %s at %.3f)", TOPK,
             res.q_ms[Q4], qc.n_top ? qc.top_dev[0] : "-", qc.n_top ? qc.top_val[0] : NAN);

    res.q_ms[Q5] = time_query(run_q5, &qc, set.reps);
    res.q5_result = qc.silent;
    progress("Q5 devices silent for 5 min: %.3f ms, q5_result %zu", res.q_ms[Q5], qc.silent);
    if (qc.silent != w.silent)
        die("Q5 found %zu silent devices; the workload silenced %zu", qc.silent, w.silent);
    fp_store_close(&st);

    /* 4. HTTP */
    run_http(&set, data_dir, &qc, &res);

    /* 5. the LMDB ceiling */
    t0 = mono_s();
    c0 = cpu_s();
    io0 = io_write_bytes();
    if (fp_lmdb_limits_append(lmdb_dir, w.samples, LMDB_VALUE_BYTES, LMDB_PUTS_PER_TXN,
                              &res.lmdb_file_bytes, err, sizeof(err)) != 0)
        die("lmdb append baseline: %s", err);
    res.lmdb_cpu_s = cpu_s() - c0;
    res.lmdb_wall_s = mono_s() - t0;
    res.lmdb_io_bytes = io_write_bytes() - io0;
    progress("lmdb: %zu appends, %d per durable commit: %.2f s, %.0f puts/s", w.samples,
             LMDB_PUTS_PER_TXN, res.lmdb_wall_s, (double)w.samples / res.lmdb_wall_s);

    print_json(&set, &w, &res);
    fp_workload_fini(&w);
    return 0;
}
