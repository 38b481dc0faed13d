/* The durable spool: append-only segment files in one directory, a small state file, a lock.
 *
 * Files in DIR (anything else is ignored):
 *   lock                 flock(LOCK_EX) held while open: one owner per directory.
 *   state                56 bytes, rewritten atomically (state.tmp, fsync, rename, fsync DIR):
 *                        magic "FPSTATE1", u32 version, u32 0, u64 epoch, u64 dropped samples
 *                        total, u64 drop_seq, u64 high_seq, u32 crc32c of bytes 0..47, u32 0.
 *   seg-XXXXXXXXXXXXXXXX 16 hex digits, the segment id (grows; order of ids = order of data).
 *                        A 32-byte header: magic "FPSPOOL1", u32 version, u32 0, u64 epoch,
 *                        u32 crc32c of bytes 0..23, u32 0. Then records, each a 32-byte header:
 *                        u32 magic, u32 payload length, u64 seq, u64 samples, u32 crc32c (of the
 *                        header's first 24 bytes, then the payload), u32 0; then the payload.
 * All integers little-endian, written byte by byte, so the format does not depend on the host.
 *
 * Invariants:
 *  - seqs grow strictly in append order, so file order (segment id, offset) is seq order and "the
 *    oldest records" are a prefix of the oldest segment.
 *  - Records with seq <= drop_seq were dropped for space and are already in the dropped total;
 *    a drop writes the state (the commit point) before deleting files, so a crash between the two
 *    replays nothing twice and counts nothing twice: leftovers are skipped on open.
 *  - high_seq keeps fp_spool_next_seq monotonic when the records carrying the highest seq are
 *    gone (acked or dropped segments deleted): it is persisted before the newest segment is
 *    deleted. next seq = 1 + max(high_seq, drop_seq, highest seq in the segments).
 *  - The segments' total size (headers included) never exceeds max_bytes after an append returns.
 *  - An append is durable when it returns 0 (write + fdatasync; a new segment also fsyncs DIR).
 *  - In memory: only an index (seq, samples, segment, offset, length) of pending records, sorted by
 *    seq, and one small struct per segment; payloads are read back from disk on demand.
 *
 * Recovery: a segment ends at its first record whose header or checksum is bad or that runs past
 * the end of the file (a torn write); the file is truncated there. A segment with a bad header,
 * or one whose epoch is not the state's (e.g. the state file was lost and a new epoch made: its
 * seqs would collide with the new epoch's), is deleted. Either way it is counted in the report.
 *
 * Rejected alternatives:
 *  - One file per batch: a create + fsync of the directory per append, and thousands of inodes.
 *  - Persisting every ack (an ack log or rewriting records in place): one more fsync per ack for
 *    what the collector's dedup already makes harmless; acks are persisted at segment granularity
 *    by deleting the segment.
 *  - Freeing space record by record (hole punching, compaction): a full spool drops whole oldest
 *    segments instead; segments are max_bytes / 8 (at most 4 MiB) so that is a bounded slice.
 *  - Appending to the last segment after a reopen: a new segment per open is simpler to reason
 *    about after a truncation, and costs one partial segment per restart.
 *  - zlib's crc32: zlib is not linked into the probe; CRC-32C is 20 lines. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"

#define STATE_NAME "state"
#define STATE_TMP_NAME "state.tmp"
#define LOCK_NAME "lock"
#define SEG_PREFIX "seg-"
#define SEG_NAME_LEN 20 /* "seg-" + 16 hex digits */

#define FORMAT_VERSION 1u
#define STATE_SIZE 56
#define SEG_HDR_SIZE FP_SPOOL_SEGMENT_OVERHEAD_BYTES
#define REC_HDR_SIZE FP_SPOOL_RECORD_OVERHEAD_BYTES
#define REC_MAGIC 0x63525046u /* "FPRc" read as little-endian bytes */

static const uint8_t state_magic[8] = {'F', 'P', 'S', 'T', 'A', 'T', 'E', '1'};
static const uint8_t seg_magic[8] = {'F', 'P', 'S', 'P', 'O', 'O', 'L', '1'};

