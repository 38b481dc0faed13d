/* Bounded reads of procfs and sysfs files under an injected root, and the small text helpers the
 * samplers share. Files are read with open/read rather than stdio: /proc reports size 0, a sysfs
 * attribute's error (EAGAIN, ENODATA) must reach the caller as -errno, and no FILE buffer needs
 * allocating per read. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"
#include "sources-internal.h"

int fp_source_path(char *buf, size_t size, const char *root, const char *fmt, ...)
{
    va_list ap;
    int n, m;

    assert(size > 0);
    n = snprintf(buf, size, "%s/", root);
    if (n < 0 || (size_t)n >= size)
        goto too_long;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= size - (size_t)n)
        goto too_long;
    return 0;

too_long:
    buf[0] = '\0';
    return -ENAMETOOLONG;
}

static ssize_t read_retry(int fd, char *p, size_t n)
{
    ssize_t r;

    do
        r = read(fd, p, n);
    while (r < 0 && errno == EINTR);
    return r;
}

int fp_source_read_file(const char *path, char *buf, size_t size, size_t *ret_len)
{
    size_t len = 0;
    int fd, r = 0;

    assert(size > 0);
    /* O_NONBLOCK: a FIFO planted where a file should be must not hang the probe. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;

    for (;;) {
        ssize_t n;

        if (len == size - 1) {
            char extra;

            n = read_retry(fd, &extra, 1);
            if (n < 0) {
                r = -errno;
                goto out;
            }
            if (n > 0) {
                /* Hand out whole lines only, so a cut number never parses as a smaller one. */
                char *nl = memrchr(buf, '\n', len);

                len = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
                r = FP_SOURCE_E_TRUNCATED;
            }
            break;
        }
        n = read_retry(fd, buf + len, size - 1 - len);
        if (n < 0) {
            r = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret_len = len;

out:
    (void)close(fd);
    if (r < 0)
        buf[0] = '\0';
    return r;
}

int fp_source_read_string(const char *path, char *buf, size_t size)
{
    size_t len;
    char *s;
    int r;

    r = fp_source_read_file(path, buf, size, &len);
    if (r < 0)
        return r;
    if (r == FP_SOURCE_E_TRUNCATED) {
        buf[0] = '\0';
        return -EFBIG;
    }
    s = fp_source_trim(buf);
    memmove(buf, s, strlen(s) + 1);
    return 0;
}

int fp_source_read_i64(const char *path, int64_t *ret)
{
    char buf[FP_SOURCE_MAX_VALUE_BYTES];
    int r;

    r = fp_source_read_string(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    return fp_parse_i64(buf, ret);
}

int fp_source_read_u64(const char *path, uint64_t *ret)
{
    char buf[FP_SOURCE_MAX_VALUE_BYTES];
    int r;

    r = fp_source_read_string(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    return fp_parse_u64(buf, ret);
}

char *fp_source_trim(char *s)
{
    size_t len;

    while (isspace((unsigned char)*s))
        s++;
    len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

char *fp_source_next_line(char **cursor)
{
    char *line = *cursor, *nl;

    if (line == NULL || *line == '\0')
        return NULL;
    nl = strchr(line, '\n');
    if (nl != NULL) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}

size_t fp_source_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return n;
        if (n == max)
            return max + 1;
        fields[n++] = p;
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
}

int fp_source_scandir(const char *path, int (*filter)(const struct dirent *),
                      struct dirent ***ret_list, size_t *ret_dropped)
{
    struct dirent **list = NULL;
    int n;

    n = scandir(path, &list, filter, versionsort);
    if (n < 0)
        return -errno;
    *ret_dropped = 0;
    if (n > FP_SOURCE_MAX_DIR_ENTRIES) {
        for (int i = FP_SOURCE_MAX_DIR_ENTRIES; i < n; i++)
            free(list[i]);
        *ret_dropped = (size_t)(n - FP_SOURCE_MAX_DIR_ENTRIES);
        n = FP_SOURCE_MAX_DIR_ENTRIES;
    }
    *ret_list = list;
    return n;
}

void fp_source_scandir_free(struct dirent ***list, int n)
{
    if (list == NULL || *list == NULL)
        return;
    for (int i = 0; i < n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
}

int fp_source_name_match(const char *s, const char *prefix, const char *suffix)
{
    size_t plen = strlen(prefix);
    const char *p;

    if (strncmp(s, prefix, plen) != 0)
        return 0;
    p = s + plen;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    return strcmp(p, suffix) == 0;
}
