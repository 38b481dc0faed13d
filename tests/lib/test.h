/* A tiny test harness: each check prints file:line and the failed expression, and the test exits
 * non-zero at the end (or at once for fp_assert). Checks stay live in release builds. */
#pragma once

#undef NDEBUG

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fp_test_failures;

#define FP_TEST_FAIL(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        fp_test_failures++;                                                                        \
    } while (0)

/* Non-fatal checks: the test goes on and reports every failure. */
#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FP_TEST_FAIL("check failed: %s", #cond);                                               \
    } while (0)

#define check_int(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            FP_TEST_FAIL("%s == %lld, expected %s == %lld", #a, a_, #b, b_);                      \
    } while (0)

#define check_str(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            FP_TEST_FAIL("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)",                  \
                         b_ ? b_ : "(null)");                                                      \
    } while (0)

/* Doubles compared exactly unless a tolerance is given: values that went through the pipeline
 * must come back bit for bit. */
#define check_double(a, b)                                                                         \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(a_ == b_))                                                                           \
            FP_TEST_FAIL("%s == %.17g, expected %.17g", #a, a_, b_);                               \
    } while (0)

#define check_near(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            FP_TEST_FAIL("%s == %.17g, expected %.17g +- %g", #a, a_, b_, (double)(tol));          \
    } while (0)

/* Fatal: stop this test now (later checks would only cascade). */
#define fp_assert(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            FP_TEST_FAIL("assertion failed: %s", #cond);                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Ends main: 0 when every check passed. */
#define fp_test_end()                                                                              \
    do {                                                                                           \
        if (fp_test_failures > 0)                                                                  \
            fprintf(stderr, "%d check(s) failed\n", fp_test_failures);                             \
        return fp_test_failures > 0 ? 1 : 0;                                                       \
    } while (0)

/* The source tree's test fixtures, set by meson through FP_FIXTURES_DIR. */
#ifndef FP_FIXTURES_DIR
#error "tests must be built with -DFP_FIXTURES_DIR=..."
#endif
