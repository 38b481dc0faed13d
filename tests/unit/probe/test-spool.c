/* The durable spool (probe/spool.h), on real files in a temporary directory:
 *
 *  - append / ack (out of order) / reopen: every unacknowledged record comes back, in seq order,
 *    with identical bytes; fully acked segments are deleted, so acked records come back only from
 *    a segment that still holds pending ones (documented: the collector's dedup absorbs them).
 *  - The epoch persists across reopen and is new (and different) for a new directory;
 *    fp_spool_next_seq survives even when every segment was acked away.
 *  - The byte bound: the oldest records go first, fp_spool_bytes never exceeds the bound, the
 *    dropped-samples total is exact and survives reopen; a record too big alone is -E2BIG.
 *  - A second open of the same directory is -EBUSY, and works again after close.
 *  - Damage: the last record cut at every possible length, single bytes flipped at random
 *    (seeded) and several bytes at once, a damaged state file, garbage and look-alike files, an
 *    empty segment, a missing state file: open succeeds, reports what it discarded and keeps
 *    every record before the damage.
 *  - Crash durability: a child appends in a loop and reports each seq whose append returned; it is
 *    SIGKILLed at random points; every reported seq is back after reopen, bytes intact. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"

#define SEG_NAME "seg-0000000000000001"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64: seeded, so a failure replays. */
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The payload of record seq: its bytes depend on seq, so a misplaced record is caught. */
static void fill_payload(uint8_t *buf, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

static size_t payload_len(uint64_t seq)
{
    return (size_t)((seq * 2654435761u) % 700) + (seq % 5 == 0 ? 0 : 1);
}

static uint64_t payload_samples(uint64_t seq)
{
    return seq * 3 + 1;
}

static int append_seq(struct fp_spool *s, uint64_t seq, size_t len)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);
    int r;

    fp_assert(buf != NULL);
    fill_payload(buf, len, seq);
    r = fp_spool_append(s, seq, len > 0 ? buf : NULL, len, payload_samples(seq));
    free(buf);
    return r;
}

/* Checks pending record index against what append_seq wrote for it. Returns its seq. */
static uint64_t check_record(struct fp_spool *s, size_t index, size_t expect_len)
{
    uint64_t seq = 0, samples = 0;
    uint8_t *buf = NULL, *want;
    size_t len = 0;
    int r = fp_spool_read(s, index, &seq, &buf, &len, &samples);

    check_int(r, 0);
    if (r != 0)
        return seq;
    if (expect_len == SIZE_MAX)
        expect_len = payload_len(seq);
    check_int(len, expect_len);
    check_int(samples, payload_samples(seq));
    want = malloc(len > 0 ? len : 1);
    fp_assert(want != NULL);
    fill_payload(want, len, seq);
    check(len == expect_len && memcmp(buf, want, len) == 0);
    free(want);
    free(buf);
    return seq;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *d;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    fp_assert(asprintf(&d, "%s/test-spool-XXXXXX", base) > 0);
    fp_assert(mkdtemp(d) != NULL);
    return d;
}

/* The spool lives one level below the temporary directory: open creates it. */
static char *spool_path(const char *tmp)
{
    char *p;
    fp_assert(asprintf(&p, "%s/spool", tmp) > 0);
    return p;
}

static struct fp_spool *open_ok(const char *dir, uint64_t max_bytes, struct fp_spool_report *rep)
{
    struct fp_spool *s = NULL;
    char err[256] = "";
    int r = fp_spool_open(dir, max_bytes, &s, rep, err, sizeof(err));

    if (r != 0)
        FP_TEST_FAIL("fp_spool_open(%s): %d %s", dir, r, err);
    fp_assert(r == 0 && s != NULL);
    return s;
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    fp_assert(d != NULL);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 && strlen(de->d_name) == 20)
            n++;
    closedir(d);
    return n;
}

