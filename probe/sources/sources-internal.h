/* Helpers shared by the samplers in probe/sources/: bounded file reads under an injected root,
 * line and field splitting, directory scans, and the extern declarations behind fp_samplers[]. */
#pragma once

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

/* The most any sampler reads from one file. /proc and /sys report size 0, so nothing tells us the
 * size up front; 64 KiB holds every file we parse (the lines we want come first in /proc/stat,
 * whose interrupt lines can run past it on big machines). */
#define FP_SOURCE_MAX_FILE_BYTES (64 * 1024)

/* Enough for one sysfs attribute (a number, a chip name, a sensor label). */
#define FP_SOURCE_MAX_VALUE_BYTES 128

/* Bound on the entries one directory scan hands out (thermal zones, hwmon chips, sensors). */
#define FP_SOURCE_MAX_DIR_ENTRIES 1024

/* fp_source_read_file: the file was longer than the buffer; it holds the whole lines that fit. */
#define FP_SOURCE_E_TRUNCATED 1

/* Joins root, "/" and the printf-formatted relative path into buf of size bytes. Returns 0, or
 * -ENAMETOOLONG when it does not fit (buf then holds an empty string). */
int fp_source_path(char *buf, size_t size, const char *root, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads the file at path until EOF into buf (size > 0 bytes), NUL-terminated; *ret_len gets the
 * length. Returns 0, FP_SOURCE_E_TRUNCATED (buf cut after its last newline), or -errno from
 * open/read (-ENOENT when absent; sysfs attributes may fail with e.g. -EAGAIN, -ENODATA). */
int fp_source_read_file(const char *path, char *buf, size_t size, size_t *ret_len);

/* Reads a one-value file into buf (size bytes) with surrounding whitespace trimmed. Returns 0,
 * -EFBIG when it does not fit, or -errno. */
int fp_source_read_string(const char *path, char *buf, size_t size);

/* Read a one-number file, strictly (common/parse.h). Return 0 and set *ret, -EINVAL / -ERANGE
 * for a malformed number, -EFBIG for an oversized file, or -errno. *ret is untouched on failure. */
int fp_source_read_i64(const char *path, int64_t *ret);
int fp_source_read_u64(const char *path, uint64_t *ret);

/* Trims leading and trailing whitespace in place; returns the start of the trimmed string. */
char *fp_source_trim(char *s);

/* Splits a NUL-terminated buffer into lines in place: returns the next line (without its '\n')
 * and advances *cursor, or NULL at the end. */
char *fp_source_next_line(char **cursor);

/* Splits line in place at whitespace into at most max fields. Returns the number of fields
 * found, which is max + 1 when there were more (fields past max are not stored). */
size_t fp_source_split(char *line, char **fields, size_t max);

/* Lists the entries of directory path that filter accepts, in version order (thermal_zone2
 * before thermal_zone10), at most FP_SOURCE_MAX_DIR_ENTRIES; *ret_dropped counts the rest.
 * Returns the number of entries and *ret_list (new: free with fp_source_scandir_free), or -errno
 * (-ENOENT when the directory is absent). */
int fp_source_scandir(const char *path, int (*filter)(const struct dirent *),
                      struct dirent ***ret_list, size_t *ret_dropped);

/* Frees a list from fp_source_scandir; accepts NULL and nulls *list. */
void fp_source_scandir_free(struct dirent ***list, int n);

/* True when s is prefix followed by one or more digits and then suffix ("" for none). */
int fp_source_name_match(const char *s, const char *prefix, const char *suffix);

/* The samplers, in registry.c's order. */
extern const struct fp_sampler_ops fp_sampler_memory;
extern const struct fp_sampler_ops fp_sampler_pressure;
extern const struct fp_sampler_ops fp_sampler_thermal;
extern const struct fp_sampler_ops fp_sampler_hwmon;
extern const struct fp_sampler_ops fp_sampler_cpu;
extern const struct fp_sampler_ops fp_sampler_llama_server; /* llama_server.c */
extern const struct fp_sampler_ops fp_sampler_canary;       /* canary.c */
extern const struct fp_sampler_ops fp_sampler_inproc; /* inproc-loader.c: loads inproc.c's module */
