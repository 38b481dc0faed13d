/* The probe's costs to the device it runs on (bench/probe runs this; the last line is JSON).
 *
 *  1. fleetpulse_record, the embedded API's hot path: ns per call, one thread alone and four
 *     threads recording at once into one probe. Each run, every thread makes K calls that all
 *     fit the ring (so the accepted path is timed, not the drop path); between runs this thread
 *     empties the ring as the probe's thread would. ns/call = the thread's wall time / K; the
 *     median over threads and runs is reported (a preempted run on an oversubscribed machine is
 *     an outlier, not the median). The thread CPU time version is reported beside it.
 *  2. Baselines in the same run: the same record pushed into a queue under a pthread mutex (what
 *     the ring replaces), and the two clocks the hot path could read (CLOCK_REALTIME_COARSE, used,
 *     and CLOCK_REALTIME).
 *  3. The fleetpulse-probe daemon (system samplers, no model, one round per second) sending to a
 *     real fleetpulse-collector on a free loopback port with a temporary data directory, for a
 *     window of 60 s (--quick: 10 s): peak RSS (VmHWM of /proc/PID/status; also its anonymous
 *     and file-backed parts and the PSS, which splits shared library pages among the processes
 *     that map them), and CPU time (utime + stime of /proc/PID/stat, all threads) / wall, as a
 *     percentage of one core. The floor: the RSS of `sleep`, started at the same time. The
 *     probe logs at info so that its line at exit gives the batches the collector acknowledged:
 *     fewer than one per two seconds fails the bench.
 *
 * Usage: probe-bench --collector-bin PATH --probe-bin PATH [--quick] [--runs N] [--window S] */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fleetpulse/probe.h>

#include "ring.h"

extern char **environ;

#define MAX_THREADS 4
#define RING_RECORDS FP_RING_MAX_RECORDS
#define MAX_RUNS 1000

/* Targets from the issue, printed beside the figures. */
#define TARGET_RECORD_NS 100
#define TARGET_RSS_MIB 4
#define TARGET_CPU_PERCENT 0.5

