/* query-mkstore DIR [BIG_POINTS]: writes the query tests' fixture store into DIR, for test-cli.py
 * (which runs the daemon binary against it) and for trying the daemon by hand. BIG_POINTS adds
 * the "bench_big" series of that many points (see fixture.h). */
#include <stdio.h>

#include "clock.h"
#include "fixture.h"
#include "parse.h"

int main(int argc, char **argv)
{
    uint64_t big = 0;
    char err[512];

    if (argc < 2 || argc > 3 || (argc == 3 && fp_parse_u64(argv[2], &big) < 0)) {
        fprintf(stderr, "usage: query-mkstore DIR [BIG_POINTS]\n");
        return 2;
    }
    if (fixture_write(argv[1], fp_clock_now_ms(), (size_t)big, err, sizeof(err)) != 0) {
        fprintf(stderr, "query-mkstore: %s\n", err);
        return 1;
    }
    return 0;
}
