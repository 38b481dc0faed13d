#!/usr/bin/env bash
# README command 2: install what is missing, build llama.cpp into its cache (once), then build and
# run the whole test suite twice: a warnings-as-errors build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build, then the threading tests under ThreadSanitizer. Extra
# arguments go to `meson test` (e.g. --suite unit).
set -uo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh || exit 1

# llama.cpp is a real dependency of the `llama` suite; its build is cached outside the checkout,
# so only a fresh machine pays for it.
if ! deploy/build-llama.sh >/dev/null; then
  echo "fleetpulse: building llama.cpp failed (see the log under $(deploy/build-llama.sh --print-prefix).log)" >&2
  exit 1
fi
export PKG_CONFIG_PATH="$(deploy/build-llama.sh --pkg-config-path)${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
# ggml and libllama are not ours and not instrumented: their process-lifetime allocations are not
# leaks we can fix.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}

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
echo "== build-test: -Dwerror=true -Dllama=enabled"
run_suite build-test -Dwerror=true -Dllama=enabled || status=1
echo "== build-asan: -Db_sanitize=address,undefined -Dllama=enabled"
run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined -Dllama=enabled || status=1
# Shared-store threading (the query service reads from several threads) under ThreadSanitizer:
# only the tests of suite 'threads', and only what they need is built.
echo "== build-tsan: -Db_sanitize=thread, suite threads"
if [ ! -d build-tsan ]; then
  meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Dllama=disabled >/dev/null ||
    { echo "fleetpulse: meson setup build-tsan failed" >&2; status=1; }
fi
if [ -d build-tsan ]; then
  if ninja -C build-tsan tests/unit/storage/test-threads; then
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} \
      meson test -C build-tsan --no-rebuild --print-errorlogs --suite threads || status=1
  else
    echo "fleetpulse: build in build-tsan failed" >&2
    status=1
  fi
fi
exit $status