static int64_t now_ns(clockid_t id)
{
    struct timespec ts;
    (void)clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n == 0 ? NAN : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- the mutex baseline ------------------------------------------------------------------------- */

/* A bounded FIFO of the same records under one mutex: what a straightforward implementation of
 * fleetpulse_record would be. */
struct mutex_queue {
    pthread_mutex_t lock;
    struct fp_ring_record *buf;
    size_t cap, head, n;
};

static int mutex_push(struct mutex_queue *q, const struct fleetpulse_request *r)
{
    struct timespec now;
    struct fp_ring_record *rec;
    size_t len;

    /* The same validation and copy as fleetpulse_record, so only the queue differs. */
    if (r == NULL || r->size < sizeof(*r) || !isfinite(r->ttft_s) || !isfinite(r->total_s))
        return -EINVAL;
    (void)clock_gettime(CLOCK_REALTIME_COARSE, &now);
    (void)pthread_mutex_lock(&q->lock);
    if (q->n == q->cap) {
        (void)pthread_mutex_unlock(&q->lock);
        return -ENOBUFS;
    }
    rec = &q->buf[(q->head + q->n++) % q->cap];
    rec->ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    rec->ttft_s = r->ttft_s;
    rec->total_s = r->total_s;
    rec->prompt_tokens = r->prompt_tokens;
    rec->generated_tokens = r->generated_tokens;
    rec->outcome = (int)r->outcome;
    len = strnlen(r->model, FP_RING_TEXT_MAX);
    memcpy(rec->model, r->model, len);
    rec->model[len] = '\0';
    rec->reason[0] = '\0';
    (void)pthread_mutex_unlock(&q->lock);
    return 0;
}

/* --- timed runs --------------------------------------------------------------------------------- */

enum op { OP_RECORD, OP_MUTEX };

struct bench {
    enum op op;
    struct fleetpulse_probe *probe;
    struct mutex_queue *queue;
    int threads;
    int runs;
    size_t calls; /* per thread per run */
    atomic_int go;   /* run number + 1 that may start */
    atomic_int done; /* threads finished with the current run */
    double wall_ns[MAX_THREADS * MAX_RUNS];
    double cpu_ns[MAX_THREADS * MAX_RUNS];
    int64_t start_ns[MAX_THREADS * MAX_RUNS], end_ns[MAX_THREADS * MAX_RUNS];
    atomic_uint_least64_t refused;
};

struct worker {
    struct bench *b;
    int id;
    pthread_t thread;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    /* Distinct models per thread, as a server with several models would record. */
    static const char *const models[] = {"qwen2.5-1.5b-instruct-q4_k_m", "llama-3.2-3b-q4_0",
                                         "phi-3.5-mini-q8_0", "gemma-2-2b-it-q4_k_m"};
    struct fleetpulse_request r = {
        .size = sizeof(r),
        .model = models[w->id % 4],
        .prompt_tokens = 412,
        .generated_tokens = 128,
        .ttft_s = 0.21,
        .total_s = 3.9,
        .outcome = FLEETPULSE_OUTCOME_OK,
    };

    for (int run = 0; run < b->runs; run++) {
        int64_t w0, c0;
        uint64_t refused = 0;

        while (atomic_load_explicit(&b->go, memory_order_acquire) <= run)
            sched_yield();
        w0 = now_ns(CLOCK_MONOTONIC);
        c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        if (b->op == OP_RECORD) {
            for (size_t i = 0; i < b->calls; i++)
                refused += fleetpulse_record(b->probe, &r) != 0;
        } else {
            for (size_t i = 0; i < b->calls; i++)
                refused += mutex_push(b->queue, &r) != 0;
        }
        b->cpu_ns[run * b->threads + w->id] =
            (double)(now_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)b->calls;
        b->start_ns[run * b->threads + w->id] = w0;
        b->end_ns[run * b->threads + w->id] = now_ns(CLOCK_MONOTONIC);
        b->wall_ns[run * b->threads + w->id] =
            (double)(b->end_ns[run * b->threads + w->id] - w0) / (double)b->calls;
        atomic_fetch_add(&b->refused, refused);
        atomic_fetch_add_explicit(&b->done, 1, memory_order_release);
    }
    return NULL;
}

/* Empties the ring or queue between runs, as the probe's thread would. */
static void drain(struct bench *b)
{
    if (b->op == OP_RECORD) {
        struct fp_ring_record rec;
        while (fp_ring_pop(fp_probe_ring(b->probe), &rec))
            ;
    } else {
        (void)pthread_mutex_lock(&b->queue->lock);
        b->queue->head = (b->queue->head + b->queue->n) % b->queue->cap;
        b->queue->n = 0;
        (void)pthread_mutex_unlock(&b->queue->lock);
    }
}

/* How much the threads' runs overlapped: of the time at least one thread was recording, the
 * share during which two or more were. 0 means the "contended" figure is really uncontended
 * (e.g. more threads than free cores, and runs shorter than a time slice). */
static double overlap(const struct bench *b)
{
    int64_t any = 0, two = 0;
    for (int run = 0; run < b->runs; run++) {
        const int64_t *s = &b->start_ns[run * b->threads], *e = &b->end_ns[run * b->threads];
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (int t = 0; t < b->threads; t++) {
            lo = s[t] < lo ? s[t] : lo;
            hi = e[t] > hi ? e[t] : hi;
        }
        any += hi - lo;
        /* Time with >= 2 active: sweep the (few) endpoints in order. */
        for (int i = 0; i < 2 * b->threads; i++) {
            int64_t a = i < b->threads ? s[i] : e[i - b->threads], next = INT64_MAX;
            int active = 0;
            for (int j = 0; j < 2 * b->threads; j++) {
                int64_t c = j < b->threads ? s[j] : e[j - b->threads];
                if (c > a && c < next)
                    next = c;
            }
            if (next == INT64_MAX)
                continue;
            for (int t = 0; t < b->threads; t++)
                active += s[t] <= a && e[t] >= next;
            /* Each distinct segment once: only from the first endpoint at a given time. */
            for (int j = 0; j < i; j++)
                if ((j < b->threads ? s[j] : e[j - b->threads]) == a)
                    active = 0;
            if (active >= 2)
                two += next - a;
        }
    }
    return any > 0 ? (double)two / (double)any : 0;
}

/* Runs the benchmark; sets the medians of wall and CPU ns per call. Returns 0, or -1 when a
 * call was refused (the ring must never be full here, or the wrong path was timed). */
static int run_bench(struct bench *b, double *ret_wall, double *ret_cpu)
{
    struct worker w[MAX_THREADS];
    size_t n = (size_t)b->threads * (size_t)b->runs;

    atomic_init(&b->go, 0);
    atomic_init(&b->done, 0);
    atomic_init(&b->refused, 0);
    for (int t = 0; t < b->threads; t++) {
        w[t] = (struct worker){.b = b, .id = t};
        if (pthread_create(&w[t].thread, NULL, work, &w[t]) != 0) {
            fprintf(stderr, "probe-bench: cannot create a thread\n");
            exit(1);
        }
    }
    for (int run = 0; run < b->runs; run++) {
        drain(b);
        atomic_store_explicit(&b->done, 0, memory_order_relaxed);
        atomic_store_explicit(&b->go, run + 1, memory_order_release);
        while (atomic_load_explicit(&b->done, memory_order_acquire) < b->threads)
            sched_yield();
    }
    for (int t = 0; t < b->threads; t++)
        (void)pthread_join(w[t].thread, NULL);
    drain(b);
    *ret_wall = median(b->wall_ns, n);
    *ret_cpu = median(b->cpu_ns, n);
    return atomic_load(&b->refused) == 0 ? 0 : -1;
}

static double clock_cost_ns(clockid_t id)
{
    enum { N = 2000000 };
    struct timespec ts;
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < N; i++)
        (void)clock_gettime(id, &ts);
    return (double)(now_ns(CLOCK_MONOTONIC) - t0) / N;
}

