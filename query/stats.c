/* Quantiles and the Mann-Whitney U test for cohort comparison (see stats.h).
 *
 * Why Mann-Whitney and not a t test: per-device tokens/s in a fleet is not normal (a few
 * thermally throttled devices form a long tail), and a rank test is not pulled around by them.
 * Exact U distributions are only worth it for tiny cohorts; a canary is tens to thousands of
 * devices, where the normal approximation is what everyone uses. */
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double fp_stats_quantile_sorted(const double *sorted, size_t n, double q)
{
    double pos, frac;
    size_t lo;

    if (n == 0 || !(q >= 0 && q <= 1))
        return NAN;
    pos = q * (double)(n - 1);
    lo = (size_t)pos;
    if (lo >= n - 1)
        return sorted[n - 1];
    frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

/* A pooled value and which side it came from. */
struct ranked {
    double v;
    int from_b;
};

static int cmp_ranked(const void *x, const void *y)
{
    double a = ((const struct ranked *)x)->v, b = ((const struct ranked *)y)->v;

    return a < b ? -1 : a > b;
}

int fp_stats_mann_whitney(const double *a, size_t n_a, const double *b, size_t n_b,
                          struct fp_mwu *ret)
{
    size_t n = n_a + n_b;
    struct ranked *all;
    double rank_sum_b = 0, tie_term = 0, mu, var, u_b, dev;

    if (n_a == 0 || n_b == 0)
        return -EINVAL;
    for (size_t i = 0; i < n_a; i++)
        if (!isfinite(a[i]))
            return -EINVAL;
    for (size_t i = 0; i < n_b; i++)
        if (!isfinite(b[i]))
            return -EINVAL;

    all = malloc(n * sizeof(*all));
    if (all == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n_a; i++)
        all[i] = (struct ranked){a[i], 0};
    for (size_t i = 0; i < n_b; i++)
        all[n_a + i] = (struct ranked){b[i], 1};
    qsort(all, n, sizeof(*all), cmp_ranked);

    /* Ranks are 1-based; a run of t equal values at positions i..i+t-1 all get the mean rank. */
    for (size_t i = 0, t; i < n; i += t) {
        double mean_rank;

        for (t = 1; i + t < n && all[i + t].v == all[i].v; t++)
            ;
        mean_rank = (double)i + 1 + ((double)t - 1) / 2;
        for (size_t j = i; j < i + t; j++)
            if (all[j].from_b)
                rank_sum_b += mean_rank;
        tie_term += (double)t * (double)t * (double)t - (double)t;
    }
    free(all);

    u_b = rank_sum_b - (double)n_b * ((double)n_b + 1) / 2;
    mu = (double)n_a * (double)n_b / 2;
    var = (double)n_a * (double)n_b / 12 *
          (((double)n + 1) - tie_term / ((double)n * ((double)n - 1)));
    ret->u_b = u_b;
    /* n == 1 per side with equal values, or all values equal: no spread, no evidence. */
    if (!(var > 0)) {
        ret->z = 0;
        ret->p = 1;
        return 0;
    }
    dev = fabs(u_b - mu) - 0.5;
    if (dev < 0)
        dev = 0;
    ret->z = (u_b >= mu ? dev : -dev) / sqrt(var);
    ret->p = erfc(fabs(ret->z) / sqrt(2.0));
    return 0;
}

static int vec_push(struct fp_stats_vec *d, double x)
{
    if (d->n == d->cap) {
        size_t cap = d->cap == 0 ? 16 : 2 * d->cap;
        double *p = realloc(d->v, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        d->v = p;
        d->cap = cap;
    }
    d->v[d->n++] = x;
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

double fp_stats_median(struct fp_stats_vec *d)
{
    if (d->n > 1)
        qsort(d->v, d->n, sizeof(*d->v), cmp_double);
    return fp_stats_quantile_sorted(d->v, d->n, 0.5);
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const struct fp_stats_member *)a)->stratum,
                  ((const struct fp_stats_member *)b)->stratum);
}

/* Why divide and not subtract: tokens/s and latencies scale with the hardware and the model, so
 * a canary that costs 20% costs 20% of each stratum's own level; ratios make strata of different
 * speeds comparable, differences would let the fastest stratum dominate the ranks. */
int fp_stats_stratify(struct fp_stats_member *members, size_t n, bool stratified,
                      struct fp_stats_split *ret)
{
    struct fp_stats_vec all = {0}, base = {0};
    int r = 0;

    if (stratified && n > 1)
        qsort(members, n, sizeof(*members), cmp_member);
    for (size_t i = 0, j; i < n && r == 0; i = j) {
        double m_all = 1, m_a = 1;

        all.n = 0;
        base.n = 0;
        for (j = i; j < n && (!stratified || strcmp(members[j].stratum, members[i].stratum) == 0);
             j++) {
            r |= vec_push(&all, members[j].value);
            if (!members[j].is_b)
                r |= vec_push(&base, members[j].value);
        }
        if (r != 0)
            break;
        if (stratified) {
            if (base.n == 0 || base.n == all.n) {
                ret->excluded += j - i;
                continue;
            }
            m_all = fp_stats_median(&all);
            m_a = fp_stats_median(&base);
            if (!(m_all > 0 && m_a > 0)) {
                ret->excluded += j - i;
                continue;
            }
        }
        ret->strata++;
        for (size_t k = i; k < j && r == 0; k++) {
            bool b = members[k].is_b;
            double v = members[k].value;

            r |= vec_push(b ? &ret->raw_b : &ret->raw_a, v);
            r |= vec_push(b ? &ret->cmp_b : &ret->cmp_a, v / m_all);
            r |= vec_push(b ? &ret->eff_b : &ret->eff_a, v / m_a);
        }
    }
    free(all.v);
    free(base.v);
    return r != 0 ? -ENOMEM : 0;
}

void fp_stats_split_fini(struct fp_stats_split *s)
{
    free(s->raw_a.v);
    free(s->raw_b.v);
    free(s->cmp_a.v);
    free(s->cmp_b.v);
    free(s->eff_a.v);
    free(s->eff_b.v);
    memset(s, 0, sizeof(*s));
}
