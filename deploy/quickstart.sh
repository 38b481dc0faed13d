#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the local stack (collector, query
# service, a probe of this machine, and a simulated fleet) in the background.
# `deploy/quickstart.sh stop` stops it.
#
# Environment: FP_RUN_DIR (default ./run) holds data, logs and pid files; FP_COLLECTOR_PORT
# (default 9470), FP_QUERY_PORT (default 9471), FP_INTERVAL (probe interval, default 5s),
# FP_SIM_DEVICES (simulated devices, default 200; 0 for none).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${FP_RUN_DIR:-$PWD/run}
CPORT=${FP_COLLECTOR_PORT:-9470}
QPORT=${FP_QUERY_PORT:-9471}
INTERVAL=${FP_INTERVAL:-5s}
SIM_DEVICES=${FP_SIM_DEVICES:-200}
BUILD=build

stop_all() {
  for d in sim probe query collector; do
    if [ -f "$RUN_DIR/$d.pid" ]; then
      kill "$(cat "$RUN_DIR/$d.pid")" 2>/dev/null || true
      rm -f "$RUN_DIR/$d.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
  stop_all
  echo "fleetpulse: stopped"
  exit 0
fi

deploy/install-deps.sh
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null

stop_all
mkdir -p "$RUN_DIR/data"
start() {
  local name=$1; shift
  nohup "$@" >>"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}
LOG_START=$(stat -c %s "$RUN_DIR/collector.log" 2>/dev/null || echo 0)
start collector "$BUILD/collector/fleetpulse-collector" \
  --listen "tcp://127.0.0.1:$CPORT" --data "$RUN_DIR/data"
# The query service needs the store the collector creates: wait for this start's "listening on"
# (the log is appended to; the data file alone appears a moment before its databases do).
for _ in $(seq 100); do
  tail -c +$((LOG_START + 1)) "$RUN_DIR/collector.log" 2>/dev/null | grep -q "listening on" && break
  sleep 0.1
done
# The stock alert rules (docs/alerts.md): silent and stale devices, the canary regression.
start query "$BUILD/query/fleetpulse-query" --listen "127.0.0.1:$QPORT" --data "$RUN_DIR/data" \
  --rules deploy/rules.json --alert-state "$RUN_DIR/alerts.state"
start probe "$BUILD/probe/fleetpulse-probe" --collector "tcp://127.0.0.1:$CPORT" \
  --interval "$INTERVAL" --cohort local
# A fleet to look at: an hour of history, then live every 10 s; model_version v2 is a canary
# cohort 20% slower than v1, as a rollout to compare.
if [ "$SIM_DEVICES" -gt 0 ]; then
  start sim "$BUILD/sim/fleetpulse-sim" --collector "tcp://127.0.0.1:$CPORT" \
    --devices "$SIM_DEVICES" --backfill 1h --follow --outcomes --slow model_version=v2:0.8
fi

URL="http://127.0.0.1:$QPORT"
for _ in $(seq 100); do
  if curl -fsS "$URL/api/v1/devices" 2>/dev/null | grep -q '"device"'; then
    echo "fleetpulse is running: open $URL/ (the dashboard; JSON under $URL/api/v1/; logs and data in $RUN_DIR;" \
         "stop with deploy/quickstart.sh stop)"
    exit 0
  fi
  sleep 0.1
done
echo "fleetpulse: this machine did not appear at $URL/api/v1/devices within 10 s; see $RUN_DIR/*.log" >&2
exit 1