/* --- the daemon --------------------------------------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    (void)close(fd);
    return port;
}

static pid_t spawn(const char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int r;

    (void)posix_spawn_file_actions_init(&fa);
    (void)posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path,
                                           O_WRONLY | O_CREAT | O_APPEND, 0644);
    (void)posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    /* posix_spawn's argv is char *const[] for historical reasons; it does not write to it. */
    r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    (void)posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        fprintf(stderr, "probe-bench: cannot run %s: %s\n", argv[0], strerror(r));
        return -1;
    }
    return pid;
}

/* A "Name:   N kB" line of /proc/PID/status (or smaps_rollup) in KiB; -1 when absent. */
static long proc_kib(pid_t pid, const char *file, const char *name)
{
    char path[64], line[256];
    size_t len = strlen(name);
    long v = -1;
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* utime + stime of the whole process (all its threads), in clock ticks; -1 when gone. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long utime, stime;
    size_t n;
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. Then
     * state is field 3; utime and stime are fields 14 and 15. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    (void)kill(pid, SIGTERM);
    (void)waitpid(pid, NULL, 0);
}

struct daemon_figures {
    double rss_mib, rss_anon_mib, rss_file_mib, pss_mib, cpu_percent, floor_rss_mib;
    double window_s;
    long batches_acked; /**< what the probe said at exit: proof it was talking to the collector */
    bool ok;
};

/* The acknowledged batches in the probe's last line ("stopped after N rounds: M batches
 * acknowledged, ..."), or -1 when the log has none. */
static long acked_from_log(const char *log_path)
{
    char line[512];
    long acked = -1;
    FILE *f = fopen(log_path, "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "probe: stopped after ");
        long rounds, n;

        if (p != NULL &&
            sscanf(p, "probe: stopped after %ld rounds: %ld batches", &rounds, &n) == 2)
            acked = n;
    }
    (void)fclose(f);
    return acked;
}

