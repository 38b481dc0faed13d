/* Readers in several threads while a writer in another thread creates new day partitions: the
 * query service reads from a refresh thread, alert rounds and HTTP handlers at once. Every
 * reader must see a consistent, growing snapshot and no error; under ThreadSanitizer (or
 * helgrind) this is the test that shows the partition handles are shared safely, and the
 * decoded-chunk cache, kept small so that the readers keep replacing each other's entries. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "test.h"

#define DAYS 12
#define PER_DAY 24 /* one sample an hour */
#define READERS 3
#define DAY_MS (INT64_C(86400) * 1000)
#define T0 (INT64_C(1732406400) * 1000) /* 2024-11-24 00:00 UTC */

static struct fp_store *store;
static atomic_int writer_done, errors;
static atomic_long reads;
static char dir[64];

static void *writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < DAYS * PER_DAY; i++) {
        int64_t ts = T0 + (int64_t)i * 3600 * 1000;
        double v = i;
        struct fp_series_in in = {"up", FP_SERIES_GAUGE, NULL, 0, &ts, &v, 1};
        struct fp_write_batch b = {.device = "w", .epoch = 1, .seq = (uint64_t)i + 1,
                                   .received_ms = ts, .series = &in, .n_series = 1};
        struct fp_write_result res;
        if (fp_store_write(store, &b, 1, &res) != 0 || res.samples_written != 1)
            atomic_fetch_add(&errors, 1);
    }
    atomic_store(&writer_done, 1);
    return NULL;
}

static int count_point(void *ud, int64_t ts, double v)
{
    long *n = ud;
    (void)ts;
    (void)v;
    (*n)++;
    return 0;
}

static void *reader(void *arg)
{
    long last = 0;
    (void)arg;
    for (;;) {
        int done = atomic_load(&writer_done);
        struct fp_store_reader *r = NULL;
        const struct fp_matcher m = {"__name__", "up", FP_MATCH_EQ};
        uint64_t *ids = NULL;
        size_t n_ids = 0;
        long n = 0;

        if (fp_store_reader_open(store, &r) != 0) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        if (fp_store_select(r, &m, 1, &ids, &n_ids) != 0)
            atomic_fetch_add(&errors, 1);
        if (n_ids == 1 && fp_store_read_range(r, ids[0], 0, INT64_MAX, count_point, &n) != 0)
            atomic_fetch_add(&errors, 1);
        free(ids);
        fp_store_reader_close(&r);
        /* Snapshots only grow: a later reader never sees fewer samples. */
        if (n < last)
            atomic_fetch_add(&errors, 1);
        last = n;
        atomic_fetch_add(&reads, 1);
        if (done)
            break;
    }
    return (void *)last;
}

int main(void)
{
    pthread_t w, r[READERS];
    char err[256], cmd[128];
    void *seen;

    (void)snprintf(dir, sizeof(dir), "/tmp/fp-test-threads-XXXXXX");
    fp_assert(mkdtemp(dir) != NULL);
    {
        struct fp_store_options o;
        fp_store_options_default(&o);
        o.decoded_cache_chunks = 4;
        fp_assert(fp_store_open(dir, 0, &o, &store, err, sizeof(err)) == 0);
    }
    fp_assert(pthread_create(&w, NULL, writer, NULL) == 0);
    for (int i = 0; i < READERS; i++)
        fp_assert(pthread_create(&r[i], NULL, reader, NULL) == 0);
    pthread_join(w, NULL);
    for (int i = 0; i < READERS; i++) {
        pthread_join(r[i], &seen);
        /* The last read began after the writer finished: it sees every sample. */
        check_int((long)seen, DAYS * PER_DAY);
    }
    check_int(atomic_load(&errors), 0);
    check(atomic_load(&reads) >= READERS);
    fp_store_close(&store);
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    check_int(system(cmd), 0);
    fp_test_end();
}