static uint8_t *read_file(const char *dir, const char *name, size_t *ret_len)
{
    char *p;
    FILE *f;
    uint8_t *buf;
    long n;

    fp_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    f = fopen(p, "rb");
    fp_assert(f != NULL);
    fp_assert(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0);
    buf = malloc((size_t)n + 1);
    fp_assert(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    free(p);
    *ret_len = (size_t)n;
    return buf;
}

static void write_file(const char *dir, const char *name, const void *buf, size_t len)
{
    char *p;
    FILE *f;

    fp_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    f = fopen(p, "wb");
    fp_assert(f != NULL);
    fp_assert(len == 0 || fwrite(buf, 1, len, f) == len);
    fp_assert(fclose(f) == 0);
    free(p);
}

static bool file_exists(const char *dir, const char *name)
{
    char *p;
    struct stat st;
    bool ok;

    fp_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    ok = lstat(p, &st) == 0;
    free(p);
    return ok;
}

static void test_basic(void)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp), *tmp2 = make_tmpdir(),
         *dir2 = spool_path(tmp2);
    struct fp_spool_report rep;
    struct fp_spool *s = open_ok(dir, 1 << 20, &rep), *s2;
    uint64_t epoch = fp_spool_epoch(s);
    const uint64_t unacked[] = {1, 4, 6, 7, 8, 9, 10};
    uint64_t seq;
    uint8_t *buf = (uint8_t *)"x";
    size_t len;

    check(rep.epoch_new);
    check(epoch != 0);
    check_int(rep.pending_records, 0);
    check_int(rep.discarded_records, 0);
    check_int(fp_spool_next_seq(s), 1);
    check_int(fp_spool_pending(s), 0);
    check_int(fp_spool_read(s, 0, &seq, &buf, &len, NULL), -ERANGE);

    for (seq = 1; seq <= 10; seq++)
        check_int(append_seq(s, seq, payload_len(seq)), 0);
    check_int(fp_spool_next_seq(s), 11);
    check_int(append_seq(s, 10, 5), -EINVAL); /* seqs only grow */
    check_int(fp_spool_pending(s), 10);
    check(fp_spool_bytes(s) > 0 && fp_spool_bytes(s) <= 1 << 20);

    /* Out of order, and twice. */
    check_int(fp_spool_ack(s, 5), 0);
    check_int(fp_spool_ack(s, 2), 0);
    check_int(fp_spool_ack(s, 3), 0);
    check_int(fp_spool_ack(s, 3), FP_SPOOL_E_NOT_FOUND);
    check_int(fp_spool_ack(s, 99), FP_SPOOL_E_NOT_FOUND);
    check_int(fp_spool_pending(s), 7);
    for (size_t i = 0; i < 7; i++)
        check_int(check_record(s, i, SIZE_MAX), unacked[i]);
    fp_spool_close(&s);
    check(s == NULL);
    fp_spool_close(&s); /* NULL-safe */
    fp_spool_close(NULL);

    /* Reopen: one segment holds them all, so the acked ones come back too (dedup's job). */
    s = open_ok(dir, 1 << 20, &rep);
    check(!rep.epoch_new);
    check_int(fp_spool_epoch(s), epoch);
    check_int(rep.pending_records, 10);
    check_int(rep.discarded_records, 0);
    check_int(rep.discarded_bytes, 0);
    for (size_t i = 0; i < 10; i++)
        check_int(check_record(s, i, SIZE_MAX), i + 1);
    check_int(fp_spool_next_seq(s), 11);
    /* Appending after a reopen starts a new segment; ack everything: both go, next_seq stays. */
    check_int(append_seq(s, 11, 100), 0);
    check_int(count_segments(dir), 2);
    for (seq = 11; seq >= 1; seq--)
        check_int(fp_spool_ack(s, seq), 0);
    check_int(count_segments(dir), 0);
    check_int(fp_spool_bytes(s), 0);
    fp_spool_close(&s);
    s = open_ok(dir, 1 << 20, &rep);
    check_int(fp_spool_epoch(s), epoch);
    check_int(rep.pending_records, 0);
    check_int(fp_spool_next_seq(s), 12);
    check_int(append_seq(s, 11, 1), -EINVAL);
    check_int(append_seq(s, 20, 0), 0); /* gaps are fine */
    check_int(fp_spool_next_seq(s), 21);
    check_int(check_record(s, 0, 0), 20);

    /* A new directory has a new epoch. */
    s2 = open_ok(dir2, 1 << 20, &rep);
    check(rep.epoch_new);
    check(fp_spool_epoch(s2) != epoch);
    fp_spool_close(&s2);
    fp_spool_close(&s);
    rm_rf(tmp);
    rm_rf(tmp2);
    free(tmp);
    free(dir);
    free(tmp2);
    free(dir2);
}

