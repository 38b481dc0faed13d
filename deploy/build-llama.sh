#!/usr/bin/env bash
# Builds llama.cpp (llama-server, the shared libllama and its pkg-config file llama.pc) and caches
# the install outside the checkout, so meson finds it with -Dllama=enabled|auto.
#
#   deploy/build-llama.sh                    build once (a no-op when the cache holds a finished build),
#                                            then print the prefix
#   deploy/build-llama.sh --print-prefix     print the prefix the build uses / would use
#   deploy/build-llama.sh --pkg-config-path  print the directory holding llama.pc, for PKG_CONFIG_PATH
#
#   PKG_CONFIG_PATH="$(deploy/build-llama.sh --pkg-config-path)" meson setup build -Dllama=enabled
#
# Source: the npm package node-llama-cpp ships llama.cpp as a git bundle
# (package/llama/gitRelease.bundle) with its release tag in package/llama/llama.cpp.info.json.
# Pinning one npm version pins one llama.cpp commit, and the registry tarball is immutable and
# checked against a pinned sha256; GitHub is not needed (our build machines cannot reach it).
# node-llama-cpp also ships patches for its own addon (package/llama/patches/); we build the
# release as tagged and leave them out.
#
# Cache: ${FP_LLAMA_CACHE:-$HOME/.cache/fleetpulse}/llama-<node-llama-cpp version>-<llama.cpp tag>.
# The stamp file .fleetpulse-build-stamp is written last, so a prefix without it is an unfinished
# build and is rebuilt. The npm tarball is kept in dl/ so later calls need no network; the build
# log sits beside the prefix (<prefix>.log). A lock file serialises concurrent builds.
#
# Build choices (the cache key holds only the versions: after changing a flag, delete the prefix):
#   - CPU only, Release, shared libs; GGML_NATIVE=OFF so the cache runs on other x86-64 machines.
#     With GGML_NATIVE=OFF ggml still enables AVX/AVX2/FMA/F16C/BMI2 (x86-64-v3, Haswell and later);
#     pre-AVX2 Atoms/Celerons need a GGML_NATIVE=ON build on the device.
#   - No network code: no CURL (LLAMA_CURL is deprecated upstream, passed OFF anyway), no OpenSSL,
#     no web UI download at build time (LLAMA_USE_PREBUILT_UI=OFF; llama-server serves its API only).
#   - Only the targets llama-server and llama are built; LLAMA_TOOLS_INSTALL=OFF keeps cmake --install
#     from asking for the tools we did not build. That option also skips the shared
#     libllama-server-impl that llama-server needs, so we install it by hand (see install_extra_libs).
#   - RPATH $ORIGIN/../lib: llama-server finds libllama/libggml without LD_LIBRARY_PATH. llama.pc
#     carries no rpath: meson adds one to binaries in its build tree; by hand, link with
#     -Wl,-rpath,"$(pkg-config --variable=libdir llama)" or set LD_LIBRARY_PATH.
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1
# sha256 of node-llama-cpp-3.22.1.tgz from registry.npmjs.org (registry dist.shasum e908932762f2...).
# A new version needs its own: npm pack node-llama-cpp@X && sha256sum node-llama-cpp-X.tgz
NODE_LLAMA_CPP_SHA256=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
NODE_LLAMA_CPP_URL="https://registry.npmjs.org/node-llama-cpp/-/node-llama-cpp-${NODE_LLAMA_CPP_VERSION}.tgz"

CACHE_DIR="${FP_LLAMA_CACHE:-${HOME}/.cache/fleetpulse}"
TARBALL="${CACHE_DIR}/dl/node-llama-cpp-${NODE_LLAMA_CPP_VERSION}.tgz"
STAMP_NAME=".fleetpulse-build-stamp"

die() { echo "build-llama: $*" >&2; exit 1; }
note() { echo "build-llama: $*" >&2; }

usage() {
  sed -n '5,9p' "$0" | sed 's/^#//' >&2
}

sha256_ok() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "${NODE_LLAMA_CPP_SHA256}" ]
}

# Puts the pinned node-llama-cpp tarball in dl/ unless it is there. npm pack is the ordinary client;
# where npm is missing (a fresh Debian 12 has none) the same registry file comes with curl.
fetch_tarball() {
  sha256_ok "${TARBALL}" && return 0
  mkdir -p "${CACHE_DIR}/dl"
  local tmp
  tmp="$(mktemp -d "${CACHE_DIR}/dl/fetch.XXXXXX")"
  note "fetching node-llama-cpp@${NODE_LLAMA_CPP_VERSION} (about 35 MB)"
  if command -v npm >/dev/null 2>&1; then
    (cd "${tmp}" && npm pack --silent "node-llama-cpp@${NODE_LLAMA_CPP_VERSION}" >/dev/null) \
      || { rm -rf "${tmp}"; die "npm pack node-llama-cpp@${NODE_LLAMA_CPP_VERSION} failed"; }
  else
    curl -fsSL --retry 3 -o "${tmp}/node-llama-cpp-${NODE_LLAMA_CPP_VERSION}.tgz" "${NODE_LLAMA_CPP_URL}" \
      || { rm -rf "${tmp}"; die "download of ${NODE_LLAMA_CPP_URL} failed"; }
  fi
  local got="${tmp}/node-llama-cpp-${NODE_LLAMA_CPP_VERSION}.tgz"
  sha256_ok "${got}" || { rm -rf "${tmp}"; die "${got##*/}: sha256 differs from the pinned ${NODE_LLAMA_CPP_SHA256}"; }
  mv -f "${got}" "${TARBALL}"   # same file system: atomic, so readers never see half a tarball
  rm -rf "${tmp}"
}

