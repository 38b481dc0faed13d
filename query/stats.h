/* Small statistics over per-device values for cohort comparison: quantiles of a sample and the
 * Mann-Whitney U test (two-sided, normal approximation with tie and continuity correction), and
 * the stratification that compares like with like (the compare endpoint and the alert engine's
 * cohort_regression rule share it). */
#pragma once

#include <stdbool.h>
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

/* One device's value in a two-cohort comparison, and the stratum it is compared within. */
struct fp_stats_member {
    const char *stratum; /**< borrowed; devices with equal strings share a stratum ("" for all
                              without strata) */
    double value;        /**< the device's value, finite */
    bool is_b;           /**< in cohort b (else a) */
};

/* A growing array of doubles. */
struct fp_stats_vec {
    double *v; /**< new (free()) */
    size_t n, cap;
};

/* Per-device values of a comparison, split into a and b three ways (fp_stats_stratify). */
struct fp_stats_split {
    struct fp_stats_vec raw_a, raw_b; /**< as measured (medians, p95 shown) */
    struct fp_stats_vec cmp_a, cmp_b; /**< what the Mann-Whitney test compares */
    struct fp_stats_vec eff_a, eff_b; /**< what the relative change is measured on */
    size_t strata;                    /**< strata compared (with devices in both cohorts) */
    size_t excluded;                  /**< devices left out (their stratum lacks a or b) */
};

/* Splits members (borrowed; reordered by stratum) into *ret (zeroed by the caller; free with
 * fp_stats_split_fini even on failure). Without stratified, all three views are the raw values
 * and strata is 1. Stratified, each device is compared after dividing by its stratum's median
 * over both cohorts (a scale that treats a and b alike, so the test keeps its meaning when there
 * is no difference), and the change is measured after dividing by the stratum's median of a (so
 * "b is 20% slower on every model" reads as -20% where pooling mixed models would blur it).
 * Strata without devices in both cohorts, or whose medians are not positive, are left out and
 * their devices counted in excluded. Values within a view are in no particular order.
 * Returns 0 or -ENOMEM. */
int fp_stats_stratify(struct fp_stats_member *members, size_t n, bool stratified,
                      struct fp_stats_split *ret);

/* Frees the vectors of *s and zeroes it. */
void fp_stats_split_fini(struct fp_stats_split *s);

/* Sorts d ascending and returns its median (NaN when empty). */
double fp_stats_median(struct fp_stats_vec *d);