/* 64 KiB: segments of 8 KiB, 7 records of 1000 bytes (1032 on disk) each. */
static void test_segments(void)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);
    struct fp_spool_report rep;
    struct fp_spool *s = open_ok(dir, 64 << 10, NULL);
    uint64_t before;

    for (uint64_t seq = 1; seq <= 20; seq++)
        check_int(append_seq(s, seq, 1000), 0);
    check_int(count_segments(dir), 3);
    check_int(fp_spool_bytes(s), 3 * 32 + 20 * 1032);
    /* The first segment (1..7), acked in reverse with one of the second in between. */
    for (uint64_t seq = 7; seq >= 2; seq--)
        check_int(fp_spool_ack(s, seq), 0);
    check_int(fp_spool_ack(s, 9), 0);
    check_int(count_segments(dir), 3);
    before = fp_spool_bytes(s);
    check_int(fp_spool_ack(s, 1), 0);
    check_int(count_segments(dir), 2);
    check_int(fp_spool_bytes(s), before - 32 - 7 * 1032);
    fp_spool_close(&s);

    /* Exactly the unacked records come back, but 9 (its segment still has pending ones). */
    s = open_ok(dir, 64 << 10, &rep);
    check_int(rep.pending_records, 13);
    check_int(fp_spool_pending(s), 13);
    for (size_t i = 0; i < 13; i++)
        check_int(check_record(s, i, 1000), 8 + i);
    fp_spool_close(&s);
    rm_rf(tmp);
    free(tmp);
    free(dir);
}

static size_t bound_len(uint64_t seq)
{
    return 100 + (size_t)((seq * 2654435761u) % 2900);
}

/* Sum of the samples of the pending records, checking each one's bytes and that they are the
 * newest contiguous run ending at last. Returns the first pending seq in *ret_first. */
static uint64_t pending_samples(struct fp_spool *s, uint64_t last, uint64_t *ret_first)
{
    uint64_t sum = 0, first = last + 1 - fp_spool_pending(s);

    for (size_t i = 0; i < fp_spool_pending(s); i++) {
        check_int(check_record(s, i, first + i > 400 ? 2000 : bound_len(first + i)), first + i);
        sum += payload_samples(first + i);
    }
    *ret_first = first;
    return sum;
}

static void test_bound(void)
{
    const uint64_t max = 64 << 10;
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);
    struct fp_spool_report rep;
    struct fp_spool *s = open_ok(dir, max, NULL);
    uint64_t total = 0, acked = 0, last = 400, first;

    for (uint64_t seq = 1; seq <= last; seq++) {
        check_int(append_seq(s, seq, bound_len(seq)), 0);
        total += payload_samples(seq);
        check(fp_spool_bytes(s) <= max);
    }
    /* What is pending is the newest, contiguous run; everything else was dropped. */
    check(fp_spool_pending(s) > 10);
    check(fp_spool_dropped_samples_total(s) > 0);
    check_int(fp_spool_dropped_samples_total(s), total - pending_samples(s, last, &first));
    check(fp_spool_bytes(s) >= max / 2); /* drops free a slice, not the lot */

    /* An acked record is not counted as dropped when its segment goes for space. */
    check_int(fp_spool_ack(s, first + 1), 0);
    acked += payload_samples(first + 1);
    for (uint64_t seq = last + 1; seq <= last + 100; seq++) {
        check_int(append_seq(s, seq, 2000), 0);
        total += payload_samples(seq);
        check(fp_spool_bytes(s) <= max);
    }
    last += 100;
    check_int(fp_spool_dropped_samples_total(s), total - acked - pending_samples(s, last, &first));

    /* Persisted: the same total, the same pending records, after reopen. */
    {
        uint64_t dropped = fp_spool_dropped_samples_total(s), n = fp_spool_pending(s);
        fp_spool_close(&s);
        s = open_ok(dir, max, &rep);
        check_int(fp_spool_dropped_samples_total(s), dropped);
        check_int(rep.pending_records, n);
        check_int(rep.discarded_records, 0);
        check_int(fp_spool_next_seq(s), last + 1);
        (void)pending_samples(s, last, &first); /* checks order and bytes */
        check_int(fp_spool_pending(s), n);
    }

    /* Too big alone: refused, nothing dropped. Exactly the bound: accepted, the rest dropped. */
    {
        uint64_t dropped = fp_spool_dropped_samples_total(s), n = fp_spool_pending(s);
        uint64_t all = 0;
        check_int(append_seq(s, last + 1, (size_t)(max - 64 + 1)), -E2BIG);
        check_int(fp_spool_dropped_samples_total(s), dropped);
        check_int(fp_spool_pending(s), n);
        for (size_t i = 0; i < n; i++)
            all += payload_samples(first + i);
        check_int(append_seq(s, last + 1, (size_t)(max - 64)), 0);
        check_int(fp_spool_bytes(s), max);
        check_int(fp_spool_pending(s), 1);
        check_int(fp_spool_dropped_samples_total(s), dropped + all);
        check_int(check_record(s, 0, (size_t)(max - 64)), last + 1);
        check_int(append_seq(s, last + 2, 10), 0);
        check_int(fp_spool_dropped_samples_total(s), dropped + all + payload_samples(last + 1));
        check_int(fp_spool_pending(s), 1);
    }
    fp_spool_close(&s);
    rm_rf(tmp);
    free(tmp);
    free(dir);
}

