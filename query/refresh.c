/* The refresh thread (see refresh.h).
 *
 * How: tasks carry everything a computation needs by value (the job, a snapshot of the
 * environment with the firing devices' ids), so the thread touches nothing of the server but the
 * shared store. It takes queued tasks one at a time under a mutex, computes, moves the task to a
 * done list and writes a byte to a socketpair; the event loop's callback on the other end moves
 * the answers into the cache. libevent is not built thread-safe here, so the thread never calls
 * into it.
 *
 * Why a snapshot of alerts: the alert engine's hook belongs to the server's thread. The snapshot
 * covers the devices the previous computation saw, so a device that appeared since then is not
 * degraded until the next refresh: one refresh interval late, as the whole answer is.
 *
 * Rejected: a thread per computation (unbounded under load); computing on the event loop after
 * the reply (it still stalls every request behind it for the computation's length). */
#include "refresh.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "query-internal.h"
#include "store.h"

/* Tasks queued or done but not collected, at most: one per cache slot. */
#define TASKS_MAX FP_QUERY_CACHE_SLOTS

struct task {
    char *key;
    struct fp_fleet_job job;
    struct fp_fleet_env env; /**< srv NULL; owns firing */
    int status;              /**< HTTP status of the computation */
    char *body;
    size_t len;
    char **ids;
    size_t n_ids;
};

struct fp_refresh {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct task *queued[TASKS_MAX]; /**< under lock */
    size_t n_queued;
    struct task *running;         /**< under lock */
    struct task *done[TASKS_MAX]; /**< under lock */
    size_t n_done;
    bool stop;  /**< under lock */
    int fds[2]; /**< [1] written by the thread, [0] read by the loop */
    struct event *ev;
};

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* The job's strings, owned by the task. */
static void job_strings_free(struct fp_fleet_job *j)
{
    free((char *)j->metric);
    free((char *)j->by);
    free((char *)j->a);
    free((char *)j->b);
    free((char *)j->strata);
    for (size_t i = 0; i < j->n_match; i++)
        free((char *)j->match[i]);
}

/* Copies job's strings into dst (already a shallow copy). Returns 0 or -ENOMEM (dst's strings
 * then freeable). */
static int job_strings_copy(struct fp_fleet_job *dst)
{
    const char **fields[] = {&dst->metric, &dst->by, &dst->a, &dst->b, &dst->strata};
    int r = 0;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i] == NULL)
            continue;
        *fields[i] = strdup(*fields[i]);
        if (*fields[i] == NULL)
            r = -ENOMEM;
    }
    for (size_t i = 0; i < dst->n_match; i++) {
        dst->match[i] = strdup(dst->match[i]);
        if (dst->match[i] == NULL)
            r = -ENOMEM;
    }
    return r;
}

static void task_free(struct task *t)
{
    if (t == NULL)
        return;
    job_strings_free(&t->job);
    free(t->key);
    free(t->body);
    free_ids(t->ids, t->n_ids);
    free_ids(t->env.firing, t->env.n_firing);
    free(t);
}

static void *refresh_main(void *arg)
{
    struct fp_refresh *rf = arg;
    char err[256];

    pthread_mutex_lock(&rf->lock);
    for (;;) {
        struct task *t;

        while (!rf->stop && rf->n_queued == 0)
            pthread_cond_wait(&rf->wake, &rf->lock);
        if (rf->stop)
            break;
        t = rf->queued[0];
        memmove(rf->queued, rf->queued + 1, --rf->n_queued * sizeof(*rf->queued));
        rf->running = t;
        pthread_mutex_unlock(&rf->lock);

        t->status = fp_fleet_render(&t->env, &t->job, &t->body, &t->len, &t->ids, &t->n_ids, err,
                                    sizeof(err));

        pthread_mutex_lock(&rf->lock);
        rf->running = NULL;
        rf->done[rf->n_done++] = t; /* room: queued + running + done <= TASKS_MAX */
        /* A full socket buffer already holds a wake-up: nothing is lost by not writing. */
        (void)!write(rf->fds[1], "x", 1);
    }
    pthread_mutex_unlock(&rf->lock);
    return NULL;
}

/* The loop's end: answers into the cache, failures out of it (the next request then computes
 * and reports the error itself). */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct fp_query_server *srv = arg;
    struct fp_refresh *rf = srv->refresh;
    struct task *done[TASKS_MAX];
    size_t n;
    char buf[64];

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&rf->lock);
    n = rf->n_done;
    memcpy(done, rf->done, n * sizeof(*done));
    rf->n_done = 0;
    pthread_mutex_unlock(&rf->lock);

    for (size_t i = 0; i < n; i++) {
        struct task *t = done[i];
        if (t->status == FP_HTTP_OK) {
            fp_query_cache_put(srv, t->key, t->body, t->len);
            if (t->ids != NULL) {
                fp_refresh_known_ids(srv, t->ids, t->n_ids);
                t->ids = NULL;
                t->n_ids = 0;
            }
        } else {
            fp_query_cache_drop(srv, t->key);
        }
        task_free(t);
    }
}