struct rec {
    uint64_t seq;
    uint64_t samples;
    uint64_t seg_id; /* segment holding it */
    uint64_t off;    /* offset of the record header in that segment, bytes */
    uint32_t len;    /* payload length, bytes */
};

struct seg {
    uint64_t id;
    uint64_t size_bytes; /* file size, header included */
    uint64_t last_seq;   /* highest seq written to it (acked ones included); 0: none */
    size_t live;         /* pending records in it; 0 and not the active segment -> deleted */
};

struct fp_spool {
    int dir_fd;
    int lock_fd;
    int active_fd;      /* segment being appended to; -1: the next append starts one */
    uint64_t active_id; /* valid while active_fd >= 0 */
    uint64_t max_bytes;
    uint64_t seg_target_bytes; /* start a new segment past this size */
    uint64_t bytes;            /* sum of segs[].size_bytes */
    uint64_t epoch;
    uint64_t dropped_samples;
    uint64_t drop_seq; /* seqs <= this were dropped (persisted) */
    uint64_t high_seq; /* highest seq appended (persisted only as described at the top) */
    uint64_t persisted_high_seq;
    uint64_t next_seg_id;
    struct rec *recs; /* pending, sorted by seq */
    size_t n_recs, cap_recs;
    struct seg *segs; /* live segment files, sorted by id */
    size_t n_segs, cap_segs;
};

/* ---- CRC-32C (Castagnoli), reflected, a nibble at a time: a 16-entry table is fast enough for
 * batches of kilobytes and needs no run-time initialisation. */
static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

/* Continues a CRC: start with crc = 0; crc32c(0, "123456789", 9) == 0xe3069283. */
static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
    }
    return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- small I/O helpers: loop over short reads and writes and EINTR. */

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Returns the number of bytes read (short only at end of file) or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void seg_name(char *buf, size_t size, uint64_t id)
{
    (void)snprintf(buf, size, SEG_PREFIX "%016" PRIx64, id);
}

/* Parses "seg-" + exactly 16 lower-case hex digits; anything else is not ours. */
static bool parse_seg_name(const char *name, uint64_t *ret_id)
{
    uint64_t id = 0;

    if (strlen(name) != SEG_NAME_LEN || strncmp(name, SEG_PREFIX, strlen(SEG_PREFIX)) != 0)
        return false;
    for (const char *p = name + strlen(SEG_PREFIX); *p != '\0'; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            return false;
        id = (id << 4) | (uint64_t)d;
    }
    *ret_id = id;
    return true;
}

/* ---- state file */