static void test_busy(void)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);
    struct fp_spool *s = open_ok(dir, 1 << 20, NULL), *s2 = NULL;
    char err[256] = "";

    check_int(fp_spool_open(dir, 1 << 20, &s2, NULL, err, sizeof(err)), -EBUSY);
    check(s2 == NULL);
    check(strstr(err, "in use") != NULL);
    check_int(fp_spool_open(dir, 10, &s2, NULL, err, sizeof(err)), -EINVAL);
    fp_spool_close(&s);
    s2 = open_ok(dir, 1 << 20, NULL);
    fp_spool_close(&s2);
    rm_rf(tmp);
    free(tmp);
    free(dir);
}

/* A reference spool for the damage tests: records 1..n in one segment. Returns the state and
 * segment bytes, and the offset of each record (offs[n] = the file size). */
struct ref {
    uint8_t *state, *seg;
    size_t state_len, seg_len;
    size_t offs[16];
    size_t n;
};

static void make_ref(struct ref *ref, size_t n)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);
    struct fp_spool *s = open_ok(dir, 1 << 20, NULL);

    fp_assert(n < 16);
    ref->n = n;
    ref->offs[0] = 32;
    for (uint64_t seq = 1; seq <= n; seq++) {
        check_int(append_seq(s, seq, payload_len(seq)), 0);
        ref->offs[seq] = ref->offs[seq - 1] + 32 + payload_len(seq);
    }
    fp_spool_close(&s);
    ref->state = read_file(dir, "state", &ref->state_len);
    ref->seg = read_file(dir, SEG_NAME, &ref->seg_len);
    check_int(ref->seg_len, ref->offs[n]);
    rm_rf(tmp);
    free(tmp);
    free(dir);
}

/* A fresh spool directory holding the reference state and the given segment bytes. */
static char *plant(const struct ref *ref, const uint8_t *seg, size_t seg_len, char **ret_tmp)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);

    fp_assert(mkdir(dir, 0700) == 0);
    write_file(dir, "state", ref->state, ref->state_len);
    write_file(dir, SEG_NAME, seg, seg_len);
    *ret_tmp = tmp;
    return dir;
}

static void check_prefix(struct fp_spool *s, size_t k)
{
    check_int(fp_spool_pending(s), k);
    for (size_t i = 0; i < k && i < fp_spool_pending(s); i++)
        check_int(check_record(s, i, SIZE_MAX), i + 1);
}

static void test_truncation(const struct ref *ref)
{
    size_t last = ref->offs[ref->n - 1];

    for (size_t cut = last; cut < ref->seg_len; cut++) {
        char *tmp, *dir = plant(ref, ref->seg, cut, &tmp);
        struct fp_spool_report rep;
        struct fp_spool *s = open_ok(dir, 1 << 20, &rep);

        check(!rep.epoch_new);
        check_int(rep.pending_records, ref->n - 1);
        check_int(rep.discarded_records, cut > last ? 1 : 0);
        check_int(rep.discarded_bytes, cut - last);
        check_int(rep.discarded_segments, 0);
        check_prefix(s, ref->n - 1);
        /* The spool goes on: appends land after the kept records. */
        check_int(fp_spool_next_seq(s), ref->n);
        check_int(append_seq(s, ref->n, 10), 0);
        fp_spool_close(&s);
        /* The damage was cut off: a second open finds nothing more to discard. */
        s = open_ok(dir, 1 << 20, &rep);
        check_int(rep.discarded_records, 0);
        check_int(rep.discarded_bytes, 0);
        check_int(rep.pending_records, ref->n);
        for (size_t i = 0; i + 1 < ref->n; i++)
            check_int(check_record(s, i, SIZE_MAX), i + 1);
        check_int(check_record(s, ref->n - 1, 10), ref->n);
        fp_spool_close(&s);
        rm_rf(tmp);
        free(tmp);
        free(dir);
    }
}

