#!/usr/bin/env bash
# Installs what fleetpulse needs to build, run and test on Debian 12, skipping what is there.
set -euo pipefail

PACKAGES=(
  build-essential meson ninja-build pkg-config
  libprotobuf-c-dev protobuf-c-compiler libzmq3-dev liblmdb-dev lmdb-utils
  libjansson-dev libevent-dev
  python3 curl ca-certificates util-linux
  # deploy/build-llama.sh: llama.cpp from node-llama-cpp's git bundle. It uses npm when present and
  # fetches the same registry tarball with curl otherwise, so npm is not listed: Debian's npm
  # conflicts with the NodeSource nodejs that many machines carry (and bundles npm).
  cmake git
  # The dashboard's browser tests: Debian's headless chromium driven by playwright-core under node.
  # nodejs is skipped where a NodeSource nodejs is installed (same package name); Debian 12's has no
  # npm, which deploy/fetch-web-deps.sh does without (curl).
  chromium nodejs
  # The alert tests: a real Alertmanager receives the pushed alerts and a real Prometheus scrapes
  # /metrics, both started by the tests on loopback ports (the packages' own services, where
  # systemd starts them, are not used).
  prometheus prometheus-alertmanager
  # bench/query: requests/s with 64 concurrent clients.
  wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fleetpulse: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages the build embeds (uPlot) and the browser tests use (playwright-core), pinned and
# cached outside the checkout; a no-op once cached. meson setup would fetch them too.
"$(dirname "$0")/fetch-web-deps.sh" >/dev/null