static int refresh_start(struct fp_query_server *srv)
{
    struct fp_refresh *rf = calloc(1, sizeof(*rf));

    if (rf == NULL)
        return -ENOMEM;
    rf->fds[0] = rf->fds[1] = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, rf->fds) < 0)
        goto fail;
    rf->ev = event_new(srv->base, rf->fds[0], EV_READ | EV_PERSIST, on_done, srv);
    if (rf->ev == NULL || event_add(rf->ev, NULL) < 0)
        goto fail;
    if (pthread_mutex_init(&rf->lock, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&rf->wake, NULL) != 0) {
        pthread_mutex_destroy(&rf->lock);
        goto fail;
    }
    if (pthread_create(&rf->thread, NULL, refresh_main, rf) != 0) {
        pthread_cond_destroy(&rf->wake);
        pthread_mutex_destroy(&rf->lock);
        goto fail;
    }
    srv->refresh = rf;
    return 0;

fail:
    if (rf->ev != NULL)
        event_free(rf->ev);
    if (rf->fds[0] >= 0)
        (void)close(rf->fds[0]);
    if (rf->fds[1] >= 0)
        (void)close(rf->fds[1]);
    free(rf);
    return -ENOMEM;
}

/* Whether a task for key is queued, running or done but not collected. Under lock. */
static bool pending(const struct fp_refresh *rf, const char *key)
{
    if (rf->running != NULL && strcmp(rf->running->key, key) == 0)
        return true;
    for (size_t i = 0; i < rf->n_queued; i++)
        if (strcmp(rf->queued[i]->key, key) == 0)
            return true;
    for (size_t i = 0; i < rf->n_done; i++)
        if (strcmp(rf->done[i]->key, key) == 0)
            return true;
    return false;
}

void fp_refresh_schedule(struct fp_query_server *srv, const char *key,
                         const struct fp_fleet_job *job)
{
    struct fp_refresh *rf;
    struct task *t;
    bool skip;

    /* Failing to start or to allocate only means the stale answer stays until it is too old
     * and a request computes it. */
    if (srv->refresh == NULL && refresh_start(srv) < 0)
        return;
    rf = srv->refresh;
    pthread_mutex_lock(&rf->lock);
    skip = pending(rf, key) || rf->n_queued + rf->n_done + (rf->running != NULL) >= TASKS_MAX;
    pthread_mutex_unlock(&rf->lock);
    if (skip)
        return;

    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return;
    t->key = strdup(key);
    t->job = *job;
    if (job_strings_copy(&t->job) < 0) {
        task_free(t);
        return;
    }
    fp_fleet_env_sync(srv, &t->env);
    t->env.srv = NULL;
    t->env.firing = malloc((srv->n_known_ids ? srv->n_known_ids : 1) * sizeof(char *));
    if (t->key == NULL || t->env.firing == NULL) {
        task_free(t);
        return;
    }
    /* known_ids are sorted, so the snapshot is too. */
    for (size_t i = 0; i < srv->n_known_ids; i++) {
        if (!fp_query_device_firing(srv, srv->known_ids[i]))
            continue;
        t->env.firing[t->env.n_firing] = strdup(srv->known_ids[i]);
        if (t->env.firing[t->env.n_firing] == NULL) {
            task_free(t);
            return;
        }
        t->env.n_firing++;
    }

    pthread_mutex_lock(&rf->lock);
    rf->queued[rf->n_queued++] = t;
    pthread_cond_signal(&rf->wake);
    pthread_mutex_unlock(&rf->lock);
}

void fp_refresh_known_ids(struct fp_query_server *srv, char **ids, size_t n)
{
    free_ids(srv->known_ids, srv->n_known_ids);
    srv->known_ids = ids;
    srv->n_known_ids = n;
}

void fp_refresh_stop(struct fp_query_server *srv)
{
    struct fp_refresh *rf = srv->refresh;

    if (rf != NULL) {
        pthread_mutex_lock(&rf->lock);
        rf->stop = true;
        pthread_cond_signal(&rf->wake);
        pthread_mutex_unlock(&rf->lock);
        (void)pthread_join(rf->thread, NULL);
        for (size_t i = 0; i < rf->n_queued; i++)
            task_free(rf->queued[i]);
        for (size_t i = 0; i < rf->n_done; i++)
            task_free(rf->done[i]);
        event_free(rf->ev);
        (void)close(rf->fds[0]);
        (void)close(rf->fds[1]);
        pthread_cond_destroy(&rf->wake);
        pthread_mutex_destroy(&rf->lock);
        free(rf);
        srv->refresh = NULL;
    }
    fp_refresh_known_ids(srv, NULL, 0);
}
