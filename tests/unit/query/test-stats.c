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

/* Stratification as compare?strata= and the cohort_regression rule use it. Four strata:
 *   fast:   a {100, 110, 90}, b {80, 88}: median of all 90, of a 100
 *   slow:   a {10, 12}, b {8}:            median of all 10, of a 11
 *   only-a: a {50, 60}:                   no b, left out
 *   zero:   a {0, 0}, b {0}:              median 0, left out
 * cmp (value / median of all): a {1.111, 1.222, 1, 1, 1.2}, b {0.889, 0.978, 0.8};
 * eff (value / median of a):   a {1, 1.1, 0.9, 0.909, 1.091}, b {0.8, 0.88, 0.727}:
 * medians 1 and 0.8, a change of -20% although the pooled raw medians are 90 and 80. */
static void test_stratify(void)
{
    struct fp_stats_member m[] = {
        {"slow", 8, true},      {"fast", 100, false}, {"zero", 0, false}, {"only-a", 50, false},
        {"fast", 80, true},     {"slow", 10, false},  {"fast", 110, false}, {"zero", 0, true},
        {"only-a", 60, false},  {"fast", 88, true},   {"slow", 12, false}, {"fast", 90, false},
        {"zero", 0, false},
    };
    struct fp_stats_split s = {0};
    struct fp_mwu res;

    check_int(fp_stats_stratify(m, N(m), true, &s), 0);
    check_int((int)s.strata, 2);
    check_int((int)s.excluded, 5);
    check_int((int)s.raw_a.n, 5);
    check_int((int)s.raw_b.n, 3);
    check_int((int)s.cmp_a.n, 5);
    check_int((int)s.eff_b.n, 3);
    check_double(fp_stats_median(&s.raw_a), 90);    /* {10, 12, 90, 100, 110} */
    check_double(fp_stats_median(&s.raw_b), 80);    /* {8, 80, 88} */
    check_double(fp_stats_median(&s.eff_a), 1);     /* 90 / 90 ... 100 / 100 */
    check_near(fp_stats_median(&s.eff_b), 0.8, 1e-15);
    check_near(fp_stats_median(&s.cmp_b), 80.0 / 90, 1e-15); /* {0.8, 80/90, 88/90} */
    check_near(s.cmp_b.v[1], 80.0 / 90, 1e-15);             /* sorted by fp_stats_median */
    check_near(fp_stats_median(&s.cmp_a), 100.0 / 90, 1e-15); /* {1, 1, 1.111, 1.2, 1.222} */
    check_near(s.cmp_a.v[4], 110.0 / 90, 1e-15);
    /* Every b below every a: U_b = 0, mu = 7.5; one tie, 1 (a) twice, sum(t^3 - t) = 6,
     * sigma^2 = 15 / 12 * (9 - 6 / 56) = 11.116071428571427, z = -(7.5 - 0.5) / sigma. */
    check_int(fp_stats_mann_whitney(s.cmp_a.v, s.cmp_a.n, s.cmp_b.v, s.cmp_b.n, &res), 0);
    check_double(res.u_b, 0);
    check_near(res.z, -2.0995314068891795, 1e-12);
    check_near(res.p, 0.035770082232490806, 1e-12);
    fp_stats_split_fini(&s);
    check(s.raw_a.v == NULL && s.raw_a.n == 0);

    /* Without strata: one group, nothing left out, every view the raw values. */
    check_int(fp_stats_stratify(m, N(m), false, &s), 0);
    check_int((int)s.strata, 1);
    check_int((int)s.excluded, 0);
    check_int((int)s.raw_a.n, 9);
    check_int((int)s.raw_b.n, 4);
    check_double(fp_stats_median(&s.raw_b), 44); /* {0, 8, 80, 88} */
    check_double(fp_stats_median(&s.eff_b), 44);
    check_double(fp_stats_median(&s.cmp_a), 50); /* {0, 0, 10, 12, 50, 60, 90, 100, 110} */
    fp_stats_split_fini(&s);

    /* Nothing to split. */
    check_int(fp_stats_stratify(m, 0, true, &s), 0);
    check_int((int)(s.strata + s.excluded + s.raw_a.n + s.raw_b.n), 0);
    fp_stats_split_fini(&s);
}

int main(void)
{
    test_quantiles();
    test_mann_whitney();
    test_stratify();
    fp_test_end();
}