static struct daemon_figures measure_daemon(const char *collector_bin, const char *probe_bin,
                                            int window_s)
{
    struct daemon_figures d = {.ok = false};
    char dir[] = "/tmp/fp-probe-bench-XXXXXX", endpoint[64], log_path[128], sleep_s[16];
    pid_t collector = -1, probe = -1, floor_pid = -1;
    long long t0_ticks, t1_ticks;
    int64_t t0, t1;
    int port = free_port();
    long v, peak_rss = 0;

    if (port < 0 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "probe-bench: no free port or temporary directory\n");
        return d;
    }
    (void)snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", port);
    (void)snprintf(log_path, sizeof(log_path), "%s/log", dir);
    (void)snprintf(sleep_s, sizeof(sleep_s), "%d", window_s + 30);
    {
        char data[128];
        (void)snprintf(data, sizeof(data), "%s/data", dir);
        if (mkdir(data, 0700) < 0)
            goto out;
        const char *const cargv[] = {collector_bin, "--listen", endpoint, "--data", data,
                                     "--log-level", "warn", NULL};
        collector = spawn(cargv, log_path);
    }
    if (collector < 0)
        goto out;
    (void)usleep(300 * 1000);
    {
        /* info: the probe's one line at exit says how many batches the collector acknowledged
         * (a probe that never reached it would look cheaper than it is). */
        const char *const pargv[] = {probe_bin, "--collector", endpoint, "--interval", "1",
                                     "--device-id", "bench-probe", "--log-level", "info", NULL};
        const char *const sargv[] = {"/bin/sleep", sleep_s, NULL};
        probe = spawn(pargv, log_path);
        floor_pid = spawn(sargv, "/dev/null");
    }
    if (probe < 0 || floor_pid < 0)
        goto out;
    t0 = now_ns(CLOCK_MONOTONIC);
    t0_ticks = cpu_ticks(probe);
    for (int s = 0; s < window_s; s++) {
        (void)sleep(1);
        v = proc_kib(probe, "status", "VmRSS");
        if (v < 0) {
            fprintf(stderr, "probe-bench: the probe exited; its log:\n");
            goto out;
        }
        if (v > peak_rss)
            peak_rss = v;
    }
    t1_ticks = cpu_ticks(probe);
    t1 = now_ns(CLOCK_MONOTONIC);
    d.window_s = (double)(t1 - t0) / 1e9;
    v = proc_kib(probe, "status", "VmHWM");
    d.rss_mib = (double)(v > peak_rss ? v : peak_rss) / 1024;
    d.rss_anon_mib = (double)proc_kib(probe, "status", "RssAnon") / 1024;
    d.rss_file_mib = (double)proc_kib(probe, "status", "RssFile") / 1024;
    d.pss_mib = (double)proc_kib(probe, "smaps_rollup", "Pss") / 1024;
    d.floor_rss_mib = (double)proc_kib(floor_pid, "status", "VmHWM") / 1024;
    d.cpu_percent = t0_ticks < 0 || t1_ticks < 0
                        ? NAN
                        : 100.0 * (double)(t1_ticks - t0_ticks) / (double)sysconf(_SC_CLK_TCK) /
                              d.window_s;
    stop(probe);
    probe = -1;
    d.batches_acked = acked_from_log(log_path);
    if (d.batches_acked < window_s / 2) {
        fprintf(stderr, "probe-bench: the collector acknowledged %ld batches in %d s; the log:\n",
                d.batches_acked, window_s);
        goto out;
    }
    d.ok = true;
out:
    stop(probe);
    stop(collector);
    if (floor_pid > 0) {
        (void)kill(floor_pid, SIGKILL);
        (void)waitpid(floor_pid, NULL, 0);
    }
    if (!d.ok) {
        char cmd[160];
        (void)snprintf(cmd, sizeof(cmd), "cat %s >&2", log_path);
        (void)!system(cmd);
    }
    (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return d;
}