# The llama.cpp release tag bundled in the tarball, e.g. v0.5.0.
read_tag() {
  local tag
  tag="$(tar -xzOf "${TARBALL}" package/llama/llama.cpp.info.json \
         | sed -n 's/.*"tag"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n1)"
  [[ "${tag}" =~ ^[A-Za-z0-9._-]+$ ]] || die "no usable llama.cpp tag in package/llama/llama.cpp.info.json"
  echo "${tag}"
}

# The tag names the prefix. A finished build of this version names it too, so --print-prefix and
# the no-op rebuild need no network even when dl/ was cleaned.
resolve_tag() {
  local stamp
  if ! sha256_ok "${TARBALL}"; then
    for stamp in "${CACHE_DIR}/llama-${NODE_LLAMA_CPP_VERSION}-"*/"${STAMP_NAME}"; do
      [ -f "${stamp}" ] || continue
      stamp="${stamp%/*}"
      echo "${stamp##*/llama-"${NODE_LLAMA_CPP_VERSION}"-}"
      return 0
    done
  fi
  fetch_tarball
  read_tag
}

MODE="${1:-}"
case "${MODE}" in
  --print-prefix|--pkg-config-path|"") ;;
  -h|--help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac

LLAMA_TAG="$(resolve_tag)"
PREFIX="${CACHE_DIR}/llama-${NODE_LLAMA_CPP_VERSION}-${LLAMA_TAG}"
STAMP="${PREFIX}/${STAMP_NAME}"
LOG="${PREFIX}.log"
WORK="${PREFIX}.work"

case "${MODE}" in
  --print-prefix)    echo "${PREFIX}"; exit 0 ;;
  --pkg-config-path) echo "${PREFIX}/lib/pkgconfig"; exit 0 ;;
esac

for tool in cmake git ninja c++ tar; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found; run deploy/install-deps.sh"
done

# One build at a time per cache: a second caller waits, then finds the stamp.
exec 9>"${CACHE_DIR}/.llama-build.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

if [ -f "${STAMP}" ]; then
  note "llama.cpp ${LLAMA_TAG} already built"
  echo "${PREFIX}"
  exit 0
fi

fail() {
  echo "build-llama: FAILED: $1; last lines of ${LOG}:" >&2
  tail -n 40 "${LOG}" >&2 || true
  exit 1
}

# Tool libraries that llama-server links but cmake --install skips with LLAMA_TOOLS_INSTALL=OFF.
install_extra_libs() {
  local lib
  for lib in "${WORK}"/build/bin/libllama-server-impl.so*; do
    [ -e "${lib}" ] || continue
    cp -P "${lib}" "${PREFIX}/lib/"
  done
}

fetch_tarball
start_s=$(date +%s)
jobs="$(nproc 2>/dev/null || echo 2)"
rm -rf "${WORK}" "${PREFIX}"
mkdir -p "${WORK}"
: >"${LOG}"
note "building llama.cpp ${LLAMA_TAG} (node-llama-cpp ${NODE_LLAMA_CPP_VERSION}) with ${jobs} jobs into ${PREFIX}"
note "log: ${LOG} (about 5 minutes on 2 cores)"

{
  tar -xzf "${TARBALL}" -C "${WORK}" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git -c advice.detachedHead=false clone --quiet "${WORK}/package/llama/gitRelease.bundle" "${WORK}/src"
} >>"${LOG}" 2>&1 || fail "unpacking the llama.cpp bundle"
commit="$(git -C "${WORK}/src" rev-parse HEAD)"
echo "llama.cpp ${LLAMA_TAG} commit ${commit}" >>"${LOG}"

# shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker, not the shell
cmake -S "${WORK}/src" -B "${WORK}/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="${PREFIX}" \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DCMAKE_INSTALL_RPATH='$ORIGIN/../lib' \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF \
  -DLLAMA_BUILD_IS_DEV=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_TOOLS_INSTALL=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF \
  >>"${LOG}" 2>&1 || fail "cmake configure"
cmake --build "${WORK}/build" -j "${jobs}" --target llama-server llama >>"${LOG}" 2>&1 \
  || fail "cmake --build"
cmake --install "${WORK}/build" >>"${LOG}" 2>&1 || fail "cmake --install"
install_extra_libs

# Refuse a prefix that only works by accident: every library resolves and the server starts.
if ldd "${PREFIX}/bin/llama-server" | grep -q "not found"; then
  ldd "${PREFIX}/bin/llama-server" >>"${LOG}" 2>&1
  fail "llama-server has unresolved libraries"
fi
env -u LD_LIBRARY_PATH "${PREFIX}/bin/llama-server" --version >>"${LOG}" 2>&1 \
  || fail "llama-server --version"
[ -f "${PREFIX}/lib/pkgconfig/llama.pc" ] || fail "llama.pc not installed"

elapsed=$(( $(date +%s) - start_s ))
cat >"${PREFIX}/fleetpulse-build.txt" <<EOF
node-llama-cpp ${NODE_LLAMA_CPP_VERSION} (sha256 ${NODE_LLAMA_CPP_SHA256})
llama.cpp ${LLAMA_TAG} commit ${commit}
built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) in ${elapsed} s with ${jobs} jobs
EOF
rm -rf "${WORK}"
touch "${STAMP}"   # last: marks the prefix finished
note "done in ${elapsed} s"
echo "${PREFIX}"
