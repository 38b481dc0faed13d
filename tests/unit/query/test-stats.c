/* Unit test for query/stats: quantiles of per-device values and the Mann-Whitney U test, against
 * values worked out by hand (the arithmetic is in the comments). */
#include "test.h"

#include <errno.h>

#include "stats.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_quantiles(void)
{
    static const double one[] = {7};
    static const double four[] = {1, 2, 3, 4};
    static const double ten[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 100};

    check_double(fp_stats_quantile_sorted(one, 1, 0), 7);
    check_double(fp_stats_quantile_sorted(one, 1, 0.5), 7);
    check_double(fp_stats_quantile_sorted(one, 1, 1), 7);
    /* Position 0.5 * 3 = 1.5: halfway between 2 and 3. */
    check_double(fp_stats_quantile_sorted(four, 4, 0.5), 2.5);
    check_double(fp_stats_quantile_sorted(four, 4, 0), 1);
    check_double(fp_stats_quantile_sorted(four, 4, 1), 4);
    /* Position 0.95 * 9 = 8.55: 9 + 0.55 * (100 - 9) = 59.05 (up to rounding). */
    check_near(fp_stats_quantile_sorted(ten, 10, 0.95), 59.05, 1e-9);
    /* Position 0.5 * 9 = 4.5: 5.5. */
    check_double(fp_stats_quantile_sorted(ten, 10, 0.5), 5.5);
    check(isnan(fp_stats_quantile_sorted(four, 0, 0.5)));
    check(isnan(fp_stats_quantile_sorted(four, 4, 1.5)));
    check(isnan(fp_stats_quantile_sorted(four, 4, NAN)));
}

static void test_mann_whitney(void)
{
    struct fp_mwu res;

    /* a = {1, 2, 3}, b = {4, 5, 6}: b takes ranks 4, 5, 6, R_b = 15, U_b = 15 - 3 * 4 / 2 = 9 (all
     * nine pairs). mu = 4.5, sigma^2 = 9 / 12 * 7 = 5.25 (no ties), z = (4.5 - 0.5) / sqrt(5.25) =
     * 1.74574312188794, p = erfc(z / sqrt 2) = 0.0808555983700523. */
    {
        static const double a[] = {3, 1, 2}, b[] = {6, 4, 5}; /* unsorted on purpose */
        check_int(fp_stats_mann_whitney(a, N(a), b, N(b), &res), 0);
        check_double(res.u_b, 9);
        check_near(res.z, 1.74574312188794, 1e-12);
        check_near(res.p, 0.0808555983700523, 1e-12);
        /* Swapped: U_b = 0, z negative, same p. */
        check_int(fp_stats_mann_whitney(b, N(b), a, N(a), &res), 0);
        check_double(res.u_b, 0);
        check_near(res.z, -1.74574312188794, 1e-12);
        check_near(res.p, 0.0808555983700523, 1e-12);
    }

    /* With ties: a = {1, 2, 2, 3}, b = {2, 3, 4, 5}. Pooled: 1 a | 2 a a b | 3 a b | 4 b | 5 b;
     * ranks 1 | 3 3 3 | 5.5 5.5 | 7 | 8. R_b = 3 + 5.5 + 7 + 8 = 23.5, U_b = 23.5 - 10 = 13.5.
     * Ties: t = 3 and t = 2, sum(t^3 - t) = 24 + 6 = 30. sigma^2 = 16 / 12 * (9 - 30 / 56) =
     * 11.2857142857143; z = (5.5 - 0.5) / sqrt(11.2857142857143) = 1.48835139446897;
     * p = 0.136658247738148. */
    {
        static const double a[] = {1, 2, 2, 3}, b[] = {2, 3, 4, 5};
        check_int(fp_stats_mann_whitney(a, N(a), b, N(b), &res), 0);
        check_double(res.u_b, 13.5);
        check_near(res.z, 1.48835139446897, 1e-12);
        check_near(res.p, 0.136658247738148, 1e-12);
    }

    /* Every value equal: no spread, p = 1 (the variance formula would divide 0 by 0). */
    {
        static const double a[] = {5, 5, 5}, b[] = {5, 5};
        check_int(fp_stats_mann_whitney(a, N(a), b, N(b), &res), 0);
        check_double(res.u_b, 3);
        check_double(res.z, 0);
        check_double(res.p, 1);
    }

    /* U exactly at its mean: the continuity correction stops at 0, p = 1. a = {1, 4}, b = {2, 3}:
     * R_b = 2 + 3 = 5, U_b = 5 - 3 = 2 = mu. */
    {
        static const double a[] = {1, 4}, b[] = {2, 3};
        check_int(fp_stats_mann_whitney(a, N(a), b, N(b), &res), 0);
        check_double(res.u_b, 2);
        check_double(res.z, 0);
        check_double(res.p, 1);
    }

    /* A clear shift with more devices: 20 values 100..119 against 20 values 80..99 (b 20% lower
     * in the middle). U_b = 0, mu = 200, sigma^2 = 400 / 12 * 41 = 1366.66...; z =
     * -(200 - 0.5) / 36.9684550213 = -5.39641..., p far below 0.01. */
    {
        double a[20], b[20];
        for (int i = 0; i < 20; i++) {
            a[i] = 100 + i;
            b[i] = 80 + i;
        }
        check_int(fp_stats_mann_whitney(a, 20, b, 20, &res), 0);
        check_double(res.u_b, 0);
        check_near(res.z, -199.5 / sqrt(400.0 / 12 * 41), 1e-12);
        check_near(res.p, erfc(199.5 / sqrt(400.0 / 12 * 41) / sqrt(2.0)), 1e-18);
        check(res.p < 1e-6);
    }

    /* Refusals. */
    {
        static const double a[] = {1, 2}, bad[] = {1, NAN};
        check_int(fp_stats_mann_whitney(a, 0, a, 2, &res), -EINVAL);
        check_int(fp_stats_mann_whitney(a, 2, a, 0, &res), -EINVAL);
        check_int(fp_stats_mann_whitney(a, 2, bad, 2, &res), -EINVAL);
        check_int(fp_stats_mann_whitney(bad, 2, a, 2, &res), -EINVAL);
    }
}

int main(void)
{
    test_quantiles();
    test_mann_whitney();
    fp_test_end();
}