static void test_flips(const struct ref *ref)
{
    uint8_t *seg = malloc(ref->seg_len);

    fp_assert(seg != NULL);
    for (int round = 0; round < 400; round++) {
        bool single = round < 300;
        size_t nflips = single ? 1 : 2 + rnd() % 6, first = SIZE_MAX, k;
        char *tmp, *dir;
        struct fp_spool_report rep;
        struct fp_spool *s;

        memcpy(seg, ref->seg, ref->seg_len);
        for (size_t f = 0; f < nflips; f++) {
            size_t pos = rnd() % ref->seg_len;
            seg[pos] ^= (uint8_t)(1 + rnd() % 255);
            if (pos < first)
                first = pos;
        }
        /* The record holding the first damaged byte; everything before it must survive. */
        for (k = 0; k < ref->n && ref->offs[k + 1] <= first; k++)
            ;
        dir = plant(ref, seg, ref->seg_len, &tmp);
        s = open_ok(dir, 1 << 20, &rep);
        if (first < 32) {
            /* The segment header: the whole segment goes. */
            check_int(rep.discarded_segments, 1);
            check_int(rep.discarded_bytes, ref->seg_len);
            check_prefix(s, 0);
        } else if (single) {
            /* CRC-32C catches every error burst up to 32 bits: exactly the records before. */
            check_int(rep.pending_records, k);
            check_int(rep.discarded_records, 1);
            check_int(rep.discarded_bytes, ref->seg_len - ref->offs[k]);
            check_prefix(s, k);
        } else {
            check(rep.pending_records >= k);
            check_prefix(s, fp_spool_pending(s));
        }
        fp_spool_close(&s);
        rm_rf(tmp);
        free(tmp);
        free(dir);
    }
    free(seg);
}

static void test_odd_files(const struct ref *ref)
{
    char *tmp, *dir = plant(ref, ref->seg, ref->seg_len, &tmp), *sub;
    struct fp_spool_report rep;
    struct fp_spool *s;
    uint8_t garbage[3000];

    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)rnd();
    write_file(dir, "README", "not a segment\n", 14);
    write_file(dir, "seg-xyz", garbage, 100);
    write_file(dir, SEG_NAME ".bak", garbage, 100);
    write_file(dir, "seg-00000000000000AB", garbage, 100); /* upper case: not ours */
    write_file(dir, "seg-0000000000000099", garbage, sizeof(garbage));
    write_file(dir, "seg-00000000000000a0", "", 0);        /* empty */
    write_file(dir, "seg-00000000000000a1", ref->seg, 32); /* header only: nothing lost */
    fp_assert(asprintf(&sub, "%s/seg-00000000000000ff", dir) > 0);
    fp_assert(mkdir(sub, 0700) == 0);
    {
        char *link;
        fp_assert(asprintf(&link, "%s/seg-00000000000000fe", dir) > 0);
        fp_assert(symlink("/nonexistent", link) == 0);
        free(link);
    }

    s = open_ok(dir, 1 << 20, &rep);
    check_int(rep.pending_records, ref->n);
    check_int(rep.discarded_segments, 2);
    check_int(rep.discarded_bytes, sizeof(garbage));
    check_prefix(s, ref->n);
    check(file_exists(dir, "README"));
    check(file_exists(dir, "seg-xyz"));
    check(file_exists(dir, SEG_NAME ".bak"));
    check(file_exists(dir, "seg-00000000000000AB"));
    check(file_exists(dir, "seg-00000000000000ff"));
    check(file_exists(dir, "seg-00000000000000fe"));
    check(!file_exists(dir, "seg-0000000000000099"));
    check(!file_exists(dir, "seg-00000000000000a0"));
    check(!file_exists(dir, "seg-00000000000000a1"));
    /* New segments are numbered past every id seen, so they sort after the old data. */
    check_int(append_seq(s, ref->n + 1, 10), 0);
    check(file_exists(dir, "seg-0000000000000100"));
    fp_spool_close(&s);
    s = open_ok(dir, 1 << 20, &rep);
    check_int(rep.discarded_segments, 0);
    check_int(rep.pending_records, ref->n + 1);
    fp_spool_close(&s);
    rm_rf(tmp);
    free(tmp);
    free(dir);
    free(sub);
}