static int state_write(struct fp_spool *s)
{
    uint8_t b[STATE_SIZE] = {0};
    int fd, r;

    memcpy(b, state_magic, 8);
    put_le32(b + 8, FORMAT_VERSION);
    put_le64(b + 16, s->epoch);
    put_le64(b + 24, s->dropped_samples);
    put_le64(b + 32, s->drop_seq);
    put_le64(b + 40, s->high_seq);
    put_le32(b + 48, crc32c(0, b, 48));

    fd = openat(s->dir_fd, STATE_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    r = pwrite_all(fd, b, sizeof(b), 0);
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
    (void)close(fd);
    if (r == 0 && renameat(s->dir_fd, STATE_TMP_NAME, s->dir_fd, STATE_NAME) != 0)
        r = -errno;
    /* The rename is the commit; without the directory fsync it could be undone by a crash. */
    if (r == 0 && fsync(s->dir_fd) != 0)
        r = -errno;
    if (r < 0) {
        (void)unlinkat(s->dir_fd, STATE_TMP_NAME, 0);
        return r;
    }
    s->persisted_high_seq = s->high_seq;
    return 0;
}

/* Returns 1 when a valid state was read into s, 0 when there is none (missing or damaged), or
 * -errno when it cannot be read at all. */
static int state_read(struct fp_spool *s)
{
    uint8_t b[STATE_SIZE];
    ssize_t n;
    int fd = openat(s->dir_fd, STATE_NAME, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    n = pread_full(fd, b, sizeof(b), 0);
    (void)close(fd);
    if (n < 0)
        return (int)n;
    if (n != STATE_SIZE || memcmp(b, state_magic, 8) != 0 || get_le32(b + 8) != FORMAT_VERSION ||
        get_le32(b + 48) != crc32c(0, b, 48) || get_le32(b + 12) != 0 || get_le32(b + 52) != 0 ||
        get_le64(b + 16) == 0)
        return 0;
    s->epoch = get_le64(b + 16);
    s->dropped_samples = get_le64(b + 24);
    s->drop_seq = get_le64(b + 32);
    s->high_seq = get_le64(b + 40);
    s->persisted_high_seq = s->high_seq;
    return 1;
}

static int new_epoch(uint64_t *ret)
{
    uint64_t e = 0;

    /* 0 is never an epoch, so "no epoch" stays recognisable. */
    while (e == 0) {
        ssize_t n = getrandom(&e, sizeof(e), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(e))
            return n < 0 ? -errno : -EIO;
    }
    *ret = e;
    return 0;
}

/* ---- index arrays */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static struct seg *seg_find(struct fp_spool *s, uint64_t id)
{
    size_t lo = 0, hi = s->n_segs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_segs && s->segs[lo].id == id ? &s->segs[lo] : NULL;
}

/* Index of the pending record with this seq, or SIZE_MAX. */
static size_t rec_find(const struct fp_spool *s, uint64_t seq)
{
    size_t lo = 0, hi = s->n_recs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->recs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_recs && s->recs[lo].seq == seq ? lo : SIZE_MAX;
}

static void close_active(struct fp_spool *s)
{
    if (s->active_fd >= 0)
        (void)close(s->active_fd);
    s->active_fd = -1;
}

/* Deletes segment segs[i] (file and entry). Its records must already be out of recs[]. If it
 * holds the highest seq, high_seq is persisted first so next_seq survives a restart. */
static int seg_delete(struct fp_spool *s, size_t i)
{
    char name[SEG_NAME_LEN + 1];
    struct seg *g = &s->segs[i];
    int r;

    if (s->high_seq > s->persisted_high_seq && g->last_seq == s->high_seq) {
        r = state_write(s);
        if (r < 0)
            return r;
    }
    if (s->active_fd >= 0 && s->active_id == g->id)
        close_active(s);
    seg_name(name, sizeof(name), g->id);
    /* No directory fsync: a deleted segment that comes back after a crash only replays acked
     * records (dedup absorbs them) or records <= drop_seq (skipped on open). */
    (void)unlinkat(s->dir_fd, name, 0);
    s->bytes -= g->size_bytes;
    memmove(&s->segs[i], &s->segs[i + 1], (s->n_segs - i - 1) * sizeof(*s->segs));
    s->n_segs--;
    return 0;
}

/* ---- open: scanning segments */

struct scan {
    uint64_t epoch;       /* from the segment header */
    uint64_t valid_bytes; /* where the intact part ends */
    uint64_t file_bytes;
    bool header_ok;
    bool not_ours; /* not a regular file (a directory, a symlink): left alone */
    bool damaged;  /* something after valid_bytes was thrown away */
};

/* Checks one record at off. Returns 1 with its header fields when intact, 0 when damaged or
 * torn (or simply absent: off == file size is checked by the caller), -errno on read errors. */
static int scan_record(int fd, uint64_t off, uint64_t file_bytes, uint8_t *chunk, size_t chunk_size,
                       uint64_t *ret_seq, uint64_t *ret_samples, uint32_t *ret_len)
{
    uint8_t h[REC_HDR_SIZE];
    uint64_t pos, end;
    uint32_t crc, len;
    ssize_t n;

    if (file_bytes - off < REC_HDR_SIZE)
        return 0;
    n = pread_full(fd, h, sizeof(h), off);
    if (n < 0)
        return (int)n;
    if (n != REC_HDR_SIZE || get_le32(h) != REC_MAGIC || get_le32(h + 28) != 0)
        return 0;
    len = get_le32(h + 4);
    if (len > file_bytes - off - REC_HDR_SIZE)
        return 0;
    crc = crc32c(0, h, 24);
    end = off + REC_HDR_SIZE + len;
    for (pos = off + REC_HDR_SIZE; pos < end;) {
        size_t want = end - pos < chunk_size ? (size_t)(end - pos) : chunk_size;
        n = pread_full(fd, chunk, want, pos);
        if (n < 0)
            return (int)n;
        if ((size_t)n != want)
            return 0;
        crc = crc32c(crc, chunk, want);
        pos += want;
    }
    if (crc != get_le32(h + 24))
        return 0;
    *ret_seq = get_le64(h + 8);
    *ret_samples = get_le64(h + 16);
    *ret_len = len;
    return 1;
}

/* Scans segment id. Intact records of the spool's epoch with seq > drop_seq (and above every seq
 * before them) go into recs[] when keep; *last_seq gets the highest seq seen. */
static int scan_segment(struct fp_spool *s, uint64_t id, bool keep, struct scan *sc,
                        uint64_t *io_last_seq, uint64_t *ret_intact, uint64_t *ret_seg_last,
                        size_t *ret_live)
{
    char name[SEG_NAME_LEN + 1];
    uint8_t h[SEG_HDR_SIZE];
    uint8_t chunk[4096];
    struct stat st;
    uint64_t off, intact = 0, seg_last = 0;
    size_t live = 0;
    ssize_t n;
    int fd, r = 0;

    memset(sc, 0, sizeof(*sc));
    *ret_intact = *ret_seg_last = 0;
    *ret_live = 0;
    seg_name(name, sizeof(name), id);
    fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP) {
        sc->not_ours = true;
        return 0;
    }
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        sc->not_ours = true;
        goto out;
    }
    sc->file_bytes = (uint64_t)st.st_size;
    n = pread_full(fd, h, sizeof(h), 0);
    if (n < 0) {
        r = (int)n;
        goto out;
    }
    if (n != SEG_HDR_SIZE || memcmp(h, seg_magic, 8) != 0 || get_le32(h + 8) != FORMAT_VERSION ||
        get_le32(h + 24) != crc32c(0, h, 24) || get_le32(h + 12) != 0 || get_le32(h + 28) != 0)
        goto out; /* header_ok stays false */
    sc->header_ok = true;
    sc->epoch = get_le64(h + 16);
    if (sc->epoch != s->epoch)
        keep = false;
    for (off = SEG_HDR_SIZE; off < sc->file_bytes;) {
        uint64_t seq = 0, samples = 0;
        uint32_t len = 0;
        r = scan_record(fd, off, sc->file_bytes, chunk, sizeof(chunk), &seq, &samples, &len);
        if (r < 0)
            goto out;
        /* Seqs only grow; a record that breaks the order cannot be trusted to sort. */
        if (r == 0 || (keep && seq <= *io_last_seq)) {
            sc->damaged = true;
            break;
        }
        intact++;
        if (keep) {
            *io_last_seq = seq;
            seg_last = seq;
            if (seq > s->drop_seq) {
                r = grow((void **)&s->recs, &s->cap_recs, s->n_recs + 1, sizeof(*s->recs));
                if (r < 0)
                    goto out;
                s->recs[s->n_recs++] = (struct rec){
                    .seq = seq, .samples = samples, .seg_id = id, .off = off, .len = len};
                live++;
            }
        }
        off += REC_HDR_SIZE + len;
    }
    sc->valid_bytes = off < sc->file_bytes ? off : sc->file_bytes;
    r = 0;
out:
    (void)close(fd);
    *ret_intact = intact;
    *ret_seg_last = seg_last;
    *ret_live = live;
    return r;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment ids in the directory, sorted. */
static int list_segments(struct fp_spool *s, uint64_t **ret_ids, size_t *ret_n)
{
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;
    int fd, r = 0;

    fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (d == NULL) {
        r = -errno;
        (void)close(fd);
        return r;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        uint64_t id;
        if (!parse_seg_name(de->d_name, &id))
            continue;
        r = grow((void **)&ids, &cap, n + 1, sizeof(*ids));
        if (r < 0)
            goto out;
        ids[n++] = id;
    }
    if (errno != 0)
        r = -errno;
out:
    (void)closedir(d);
    if (r < 0) {
        free(ids);
        return r;
    }
    if (n > 0)
        qsort(ids, n, sizeof(*ids), cmp_u64);
    *ret_ids = ids;
    *ret_n = n;
    return 0;
}

/* Rebuilds recs[] and segs[] from the segment files, repairing as described at the top. */
static int recover(struct fp_spool *s, struct fp_spool_report *rep, char *err, size_t err_size)
{
    uint64_t *ids = NULL, last_seq = 0, highest;
    size_t n_ids = 0;
    int r;

    r = list_segments(s, &ids, &n_ids);
    if (r < 0) {
        fp_set_err(err, err_size, "cannot list spool directory: %s", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < n_ids; i++) {
        char name[SEG_NAME_LEN + 1];
        struct scan sc;
        uint64_t intact, seg_last;
        size_t live;

        seg_name(name, sizeof(name), ids[i]);
        if (ids[i] >= s->next_seg_id)
            s->next_seg_id = ids[i] + 1;
        r = scan_segment(s, ids[i], true, &sc, &last_seq, &intact, &seg_last, &live);
        if (r < 0) {
            fp_set_err(err, err_size, "cannot read spool segment \"%s\": %s", name, strerror(-r));
            goto out;
        }
        if (sc.not_ours)
            continue;
        if (!sc.header_ok || sc.epoch != s->epoch) {
            /* Unreadable, or another epoch's: its seqs mean nothing in this one. */
            rep->discarded_segments++;
            rep->discarded_bytes += sc.file_bytes;
            rep->discarded_records += intact + (sc.damaged ? 1 : 0);
            (void)unlinkat(s->dir_fd, name, 0);
            continue;
        }
        if (sc.damaged) {
            int fd;
            rep->discarded_records++;
            rep->discarded_bytes += sc.file_bytes - sc.valid_bytes;
            /* Cut the damage off so the next open does not count it again. */
            fd = openat(s->dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 || ftruncate(fd, (off_t)sc.valid_bytes) != 0 || fdatasync(fd) != 0) {
                r = -errno;
                if (fd >= 0)
                    (void)close(fd);
                fp_set_err(err, err_size, "cannot truncate damaged spool segment \"%s\": %s", name,
                           strerror(-r));
                goto out;
            }
            (void)close(fd);
        }
        r = grow((void **)&s->segs, &s->cap_segs, s->n_segs + 1, sizeof(*s->segs));
        if (r < 0)
            goto out;
        s->segs[s->n_segs++] = (struct seg){
            .id = ids[i], .size_bytes = sc.valid_bytes, .last_seq = seg_last, .live = live};
        s->bytes += sc.valid_bytes;
    }

    /* Persist the highest seq before deleting segments that may carry it. */
    highest = last_seq > s->high_seq ? last_seq : s->high_seq;
    if (highest > s->high_seq) {
        s->high_seq = highest;
        r = state_write(s);
        if (r < 0) {
            fp_set_err(err, err_size, "cannot write spool state: %s", strerror(-r));
            goto out;
        }
    }
    /* Segments with nothing pending (empty, or all <= drop_seq) have nothing to keep. */
    for (size_t i = 0; i < s->n_segs;) {
        if (s->segs[i].live == 0) {
            r = seg_delete(s, i);
            if (r < 0)
                goto out;
        } else {
            i++;
        }
    }
    /* Over the bound (max_bytes lowered since last time): drop as an append would. Handled by the
     * next append; the spool stays readable meanwhile. */
    r = 0;
out:
    free(ids);
    return r;
}

int fp_spool_open(const char *dir, uint64_t max_bytes, struct fp_spool **ret,
                  struct fp_spool_report *ret_report, char *err, size_t err_size)
{
    struct fp_spool_report rep = {0};
    struct fp_spool *s = NULL;
    int r;

    if (dir == NULL || ret == NULL || max_bytes < SEG_HDR_SIZE + REC_HDR_SIZE) {
        fp_set_err(err, err_size, "invalid arguments");
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->dir_fd = s->lock_fd = s->active_fd = -1;
    s->max_bytes = max_bytes;
    s->seg_target_bytes = max_bytes / 8;
    if (s->seg_target_bytes > FP_SPOOL_SEGMENT_MAX_BYTES)
        s->seg_target_bytes = FP_SPOOL_SEGMENT_MAX_BYTES;
    s->next_seg_id = 1;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        r = -errno;
        fp_set_err(err, err_size, "cannot create spool directory \"%s\": %s", dir, strerror(-r));
        goto fail;
    }
    s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        r = -errno;
        fp_set_err(err, err_size, "cannot open spool directory \"%s\": %s", dir, strerror(-r));
        goto fail;
    }
    s->lock_fd = openat(s->dir_fd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lock_fd < 0) {
        r = -errno;
        fp_set_err(err, err_size, "cannot open lock file in \"%s\": %s", dir, strerror(-r));
        goto fail;
    }
    /* flock, not fcntl locks: those belong to the process, so a second open in the same process
     * would succeed and the first close would drop the lock. */
    while ((r = flock(s->lock_fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (r != 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        fp_set_err(err, err_size, "spool directory \"%s\" is in use by another probe%s%s", dir,
                   r == -EBUSY ? "" : ": ", r == -EBUSY ? "" : strerror(-r));
        goto fail;
    }

    r = state_read(s);
    if (r < 0) {
        fp_set_err(err, err_size, "cannot read spool state in \"%s\": %s", dir, strerror(-r));
        goto fail;
    }
    if (r == 0) {
        rep.epoch_new = true;
        s->dropped_samples = s->drop_seq = s->high_seq = 0;
        r = new_epoch(&s->epoch);
        if (r == 0)
            r = state_write(s);
        if (r < 0) {
            fp_set_err(err, err_size, "cannot create spool epoch in \"%s\": %s", dir, strerror(-r));
            goto fail;
        }
    }
    r = recover(s, &rep, err, err_size);
    if (r < 0)
        goto fail;
    rep.pending_records = s->n_recs;
    for (size_t i = 0; i < s->n_recs; i++)
        rep.pending_samples += s->recs[i].samples;
    if (ret_report != NULL)
        *ret_report = rep;
    *ret = s;
    return 0;
fail:
    fp_spool_close(&s);
    return r;
}

void fp_spool_close(struct fp_spool **sp)
{
    struct fp_spool *s;

    if (sp == NULL || *sp == NULL)
        return;
    s = *sp;
    close_active(s);
    /* Closing the lock fd releases the flock. */
    if (s->lock_fd >= 0)
        (void)close(s->lock_fd);
    if (s->dir_fd >= 0)
        (void)close(s->dir_fd);
    free(s->recs);
    free(s->segs);
    free(s);
    *sp = NULL;
}

uint64_t fp_spool_epoch(const struct fp_spool *s)
{
    return s->epoch;
}

uint64_t fp_spool_next_seq(const struct fp_spool *s)
{
    return (s->high_seq > s->drop_seq ? s->high_seq : s->drop_seq) + 1;
}

size_t fp_spool_pending(const struct fp_spool *s)
{
    return s->n_recs;
}

uint64_t fp_spool_dropped_samples_total(const struct fp_spool *s)
{
    return s->dropped_samples;
}

uint64_t fp_spool_bytes(const struct fp_spool *s)
{
    return s->bytes;
}

/* Drops the n oldest segments: counts their pending samples, commits the state, then deletes the
 * files (see the invariants at the top for why in that order). */
static int drop_oldest(struct fp_spool *s, size_t n)
{
    uint64_t samples = 0, drop_seq = s->drop_seq;
    uint64_t saved_total = s->dropped_samples, saved_drop_seq = s->drop_seq;
    size_t nrec = 0;
    int r;

    for (size_t i = 0; i < n; i++)
        if (s->segs[i].last_seq > drop_seq)
            drop_seq = s->segs[i].last_seq;
    while (nrec < s->n_recs && s->recs[nrec].seq <= drop_seq) {
        samples += s->recs[nrec].samples;
        nrec++;
    }
    s->dropped_samples += samples;
    s->drop_seq = drop_seq;
    r = state_write(s);
    if (r < 0) {
        s->dropped_samples = saved_total;
        s->drop_seq = saved_drop_seq;
        return r;
    }
    memmove(s->recs, s->recs + nrec, (s->n_recs - nrec) * sizeof(*s->recs));
    s->n_recs -= nrec;
    for (size_t i = 0; i < n; i++) {
        s->segs[0].live = 0;
        r = seg_delete(s, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Starts a new segment file and makes it the active one. */
static int start_segment(struct fp_spool *s)
{
    char name[SEG_NAME_LEN + 1];
    uint8_t h[SEG_HDR_SIZE] = {0};
    uint64_t id = s->next_seg_id;
    int fd, r;

    r = grow((void **)&s->segs, &s->cap_segs, s->n_segs + 1, sizeof(*s->segs));
    if (r < 0)
        return r;
    memcpy(h, seg_magic, 8);
    put_le32(h + 8, FORMAT_VERSION);
    put_le64(h + 16, s->epoch);
    put_le32(h + 24, crc32c(0, h, 24));
    seg_name(name, sizeof(name), id);
    fd = openat(s->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    r = pwrite_all(fd, h, sizeof(h), 0);
    /* The new name must be durable too, or a crash could lose the file with its records. */
    if (r == 0 && fdatasync(fd) != 0)
        r = -errno;
    if (r == 0 && fsync(s->dir_fd) != 0)
        r = -errno;
    if (r < 0) {
        (void)close(fd);
        (void)unlinkat(s->dir_fd, name, 0);
        return r;
    }
    s->next_seg_id++;
    s->segs[s->n_segs++] = (struct seg){.id = id, .size_bytes = SEG_HDR_SIZE};
    s->bytes += SEG_HDR_SIZE;
    s->active_fd = fd;
    s->active_id = id;
    return 0;
}

int fp_spool_append(struct fp_spool *s, uint64_t seq, const void *buf, size_t len, uint64_t samples)
{
    uint8_t h[REC_HDR_SIZE] = {0};
    struct seg *g;
    uint64_t rec_bytes, off;
    int r;

    if (seq < fp_spool_next_seq(s) || len > UINT32_MAX || (buf == NULL && len > 0))
        return -EINVAL;
    rec_bytes = REC_HDR_SIZE + (uint64_t)len;
    if (SEG_HDR_SIZE + rec_bytes > s->max_bytes)
        return -E2BIG;
    r = grow((void **)&s->recs, &s->cap_recs, s->n_recs + 1, sizeof(*s->recs));
    if (r < 0)
        return r;

    for (;;) {
        /* The active segment is the newest one; a new one is due when it would grow past the
         * target (unless it holds no record yet: an oversized record then gets it alone). */
        bool need_new = s->active_fd < 0;
        uint64_t need;
        size_t ndrop = 0;
        uint64_t freed = 0;

        if (!need_new) {
            g = seg_find(s, s->active_id);
            need_new =
                g->size_bytes > SEG_HDR_SIZE && g->size_bytes + rec_bytes > s->seg_target_bytes;
        }
        need = rec_bytes + (need_new ? SEG_HDR_SIZE : 0);
        if (s->bytes + need <= s->max_bytes) {
            if (need_new) {
                close_active(s);
                r = start_segment(s);
                if (r < 0)
                    return r;
            }
            break;
        }
        /* Drop the oldest segments until it fits; if that takes the active one, loop again, as
         * the record then needs a new segment's header too. */
        while (ndrop < s->n_segs && s->bytes - freed + need > s->max_bytes)
            freed += s->segs[ndrop++].size_bytes;
        if (ndrop == 0)
            return -E2BIG; /* NEVER: bytes == 0 without segments, and the size was checked */
        r = drop_oldest(s, ndrop);
        if (r < 0)
            return r;
    }

    g = seg_find(s, s->active_id);
    off = g->size_bytes;
    put_le32(h, REC_MAGIC);
    put_le32(h + 4, (uint32_t)len);
    put_le64(h + 8, seq);
    put_le64(h + 16, samples);
    put_le32(h + 24, crc32c(crc32c(0, h, 24), buf, len));
    r = pwrite_all(s->active_fd, h, sizeof(h), off);
    if (r == 0 && len > 0)
        r = pwrite_all(s->active_fd, buf, len, off + REC_HDR_SIZE);
    if (r == 0 && fdatasync(s->active_fd) != 0)
        r = -errno;
    if (r < 0) {
        /* After a failed write or fdatasync the file's tail is unknown (and a failed fdatasync
         * may not fail again): cut it back, and never append to this segment again. */
        (void)ftruncate(s->active_fd, (off_t)off);
        close_active(s);
        if (g->live == 0)
            (void)seg_delete(s, (size_t)(g - s->segs));
        return r;
    }
    g->size_bytes += rec_bytes;
    g->last_seq = seq;
    g->live++;
    s->bytes += rec_bytes;
    s->high_seq = seq;
    s->recs[s->n_recs++] = (struct rec){
        .seq = seq, .samples = samples, .seg_id = g->id, .off = off, .len = (uint32_t)len};
    return 0;
}

int fp_spool_ack(struct fp_spool *s, uint64_t seq)
{
    size_t i = rec_find(s, seq);
    struct seg *g;

    if (i == SIZE_MAX)
        return FP_SPOOL_E_NOT_FOUND;
    g = seg_find(s, s->recs[i].seg_id);
    memmove(&s->recs[i], &s->recs[i + 1], (s->n_recs - i - 1) * sizeof(*s->recs));
    s->n_recs--;
    if (g == NULL || --g->live > 0)
        return 0;
    return seg_delete(s, (size_t)(g - s->segs));
}

int fp_spool_read(struct fp_spool *s, size_t index, uint64_t *ret_seq, uint8_t **ret_buf,
                  size_t *ret_len, uint64_t *ret_samples)
{
    char name[SEG_NAME_LEN + 1];
    uint8_t h[REC_HDR_SIZE];
    const struct rec *rc;
    uint8_t *buf = NULL;
    ssize_t n;
    bool whole;
    int fd, r = 0;

    if (index >= s->n_recs)
        return -ERANGE;
    rc = &s->recs[index];
    seg_name(name, sizeof(name), rc->seg_id);
    fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    buf = malloc(rc->len > 0 ? rc->len : 1);
    if (buf == NULL) {
        r = -ENOMEM;
        goto out;
    }
    n = pread_full(fd, h, sizeof(h), rc->off);
    if (n < 0) {
        r = (int)n;
        goto out;
    }
    whole = n == REC_HDR_SIZE;
    if (whole) {
        n = pread_full(fd, buf, rc->len, rc->off + REC_HDR_SIZE);
        if (n < 0) {
            r = (int)n;
            goto out;
        }
        whole = (size_t)n == rc->len;
    }
    /* Re-check what the index says against the bytes: the disk may have changed since open. */
    if (!whole || get_le32(h) != REC_MAGIC || get_le32(h + 4) != rc->len ||
        get_le64(h + 8) != rc->seq || get_le32(h + 24) != crc32c(crc32c(0, h, 24), buf, rc->len)) {
        if (ret_seq != NULL)
            *ret_seq = rc->seq;
        r = FP_SPOOL_E_CORRUPT;
        goto out;
    }
    if (ret_seq != NULL)
        *ret_seq = rc->seq;
    if (ret_samples != NULL)
        *ret_samples = rc->samples;
    *ret_len = rc->len;
    *ret_buf = buf;
    buf = NULL;
out:
    free(buf);
    (void)close(fd);
    return r;
}

int fp_spool_find(const struct fp_spool *s, uint64_t seq, size_t *ret_index)
{
    size_t lo = 0, hi = s->n_recs;

    /* The index is sorted by seq: the sender looks batches up by the seq it queued. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->recs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->n_recs || s->recs[lo].seq != seq)
        return -ENOENT;
    *ret_index = lo;
    return 0;
}

int fp_spool_peek(const struct fp_spool *s, size_t index, uint64_t *ret_seq, size_t *ret_len,
                  uint64_t *ret_samples)
{
    if (index >= s->n_recs)
        return -ERANGE;
    *ret_seq = s->recs[index].seq;
    *ret_len = s->recs[index].len;
    *ret_samples = s->recs[index].samples;
    return 0;
}
