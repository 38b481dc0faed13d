/* Small statistics over per-device values for cohort comparison: quantiles of a sample and the
 * Mann-Whitney U test (two-sided, normal approximation with tie and continuity correction). */
#pragma once

#include <stddef.h>

/* The q-quantile of n sorted values (ascending, finite), q in [0, 1], interpolated linearly
 * between the two nearest ranks (position q * (n - 1); Hyndman and Fan's type 7, the default of
 * R and numpy): the median of {1, 2, 3, 4} is 2.5. Returns NaN when n == 0 or q is outside
 * [0, 1]. */
double fp_stats_quantile_sorted(const double *sorted, size_t n, double q);

/* Result of fp_stats_mann_whitney. */
struct fp_mwu {
    double u_b; /**< U of b: pairs (a_i, b_j) with b_j > a_i, plus half the ties; in
                     [0, n_a * n_b]. u_b / (n_a * n_b) estimates P(b > a) */
    double z;   /**< standardised U_b, continuity-corrected toward 0; 0 when every value ties */
    double p;   /**< two-sided p value from the normal approximation; 1 when every value ties */
};

/* Mann-Whitney U test of a against b (both borrowed, any order, finite values; not modified).
 * Ranks the pooled values (ties get their mean rank), U_b = R_b - n_b (n_b + 1) / 2, and
 * z = (|U_b - n_a n_b / 2| - 0.5) / sigma (0 when that is negative), with
 * sigma^2 = n_a n_b / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))) over the tie groups t, n =
 * n_a + n_b; p = erfc(|z| / sqrt 2). This matches scipy.stats.mannwhitneyu with
 * method="asymptotic" and use_continuity=True. The approximation is fair from about 8 values per
 * side; below that p is indicative only.
 * Returns 0 and *ret; -EINVAL when n_a or n_b is 0 or a value is not finite; -ENOMEM. */
int fp_stats_mann_whitney(const double *a, size_t n_a, const double *b, size_t n_b,
                          struct fp_mwu *ret);
