#!/usr/bin/env bash
# Fetches the dashboard's npm dependencies into a cache outside the checkout and prints where.
#
#   deploy/fetch-web-deps.sh              fetch what the cache lacks (a no-op when complete), print the dir
#   deploy/fetch-web-deps.sh --print-dir  print the dir only; fetches nothing (it may not exist yet)
#
# The printed directory holds node_modules/uplot (the charts, embedded in fleetpulse-query at build
# time) and node_modules/playwright-core (drives Debian's chromium in the `browser` test suite).
# meson's option web_deps defaults to running this script, so a plain `meson setup` fetches once.
#
# Why these two: uPlot is a ~50 KB, dependency-free, canvas charting library, maintained since 2019,
# built for many series and points (a fleet's time series) without a framework; Chart.js and ECharts
# are several times larger and slower on long series. playwright-core is the Playwright driver
# without its browser downloads, which our machines cannot reach anyway; the test points it at
# /usr/bin/chromium. Both have no npm dependencies of their own, so a tarball each is the whole
# install and no npm resolver or lock file is involved.
#
# Versions are pinned with the sha256 of their registry tarballs; playwright-core stays at the last
# release that runs on Debian 12's nodejs 18 (1.62 asks for node >= 20). To move a version:
#   npm pack uplot@X && sha256sum uplot-X.tgz       and update the pair below.
# npm pack is the ordinary client; where npm is missing (Debian 12's nodejs comes without it) the
# same registry file is fetched with curl and checked against the same sha256.
#
# Cache: ${FP_WEB_CACHE:-$HOME/.cache/fleetpulse/npm}/web-uplot-<v>-playwright-core-<v>. The stamp
# file is written last, so a directory without it is unfinished and is fetched again; a lock file
# serialises concurrent calls (two meson setups at once).
set -euo pipefail

UPLOT_VERSION=1.6.32
UPLOT_SHA256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
PLAYWRIGHT_CORE_VERSION=1.61.1
PLAYWRIGHT_CORE_SHA256=3740bba3a3e93b4c7bd7c0f6e3c0e5f8cdce498bef13511e4d534cc99a8ce198

CACHE_DIR="${FP_WEB_CACHE:-${HOME}/.cache/fleetpulse/npm}"
DIR="${CACHE_DIR}/web-uplot-${UPLOT_VERSION}-playwright-core-${PLAYWRIGHT_CORE_VERSION}"
STAMP="${DIR}/.fleetpulse-fetch-stamp"

die() { echo "fetch-web-deps: $*" >&2; exit 1; }

case "${1:-}" in
  --print-dir) echo "${DIR}"; exit 0 ;;
  "") ;;
  -h|--help) sed -n '4,5p' "$0" | sed 's/^#//' >&2; exit 0 ;;
  *) sed -n '4,5p' "$0" | sed 's/^#//' >&2; exit 2 ;;
esac

if [ -f "${STAMP}" ]; then
  echo "${DIR}"
  exit 0
fi

mkdir -p "${CACHE_DIR}/dl"
exec 9>"${CACHE_DIR}/.fetch-web-deps.lock"
flock 9
# Another call may have finished while we waited for the lock.
if [ -f "${STAMP}" ]; then
  echo "${DIR}"
  exit 0
fi

sha256_ok() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# fetch NAME VERSION SHA256: leaves dl/NAME-VERSION.tgz, verified.
fetch() {
  local name=$1 version=$2 sha=$3
  local tarball="${CACHE_DIR}/dl/${name}-${version}.tgz" tmp
  sha256_ok "${tarball}" "${sha}" && return 0
  tmp="$(mktemp -d "${CACHE_DIR}/dl/fetch.XXXXXX")"
  echo "fetch-web-deps: fetching ${name}@${version}" >&2
  if command -v npm >/dev/null 2>&1; then
    (cd "${tmp}" && npm pack --silent "${name}@${version}" >/dev/null 2>&1) \
      || { rm -rf "${tmp}"; die "npm pack ${name}@${version} failed"; }
  else
    curl -fsSL --retry 3 -o "${tmp}/${name}-${version}.tgz" \
      "https://registry.npmjs.org/${name}/-/${name}-${version}.tgz" \
      || { rm -rf "${tmp}"; die "download of ${name}@${version} from registry.npmjs.org failed"; }
  fi
  sha256_ok "${tmp}/${name}-${version}.tgz" "${sha}" \
    || { rm -rf "${tmp}"; die "${name}-${version}.tgz: sha256 differs from the pinned ${sha}"; }
  mv -f "${tmp}/${name}-${version}.tgz" "${tarball}"
  rm -rf "${tmp}"
}

# unpack NAME VERSION: the tarball's package/ becomes node_modules/NAME, as npm install lays it out.
unpack() {
  local name=$1 version=$2
  mkdir -p "${DIR}/node_modules/${name}"
  tar -xzf "${CACHE_DIR}/dl/${name}-${version}.tgz" -C "${DIR}/node_modules/${name}" \
    --strip-components=1 --no-same-owner
}

fetch uplot "${UPLOT_VERSION}" "${UPLOT_SHA256}"
fetch playwright-core "${PLAYWRIGHT_CORE_VERSION}" "${PLAYWRIGHT_CORE_SHA256}"
rm -rf "${DIR}"
unpack uplot "${UPLOT_VERSION}"
unpack playwright-core "${PLAYWRIGHT_CORE_VERSION}"
[ -f "${DIR}/node_modules/uplot/dist/uPlot.iife.min.js" ] || die "uplot tarball lacks dist/uPlot.iife.min.js"
touch "${STAMP}"
echo "${DIR}"
