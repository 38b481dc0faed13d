/* Time-series chunks: one series' samples, (ts_ms, value) in strictly increasing time order,
 * compressed into one self-contained byte string of at most a few hundred samples.
 *
 * The encoder collects samples and picks the encoding when the chunk is finished: integer-valued
 * series (counters, bytes) and fixed-decimal series (51.234, 0.12) become integers coded as deltas;
 * anything else is Gorilla XOR. Decoding always gives back the exact timestamps and bit-identical
 * doubles (NaN payloads and -0.0 included). The iterator checks every field and never reads past
 * the buffer: a truncated or damaged chunk yields FP_CHUNK_E_CORRUPT, never a crash.
 *
 * The format and the reasons behind it are described at the top of chunk.c.
 *
 * Threads: an encoder or iterator belongs to one thread; chunk bytes are immutable once finished
 * and may be read by any number of iterators at once. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Version byte written first in every chunk. A chunk of another version is refused with
 * FP_CHUNK_E_FORMAT. If you change anything a decoder sees, bump this. */
#define FP_CHUNK_FORMAT 1

/* Hard upper bound on samples per chunk: 80 minutes at the probe's 10 s cadence. The encoder's
 * buffers and the iterator's validation are sized by it (see chunk.c for why 480). */
#define FP_CHUNK_MAX_SAMPLES 480

/* Default byte cap of a finished chunk: a chunk plus a key of up to 46 bytes stays below LMDB's
 * largest in-page node on 4 KiB pages (2038 bytes, 8 of them node header), so a chunk never
 * takes the overflow-page path. */
#define FP_CHUNK_MAX_BYTES 1984

/* Smallest byte cap accepted: the header plus one sample of any value. */
#define FP_CHUNK_MIN_BYTES 32

/* Bytes of the fixed header that fp_chunk_info reads. */
#define FP_CHUNK_HEADER_BYTES 13

/* Outcomes a caller must act on (positive; negative values are -errno). */
enum {
    FP_CHUNK_E_FULL = 1, /**< append: the chunk is at its sample or byte cap; the sample was not
                              added. Finish this chunk and append the sample to a fresh one. */
    FP_CHUNK_E_END,      /**< iterator: no more samples */
    FP_CHUNK_E_CORRUPT,  /**< the bytes are not a valid chunk (truncated, damaged, bad field) */
    FP_CHUNK_E_FORMAT,   /**< a chunk of an unknown format version (written by a newer fleetpulse) */
};

/* How a chunk stores its values (the header's kind byte; part of the format). */
enum fp_chunk_kind {
    FP_CHUNK_KIND_XOR = 1,     /**< Gorilla XOR of the IEEE-754 bits: any double */
    FP_CHUNK_KIND_INT = 2,     /**< every value an integer (|v| <= 2^53): deltas of integers */
    FP_CHUNK_KIND_DECIMAL = 3, /**< every value m / 10^d for integers m, 1 <= d <= 6: deltas of m */
};

/* Flags for struct fp_chunk_enc_opts. */
enum {
    FP_CHUNK_ENC_FORCE_XOR = 1u << 0, /**< always use FP_CHUNK_KIND_XOR (baselines, tests) */
};

/* Encoder limits, with safe defaults from fp_chunk_enc_opts_default. */
struct fp_chunk_enc_opts {
    size_t max_samples; /**< 1 .. FP_CHUNK_MAX_SAMPLES; default FP_CHUNK_MAX_SAMPLES */
    size_t max_bytes;   /**< FP_CHUNK_MIN_BYTES .. 65535; default FP_CHUNK_MAX_BYTES */
    unsigned flags;     /**< FP_CHUNK_ENC_* */
};

/* A chunk's header, as fp_chunk_info reads it. */
struct fp_chunk_info {
    enum fp_chunk_kind kind;
    unsigned decimals;   /**< d for FP_CHUNK_KIND_DECIMAL, else 0 */
    size_t n_samples;    /**< 1 .. FP_CHUNK_MAX_SAMPLES */
    int64_t first_ts_ms; /**< timestamp of the first sample */
};

struct fp_chunk_enc;

/* Fills *ret with the defaults. */
void fp_chunk_enc_opts_default(struct fp_chunk_enc_opts *ret);

/* Creates an empty encoder. opts may be NULL for the defaults (borrowed for the call). It holds
 * about 58 bytes per max_samples (28 KiB by default), so reuse one per sealing thread rather than
 * keeping one per series. Returns 0 and *ret (new: fp_chunk_enc_destroy), -EINVAL for limits out
 * of range, or -ENOMEM. */
int fp_chunk_enc_new(const struct fp_chunk_enc_opts *opts, struct fp_chunk_enc **ret);

/* Destroys the encoder; accepts NULL and nulls *e. */
void fp_chunk_enc_destroy(struct fp_chunk_enc **e);

/* Empties the encoder for the next chunk, keeping its options and memory. */
void fp_chunk_enc_reset(struct fp_chunk_enc *e);

/* Appends one sample. ts_ms must be greater than the previous sample's (sort and deduplicate
 * before appending). Any double is accepted. Returns 0, FP_CHUNK_E_FULL (the sample would exceed
 * max_samples or max_bytes; nothing changed), or -EINVAL (ts_ms not after the last sample;
 * nothing changed). */
int fp_chunk_enc_append(struct fp_chunk_enc *e, int64_t ts_ms, double value);

/* Samples appended since creation or the last reset. */
size_t fp_chunk_enc_count(const struct fp_chunk_enc *e);

