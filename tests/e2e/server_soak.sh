#!/usr/bin/env bash
# End-to-end: a 20-second version of bench/soak.sh (the ten-minute soak of
# docs/RELIABILITY.md) on the small test model: open-loop requests at a
# fixed rate over six adapters with two loaded at most, an adapter loaded,
# used and unloaded at run time in a loop, one client in ten hanging up
# mid-request; the server must not crash, must exit 0, and may answer only
# 200 or 429 to the clients that wait.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${PREFT_BIN:?}" "${PREFT_TEST_DATA:?}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
scale=${PREFT_TEST_TIME_SCALE:-1}
rc=0
PREFT_BIN=$PREFT_BIN MODEL=$PREFT_TEST_DATA/models/llama-gqa-rope3 DURATION=20 WARMUP=5 RATE=$((20 / scale + 2)) \
  N_ADAPTERS=6 CAP=2 P=16 O=16 QUEUE=8 THREADS=1 RSS_TOLERANCE=50 \
  bash "$here/../../bench/soak.sh" build "$out" || rc=$?
[ $rc = 0 ] || { echo "== server log"; tail -30 "$out/server.log"; grep -v ' normal 200 \| normal 429 ' "$out/requests.log" | head -20; }
exit $rc
