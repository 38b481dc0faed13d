/* Alert rules: the JSON rules file of fleetpulse-query (--rules FILE) parsed and validated into
 * plain structs that the alert engine (alert.h) evaluates. The format is documented, field by
 * field, in docs/alerts.md; this header is its in-memory form. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "label.h"
#include "store.h"

/* Most rules in one file, matchers and group-by labels per rule, and static labels or
 * annotations per rule: a rules file is written by people, and these bounds keep one evaluation
 * round small. */
#define FP_RULES_MAX 1000
#define FP_RULE_MATCHERS_MAX 16
#define FP_RULE_BY_MAX 8
#define FP_RULE_PAIRS_MAX 32

/* Longest rule name, label value or annotation text, in bytes. */
#define FP_RULE_NAME_MAX 128
#define FP_RULE_VALUE_MAX 1024
#define FP_RULE_TEXT_MAX 4096

/* Longest window a rule may read: every evaluation round reads it again, and the query API
 * bounds its ranges the same way (FP_QUERY_MAX_RANGE_MS_DEFAULT). */
#define FP_RULE_WINDOW_MAX_MS (31LL * 24 * 3600 * 1000)

/* Largest rules file read, in bytes. */
#define FP_RULES_FILE_MAX (4 * 1024 * 1024)

enum fp_rule_kind {
    FP_RULE_THRESHOLD = 1,     /**< an aggregate over a window compared with a value */
    FP_RULE_DEVICE_SILENT,     /**< a device in state silent (query/state.h) */
    FP_RULE_DEVICE_STALE,      /**< a device in state stale or silent */
    FP_RULE_BELOW_COHORT,      /**< a device below a fraction of its cohort's median */
    FP_RULE_COHORT_REGRESSION, /**< cohort b worse than cohort a, and significantly so */
};

/* Comparison of a threshold rule: value OP threshold. */
enum fp_rule_op {
    FP_RULE_GT = 1,
    FP_RULE_GE,
    FP_RULE_LT,
    FP_RULE_LE,
    FP_RULE_EQ,
    FP_RULE_NE,
};

/* One rule. Every string and array is owned by the rule set it belongs to. */
struct fp_rule {
    char *name; /**< unique in the file; the alerts' "alertname" label */
    enum fp_rule_kind kind;
    char *severity;          /**< the alerts' "severity" label */
    struct fp_label *labels; /**< static labels added to every alert, sorted by name */
    size_t n_labels;
    struct fp_label *annotations; /**< templates ({{ $labels.X }}, {{ $value }}), sorted */
    size_t n_annotations;
    int64_t for_ms; /**< how long the condition holds before the alert fires; 0: at once */

    /* Series selection (threshold, below_cohort, cohort_regression), and device selection
     * against "device" and the identity pairs (device_silent, device_stale). */
    char *metric;                /**< NULL for the device kinds */
    struct fp_matcher *matchers; /**< strings owned by the rule set */
    size_t n_matchers;
    int64_t window_ms;  /**< samples with now - window < ts <= now */
    enum fp_agg_fn agg; /**< the reduction over the window (per device for cohorts) */
    double q;           /**< FP_AGG_QUANTILE: the quantile */
    char *agg_name;     /**< as written ("avg", "p95", ...) */

    /* threshold */
    enum fp_rule_op op;
    double threshold;
    /* threshold: group-by labels (none: one fleet-wide value); below_cohort: the cohort labels;
     * cohort_regression: the strata ("strata" in the file; none: no normalisation) */
    char **by;
    size_t n_by;

    /* below_cohort */
    double fraction; /**< fires below fraction * cohort median, 0 < fraction < 1 */
    /* below_cohort: least devices in a cohort; cohort_regression: in each of a and b */
    size_t min_devices;

    /* cohort_regression */
    char *label;          /**< the label that splits the two cohorts ("by" in the file) */
    char *a;              /**< baseline value of label */
    char *b;              /**< candidate value of label */
    bool higher_is_worse; /**< "worse": "higher" (latency) or "lower" (throughput, default) */
    double min_change;    /**< relative change of b's median vs a's, in the worse direction */
    double alpha;         /**< significance: fires only with the two-sided p < alpha */
};

/* A parsed rules file. */
struct fp_ruleset {
    struct fp_rule *rules; /**< in file order */
    size_t n_rules;
    char *path; /**< the file it came from; NULL when parsed from text */
};

/* Parses and validates the rules in text (len bytes, need not be NUL-terminated).
 * source: names the input in error messages (the file's path), borrowed.
 * ret: out, new (fp_ruleset_destroy), set only on success.
 * err: out, on failure one line naming the source, the rule (by name, and position counted from
 * 1) and the field, with what was expected (err may be NULL).
 * Returns 0, -EINVAL for anything invalid, or -ENOMEM. */
int fp_ruleset_parse(const char *text, size_t len, const char *source, struct fp_ruleset **ret,
                     char *err, size_t err_size);

/* Reads the file at path and parses it as fp_ruleset_parse does. Returns 0, -EINVAL, -ENOMEM, or
 * -errno when the file cannot be read (-EFBIG over FP_RULES_FILE_MAX); err as for parse. */
int fp_ruleset_load(const char *path, struct fp_ruleset **ret, char *err, size_t err_size);

/* The rule named name, or NULL. Borrowed from rs. */
const struct fp_rule *fp_ruleset_find(const struct fp_ruleset *rs, const char *name);

/* Frees a rule set; accepts NULL and *rs == NULL, and nulls *rs. */
void fp_ruleset_destroy(struct fp_ruleset **rs);

/* The name of a kind as written in the file ("threshold", ...). Static string. */
const char *fp_rule_kind_name(enum fp_rule_kind kind);

/* Renders template tmpl into a new string (free()): "{{ $value }}" becomes value (printed with
 * up to 6 significant digits, whole from 1e6 on), "{{ $labels.NAME }}" the value of NAME in labels
 * ("" when absent), "{{ $values.NAME }}" the value of NAME in values (kind-specific numbers, see
 * docs/alerts.md; "" when absent). Whitespace inside the braces is optional. labels and values:
 * borrowed, n_labels / n_values entries; values' names index values_v. Returns NULL when out of
 * memory. The template was validated when the rules were parsed. */
char *fp_rule_render(const char *tmpl, const struct fp_label *labels, size_t n_labels, double value,
                     const char *const *value_names, const double *values, size_t n_values);