static void test_lost_state(const struct ref *ref)
{
    uint8_t bad_state[64];

    for (int variant = 0; variant < 3; variant++) {
        char *tmp, *dir = plant(ref, ref->seg, ref->seg_len, &tmp), *p;
        struct fp_spool_report rep;
        struct fp_spool *s;

        fp_assert(asprintf(&p, "%s/state", dir) > 0);
        if (variant == 0) {
            fp_assert(unlink(p) == 0);
        } else if (variant == 1) {
            memcpy(bad_state, ref->state, ref->state_len);
            bad_state[20] ^= 0x40; /* the epoch, under the checksum */
            write_file(dir, "state", bad_state, ref->state_len);
        } else {
            write_file(dir, "state", ref->state, 10);
        }
        /* A new epoch: the old segments' seqs mean nothing in it, so they go, counted. */
        s = open_ok(dir, 1 << 20, &rep);
        check(rep.epoch_new);
        check_int(rep.pending_records, 0);
        check_int(rep.discarded_records, ref->n);
        check_int(rep.discarded_segments, 1);
        check_int(rep.discarded_bytes, ref->seg_len);
        check_int(fp_spool_next_seq(s), 1);
        check(!file_exists(dir, SEG_NAME));
        fp_spool_close(&s);
        free(p);
        rm_rf(tmp);
        free(tmp);
        free(dir);
    }
}

/* The child: appends until killed, writing each seq to the pipe once its append returned. */
static void crash_child(const char *dir, int wfd)
{
    struct fp_spool *s = NULL;
    char err[256];

    if (fp_spool_open(dir, 64 << 20, &s, NULL, err, sizeof(err)) != 0)
        _exit(2);
    for (;;) {
        uint64_t seq = fp_spool_next_seq(s);
        if (append_seq(s, seq, payload_len(seq)) != 0)
            _exit(3);
        if (write(wfd, &seq, sizeof(seq)) != (ssize_t)sizeof(seq))
            _exit(4);
    }
}

static void test_crash(void)
{
    char *tmp = make_tmpdir(), *dir = spool_path(tmp);
    uint64_t reported_max = 0, n_reported = 0;

    for (int round = 0; round < 6; round++) {
        int fds[2], status;
        uint64_t seq, want = 20 + rnd() % 200, got = 0;
        struct fp_spool_report rep;
        struct fp_spool *s;
        pid_t pid;

        fp_assert(pipe(fds) == 0);
        pid = fork();
        fp_assert(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(dir, fds[1]);
        }
        close(fds[1]);
        while (got < want && read(fds[0], &seq, sizeof(seq)) == (ssize_t)sizeof(seq)) {
            check_int(seq, reported_max + 1);
            reported_max = seq;
            got++;
        }
        fp_assert(kill(pid, SIGKILL) == 0);
        fp_assert(waitpid(pid, &status, 0) == pid);
        check(WIFSIGNALED(status));
        /* What it reported before dying counts too. */
        while (read(fds[0], &seq, sizeof(seq)) == (ssize_t)sizeof(seq)) {
            check_int(seq, reported_max + 1);
            reported_max = seq;
            got++;
        }
        close(fds[0]);
        n_reported += got;

        s = open_ok(dir, 64 << 20, &rep);
        check(!rep.epoch_new || round == 0);
        check(fp_spool_pending(s) >= reported_max);
        check(fp_spool_pending(s) <= reported_max + 1); /* one may have landed unreported */
        for (size_t i = 0; i < reported_max && i < fp_spool_pending(s); i++)
            check_int(check_record(s, i, SIZE_MAX), i + 1);
        /* Continue from the spool's own next seq next round. */
        reported_max = fp_spool_next_seq(s) - 1;
        fp_spool_close(&s);
    }
    check(n_reported > 0);
    rm_rf(tmp);
    free(tmp);
    free(dir);
}

int main(void)
{
    struct ref ref;

    test_basic();
    test_segments();
    test_bound();
    test_busy();
    make_ref(&ref, 8);
    test_truncation(&ref);
    test_flips(&ref);
    test_odd_files(&ref);
    test_lost_state(&ref);
    free(ref.state);
    free(ref.seg);
    test_crash();
    fp_test_end();
}