/* --- main --------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"collector-bin", required_argument, NULL, 'c'},
        {"probe-bin", required_argument, NULL, 'p'},
        {"quick", no_argument, NULL, 'q'},
        {"runs", required_argument, NULL, 'r'},
        {"window", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    const char *collector_bin = NULL, *probe_bin = NULL;
    int runs = 200, window_s = 60, opt;
    bool quick = false;
    static struct bench b; /* big arrays: not on the stack */
    struct mutex_queue q = {.lock = PTHREAD_MUTEX_INITIALIZER, .cap = RING_RECORDS};
    struct fleetpulse_probe *probe = NULL;
    double single_wall, single_cpu, multi_wall, multi_cpu, mutex_wall, mutex_cpu;
    double mutex1_wall, mutex1_cpu, coarse_ns, realtime_ns, multi_overlap, mutex_overlap;
    struct daemon_figures d;
    char ring[16];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            collector_bin = optarg;
            break;
        case 'p':
            probe_bin = optarg;
            break;
        case 'q':
            quick = true;
            runs = 30;
            window_s = 10;
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'w':
            window_s = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: probe-bench --collector-bin PATH --probe-bin PATH [--quick] "
                            "[--runs N] [--window S]\n");
            return 2;
        }
    }
    if (collector_bin == NULL || probe_bin == NULL || runs < 1 || runs > MAX_RUNS ||
        window_s < 1) {
        fprintf(stderr, "probe-bench: --collector-bin and --probe-bin are required; runs 1-%d\n",
                MAX_RUNS);
        return 2;
    }

    /* The probe is never started: fleetpulse_record's path is the same, and no agent thread
     * competes for the CPU or drains behind our back. */
    (void)snprintf(ring, sizeof(ring), "%u", RING_RECORDS);
    if (fleetpulse_probe_new(&probe) != 0 || fleetpulse_probe_set(probe, "ring_records", ring) != 0) {
        fprintf(stderr, "probe-bench: cannot create the probe\n");
        return 1;
    }
    q.buf = calloc(RING_RECORDS, sizeof(*q.buf));
    if (q.buf == NULL)
        return 1;

    coarse_ns = clock_cost_ns(CLOCK_REALTIME_COARSE);
    realtime_ns = clock_cost_ns(CLOCK_REALTIME);
    printf("clock_gettime: REALTIME_COARSE %.1f ns, REALTIME %.1f ns\n", coarse_ns, realtime_ns);

    b = (struct bench){.op = OP_RECORD, .probe = probe, .threads = 1, .runs = runs,
                       .calls = RING_RECORDS};
    if (run_bench(&b, &single_wall, &single_cpu) < 0)
        fprintf(stderr, "probe-bench: single: calls refused\n");
    printf("fleetpulse_record, 1 thread:  %.1f ns/call (thread CPU %.1f)\n", single_wall,
           single_cpu);
    b = (struct bench){.op = OP_RECORD, .probe = probe, .threads = MAX_THREADS, .runs = runs,
                       .calls = RING_RECORDS / MAX_THREADS};
    if (run_bench(&b, &multi_wall, &multi_cpu) < 0)
        fprintf(stderr, "probe-bench: 4 threads: calls refused\n");
    multi_overlap = overlap(&b);
    printf("fleetpulse_record, %d threads: %.1f ns/call (thread CPU %.1f), threads overlapped "
           "%.0f%% of the time\n",
           MAX_THREADS, multi_wall, multi_cpu, 100 * multi_overlap);
    b = (struct bench){.op = OP_MUTEX, .queue = &q, .threads = 1, .runs = runs,
                       .calls = RING_RECORDS};
    (void)run_bench(&b, &mutex1_wall, &mutex1_cpu);
    b = (struct bench){.op = OP_MUTEX, .queue = &q, .threads = MAX_THREADS, .runs = runs,
                       .calls = RING_RECORDS / MAX_THREADS};
    (void)run_bench(&b, &mutex_wall, &mutex_cpu);
    mutex_overlap = overlap(&b);
    printf("mutex queue push, 1 thread: %.1f ns/call; %d threads: %.1f ns/call (thread CPU "
           "%.1f), threads overlapped %.0f%% of the time\n",
           mutex1_wall, MAX_THREADS, mutex_wall, mutex_cpu, 100 * mutex_overlap);
    fleetpulse_probe_destroy(&probe);
    free(q.buf);

    printf("daemon: fleetpulse-probe, --interval 1, no model, %d s window...\n", window_s);
    fflush(stdout);
    d = measure_daemon(collector_bin, probe_bin, window_s);
    if (!d.ok)
        return 1;
    printf("daemon: peak RSS %.2f MiB (anon %.2f, file %.2f; PSS %.2f), CPU %.3f%% of one core; "
           "`sleep` RSS %.2f MiB; %ld batches acknowledged\n",
           d.rss_mib, d.rss_anon_mib, d.rss_file_mib, d.pss_mib, d.cpu_percent, d.floor_rss_mib,
           d.batches_acked);

    printf("{\"bench\": \"probe\", \"quick\": %s, \"cpus\": %ld, \"runs\": %d, \"threads\": %d, "
           "\"record_ns_median\": %.1f, \"record_ns_single\": %.1f, "
           "\"record_ns_median_thread_cpu\": %.1f, \"record_threads_overlap\": %.2f, "
           "\"mutex_queue_ns_median\": %.1f, \"mutex_threads_overlap\": %.2f, "
           "\"mutex_queue_ns_single\": %.1f, \"clock_realtime_coarse_ns\": %.1f, "
           "\"clock_realtime_ns\": %.1f, \"probe_rss_mib\": %.2f, \"probe_rss_anon_mib\": %.2f, "
           "\"probe_rss_file_mib\": %.2f, \"probe_pss_mib\": %.2f, \"probe_cpu_percent\": %.3f, "
           "\"sleep_rss_mib\": %.2f, \"probe_batches_acked\": %ld, \"window_s\": %.1f, "
           "\"target_record_ns\": %d, "
           "\"target_rss_mib\": %d, \"target_cpu_percent\": %.1f}\n",
           quick ? "true" : "false", ncpu, runs, MAX_THREADS, multi_wall, single_wall, multi_cpu,
           multi_overlap, mutex_wall, mutex_overlap, mutex1_wall, coarse_ns, realtime_ns, d.rss_mib, d.rss_anon_mib,
           d.rss_file_mib, d.pss_mib, d.cpu_percent, d.floor_rss_mib, d.batches_acked,
           d.window_s, TARGET_RECORD_NS, TARGET_RSS_MIB, TARGET_CPU_PERCENT);
    return 0;
}
