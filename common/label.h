/* A label pair as every component passes it: borrowed strings, no protobuf, no LMDB. */
#pragma once

#include <stddef.h>

struct fp_label {
    const char *name;  /**< borrowed, NUL-terminated */
    const char *value; /**< borrowed, NUL-terminated */
};
