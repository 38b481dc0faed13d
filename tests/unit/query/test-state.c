/* Unit test for query/state: device states at the exact boundaries of their rules. */
#include "test.h"

#include <errno.h>

#include "state.h"

static void test_boundaries(void)
{
    const int64_t seen = 1732400000000, silent = 300000;

    /* Interval 10 s: stale from exactly 30 s after the last batch, silent from exactly 5 min. */
    check_int(fp_state_of(seen, seen, 10000, silent, false), FP_STATE_OK);
    check_int(fp_state_of(seen + 29999, seen, 10000, silent, false), FP_STATE_OK);
    check_int(fp_state_of(seen + 30000, seen, 10000, silent, false), FP_STATE_STALE);
    check_int(fp_state_of(seen + 299999, seen, 10000, silent, false), FP_STATE_STALE);
    check_int(fp_state_of(seen + 300000, seen, 10000, silent, false), FP_STATE_SILENT);

    /* The device's own interval: at 60 s, 179.999 s is still ok. */
    check_int(fp_state_of(seen + 179999, seen, 60000, silent, false), FP_STATE_OK);
    check_int(fp_state_of(seen + 180000, seen, 60000, silent, false), FP_STATE_STALE);

    /* Unknown interval (0 or negative): the 10 s fallback. */
    check_int(fp_state_of(seen + 29999, seen, 0, silent, false), FP_STATE_OK);
    check_int(fp_state_of(seen + 30000, seen, 0, silent, false), FP_STATE_STALE);
    check_int(fp_state_of(seen + 30000, seen, -5, silent, false), FP_STATE_STALE);
    check_int(fp_state_interval_ms(0), FP_STATE_INTERVAL_FALLBACK_MS);
    check_int(fp_state_interval_ms(2500), 2500);

    /* An interval so long that 3 intervals pass silent_after: silent comes first. */
    check_int(fp_state_of(seen + 300000, seen, 200000, silent, false), FP_STATE_SILENT);
    check_int(fp_state_of(seen + 299999, seen, 200000, silent, false), FP_STATE_OK);
    /* An absurd interval does not overflow into "stale". */
    check_int(fp_state_of(seen + 1000, seen, INT64_MAX / 2, INT64_MAX, false), FP_STATE_OK);

    /* Alerts: degraded only while the device reports. */
    check_int(fp_state_of(seen + 29999, seen, 10000, silent, true), FP_STATE_DEGRADED);
    check_int(fp_state_of(seen + 30000, seen, 10000, silent, true), FP_STATE_STALE);
    check_int(fp_state_of(seen + 300000, seen, 10000, silent, true), FP_STATE_SILENT);

    /* A last_seen ahead of now (another host's clock) counts as just seen. */
    check_int(fp_state_of(seen - 3600000, seen, 10000, silent, false), FP_STATE_OK);
}

static void test_names(void)
{
    enum fp_device_state s;

    check_str(fp_state_name(FP_STATE_OK), "ok");
    check_str(fp_state_name(FP_STATE_DEGRADED), "degraded");
    check_str(fp_state_name(FP_STATE_STALE), "stale");
    check_str(fp_state_name(FP_STATE_SILENT), "silent");
    check_str(fp_state_name(FP_STATE_COUNT), "unknown");
    for (int i = 0; i < FP_STATE_COUNT; i++) {
        check_int(fp_state_parse(fp_state_name((enum fp_device_state)i), &s), 0);
        check_int(s, i);
    }
    check_int(fp_state_parse("OK", &s), -EINVAL);
    check_int(fp_state_parse("", &s), -EINVAL);
    check_int(fp_state_parse("unknown", &s), -EINVAL);
}

int main(void)
{
    test_boundaries();
    test_names();
    fp_test_end();
}