/* Encodes the samples appended so far into buf (size bytes, borrowed). *ret_len receives the
 * chunk's length, which is at most max_bytes; on -ENOBUFS it receives the size needed (buf may
 * then be NULL with size 0 to ask). The encoder keeps its samples: reset it for the next chunk.
 * Returns 0, -ENOBUFS, or -ENODATA (no samples). */
int fp_chunk_enc_finish(struct fp_chunk_enc *e, uint8_t *buf, size_t size, size_t *ret_len);

/* Reads and checks the fixed header of the chunk in buf (len bytes, borrowed) into *ret; the rest
 * of the chunk is checked by iterating. Returns 0, FP_CHUNK_E_FORMAT, FP_CHUNK_E_CORRUPT, or
 * -EINVAL (NULL arguments). */
int fp_chunk_info(const uint8_t *buf, size_t len, struct fp_chunk_info *ret);

/* The fixed-decimal test the encoder uses, for other writers of scaled integers (the store's
 * head, storage/head.c): finds m with fp_chunk_decimal_value(m, d) bit-identical to v and
 * |m| <= 2^53, for d <= 6. -0.0, NaN and +-Inf never fit. */
bool fp_chunk_decimal_fit(double v, unsigned d, int64_t *ret_m);
double fp_chunk_decimal_value(int64_t m, unsigned d);

/* --- decoding -------------------------------------------------------------------------------- */

/* One integer stream being decoded (timestamps, or scaled values). Private to chunk.c. */
struct fp_chunk_istream {
    uint8_t order;   /**< 0: x - x0, 1: deltas, 2: deltas of deltas */
    uint8_t k;       /**< Rice parameter, or 63: every residual is zero */
    uint8_t lexp;    /**< unary escape after 1 << lexp one-bits */
    uint64_t bias;   /**< added back to each residual */
    uint64_t seed;   /**< order 2: the first delta */
    uint64_t x0;     /**< the first element */
    uint64_t prev;   /**< the last element decoded */
    uint64_t prev_d; /**< the last delta decoded */
};

/* A forward iterator over one chunk; embed it and treat the fields as private. It borrows the
 * chunk bytes, which must stay valid and unchanged while it is used. Needs no cleanup. */
struct fp_chunk_iter {
    const uint8_t *buf; /**< the chunk */
    size_t len;         /**< its length in bytes */
    size_t pos_bits;    /**< bit reader position in buf */
    size_t n;           /**< samples in the chunk */
    size_t i;           /**< samples returned so far */
    int status;         /**< 0, or the sticky FP_CHUNK_E_END / FP_CHUNK_E_CORRUPT */
    uint8_t kind;       /**< enum fp_chunk_kind */
    uint8_t decimals;   /**< DECIMAL: d */
    uint8_t xor_lead;   /**< XOR: leading zeros of the current window, 0xff before the first */
    uint8_t xor_trail;  /**< XOR: trailing zeros of the current window */
    int64_t ts_ms;      /**< the sample returned last */
    uint64_t value_bits; /**< its value's IEEE-754 bits */
    int64_t m0;         /**< INT/DECIMAL: first scaled value */
    uint64_t g;         /**< INT/DECIMAL: common divisor of m - m0 */
    struct fp_chunk_istream ts;  /**< timestamps */
    struct fp_chunk_istream val; /**< INT/DECIMAL: (m - m0) / g */
};

/* Starts iterating over the chunk in buf (len bytes, borrowed until the iterator is last used).
 * Checks the header and the stream parameters. Returns 0, FP_CHUNK_E_FORMAT, FP_CHUNK_E_CORRUPT,
 * or -EINVAL (NULL arguments); on failure later calls on it return FP_CHUNK_E_CORRUPT. */
int fp_chunk_iter_init(struct fp_chunk_iter *it, const uint8_t *buf, size_t len);

/* Decodes the next sample into *ret_ts_ms and *ret_value (either may be NULL). The last sample is
 * only handed out once the whole chunk has checked out, so a damaged chunk never ends quietly.
 * Returns 0, FP_CHUNK_E_END after the last sample, or FP_CHUNK_E_CORRUPT; both are sticky. */
int fp_chunk_iter_next(struct fp_chunk_iter *it, int64_t *ret_ts_ms, double *ret_value);

/* Decodes the whole chunk in buf (len bytes) into ret_ts_ms[] and ret_values[], each with room
 * for FP_CHUNK_MAX_SAMPLES: the same checks as iterating to the end, in one tight loop, for
 * readers that want every sample (a chunk is at most a few hundred). Returns the number of
 * samples (>= 1), FP_CHUNK_E_FORMAT, FP_CHUNK_E_CORRUPT, or -EINVAL (NULL arguments). */
int fp_chunk_decode(const uint8_t *buf, size_t len, int64_t *ret_ts_ms, double *ret_values);

/* Positions the iterator on the first sample with ts >= ts_ms, from the start of the chunk
 * whatever was read before, and returns that sample like fp_chunk_iter_next; iteration goes on
 * after it. Returns 0, FP_CHUNK_E_END (every sample is older; the iterator is at the end), or
 * FP_CHUNK_E_CORRUPT. */
int fp_chunk_iter_seek(struct fp_chunk_iter *it, int64_t ts_ms, int64_t *ret_ts_ms,
                       double *ret_value);

/* A message for an fp_chunk_* result: module codes and -errno alike. Static string. */
const char *fp_chunk_strerror(int code);
