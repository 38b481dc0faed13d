#!/usr/bin/env bash
# README command 2: install what is missing, then build and run the whole test suite twice: a
# warnings-as-errors build, and an AddressSanitizer + UndefinedBehaviorSanitizer build.
# Extra arguments go to `meson test` (e.g. --suite unit).
set -uo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

status=0
run_suite() {
  local dir=$1; shift
  local opts=("$@")
  if [ ! -d "$dir" ]; then
    meson setup "$dir" "${opts[@]}" >/dev/null || { echo "fleetpulse: meson setup $dir failed" >&2; return 1; }
  fi
  ninja -C "$dir" || { echo "fleetpulse: build in $dir failed" >&2; return 1; }
  meson test -C "$dir" --print-errorlogs $TEST_ARGS
}

TEST_ARGS="$*"
echo "== build-test: -Dwerror=true"
run_suite build-test -Dwerror=true || status=1
echo "== build-asan: -Db_sanitize=address,undefined"
run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined || status=1
exit $status
