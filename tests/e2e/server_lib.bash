# server_lib.bash - helpers for the server end-to-end tests (sourced; the
# .bash name keeps CTest from running it as a test).
#   start_server LOG ARGS...   runs `preft serve --port 0 ARGS` in the
#                              background; sets SRV_PID and SRV_URL
#   stop_server                SIGTERM, waits; returns the server's exit code
#   wait_jobs PID...           waits for background jobs (curl clients)
#   check NAME CMD...          runs CMD, prints ok/FAIL, counts failures
#   metric NAME                a sample's value from $SRV_URL/metrics
#   wait_for CMD...            retries CMD until it succeeds
# Every wait has a deadline (seconds below, times PREFT_TEST_TIME_SCALE,
# which CTest sets above 1 under a sanitizer): past it the wait gives up
# with a message naming what it waited for, and the test fails.
set -u
bin=${PREFT_BIN:?}
data=${PREFT_TEST_DATA:?}
fails=0
SRV_PID=
scale=${PREFT_TEST_TIME_SCALE:-1}
check() {
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
start_server() {
  local log=$1 port= limit=$((60 * scale)); shift
  : >"$log" # exists before the loop below reads it
  "$bin" serve --port 0 "$@" >"$log" 2>&1 &
  SRV_PID=$!
  local deadline=$((SECONDS + limit))
  while [ $SECONDS -lt $deadline ]; do
    port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\) (.*/\1/p' "$log")
    [ -n "$port" ] && break
    if ! kill -0 "$SRV_PID" 2>/dev/null; then echo "server did not start:"; cat "$log"; SRV_PID=; return 1; fi
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not report its port within $limit s:"; cat "$log"; kill_server; return 1; }
  SRV_URL=http://127.0.0.1:$port
}
stop_server() {
  [ -n "$SRV_PID" ] || return 1
  kill -TERM "$SRV_PID" 2>/dev/null
  local rc=0 limit=$((30 * scale))
  local deadline=$((SECONDS + limit))
  while kill -0 "$SRV_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  if kill -0 "$SRV_PID" 2>/dev/null; then
    echo "server did not exit within $limit s of SIGTERM: killed"
    kill_server
    return 1
  fi
  wait "$SRV_PID" || rc=$?
  SRV_PID=
  return $rc
}
wait_jobs() {
  local limit=$((120 * scale)) p left
  local deadline=$((SECONDS + limit))
  while [ $SECONDS -lt $deadline ]; do
    left=
    for p in "$@"; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.05
  done
  if [ -n "$left" ]; then
    echo "background jobs$left still running after $limit s: killed"
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
  fi
  for p in "$@"; do wait "$p" 2>/dev/null; done
  [ -z "$left" ]
}
kill_server() { [ -z "$SRV_PID" ] || { kill -KILL "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=; }; }
metric() { curl -s "$SRV_URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
# post PATH JSON [curl args...]: prints the body, then the status on its own line
post() { local p=$1 j=$2; shift 2; curl -s -X POST "$SRV_URL$p" -H 'Content-Type: application/json' -d "$j" -w '\n%{http_code}' "$@"; }
# wait_for CMD...: retries CMD until it succeeds, for at most 10 s (scaled);
# gives up at once when the server has exited
wait_for() {
  local limit=$((10 * scale))
  local deadline=$((SECONDS + limit))
  while [ $SECONDS -lt $deadline ]; do
    "$@" && return 0
    if [ -n "$SRV_PID" ] && ! kill -0 "$SRV_PID" 2>/dev/null; then
      echo "  the server has exited; was waiting for: $*"
      return 1
    fi
    sleep 0.05
  done
  "$@" && return 0
  echo "  gave up after $limit s waiting for: $*"
  return 1
}
# metric_is NAME VALUE: the sample equals VALUE now (for wait_for)
metric_is() { [ "$(metric "$1")" = "$2" ]; }
