#!/usr/bin/env bash
# Soak test of `preft serve` (issue 20): open-loop load at twice the rate the
# server sustains, for DURATION seconds, over N_ADAPTERS adapters of which at
# most CAP are loaded (constant eviction and reloading), while another loop
# loads an adapter at run time, sends it requests and unloads it again, and
# DISCONNECT percent of the clients hang up mid-request (some mid-stream).
# Half the requests stream. Checks, and prints:
#   - the server never crashes and exits 0 on SIGTERM at the end;
#   - the only errors are 429 (the queue, --max-queue, is full): every other
#     request that did not hang up on purpose gets 200;
#   - RSS is flat after the warm-up: the mean of the last minute is within
#     RSS_TOLERANCE percent (default 10) of the first minute after warm-up
#     (for runs under WARMUP + 120 s: half of what follows the warm-up);
#   - p50 / p99 latency of the 200s (whole request, curl's time_total).
# The sustainable rate is measured first, closed-loop with `preft bench serve`
# (CONC clients), unless RATE is given.
#
# Usage: bench/soak.sh [BUILD_DIR] [OUT_DIR]
# Environment: DURATION (600 s), WARMUP (120 s), KV_MB (--kv-cache-mb, 4), RATE (requests/s), MODEL
# (assets/default-model), N_ADAPTERS (24), CAP (6), P (prompt tokens, 24),
# O (output tokens, 24), DISCONNECT (10 %), QUEUE (--max-queue, 64),
# THREADS (server compute threads, 2), CONC (4), RSS_TOLERANCE (10).
# The short version in the test suite: tests/e2e/server_soak.sh (DURATION=20).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-soak-out}
bin=${PREFT_BIN:-$build/preft}
DURATION=${DURATION:-600} WARMUP=${WARMUP:-120}
# a small KV cache: the prefix cache keeps every prompt's full blocks until
# the cache is full, so RSS grows by the blocks first touched until then; at
# 4 MiB (64 blocks of the default model) it is full within the warm-up
KV_MB=${KV_MB:-4}
MODEL=${MODEL:-assets/default-model}
N_ADAPTERS=${N_ADAPTERS:-24} CAP=${CAP:-6} P=${P:-24} O=${O:-24}
DISCONNECT=${DISCONNECT:-10} QUEUE=${QUEUE:-64} THREADS=${THREADS:-2} CONC=${CONC:-4}
RSS_TOLERANCE=${RSS_TOLERANCE:-10}
command -v curl >/dev/null && command -v jq >/dev/null || { echo "soak: needs curl and jq (scripts/install-deps.sh)" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
pid=
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# ---- adapters: N registered (LoRA and DiReFT, rank 8), one for run-time loading -------------
for i in $(seq 0 $((N_ADAPTERS - 1))); do
  kind=lora
  [ $((i % 3)) = 2 ] && kind=direft
  "$bin" make-adapter -m "$MODEL" --kind $kind --rank 8 --seed "$i" -o "$work/adapters/a$i" >/dev/null
done
mkdir -p "$work/root"
"$bin" make-adapter -m "$MODEL" --kind lora --rank 8 --seed 999 -o "$work/root/churn" >/dev/null

"$bin" serve -m "$MODEL" --port 0 --threads "$THREADS" --adapters "$work/adapters" --max-loaded-adapters "$CAP" \
  --max-queue "$QUEUE" --kv-cache-mb "$KV_MB" --allow-runtime-adapters --adapter-root "$work/root" >"$out/server.log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\) (.*/\1/p' "$out/server.log")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "soak: the server did not start"; cat "$out/server.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "soak: no port"; exit 1; }
url=http://127.0.0.1:$port

# ---- the sustainable rate (closed loop) ----------------------------------------------------------
if [ -z "${RATE:-}" ]; then
  "$bin" bench serve --url "$url" --concurrency "$CONC" --requests $((CONC * 8)) --prompt-len "$P" \
    --output-len "$O" --num-adapters "$CAP" --json "$out/closed.json" >/dev/null
  sustained=$(jq '.ok / .wall_seconds' "$out/closed.json")
  RATE=$(awk -v r="$sustained" 'BEGIN { printf "%.2f", 2 * r }')
  echo "soak: sustained $(printf '%.2f' "$sustained") requests/s closed-loop ($CONC clients); offering $RATE/s"
fi

# ---- RSS sampler ------------------------------------------------------------------------------------
t_start=$(date +%s.%N)
(
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(awk -v a="$(date +%s.%N)" -v b="$t_start" 'BEGIN { printf "%.1f", a - b }') $rss"
    sleep 2
  done
) >"$out/rss.tsv" &
bg+=($!)

# body ADAPTER STREAM: a completion request with random prompt ids
body() {
  local ids="" i
  for ((i = 0; i < P; i++)); do ids+="${ids:+,}$((RANDOM % 250 + 1))"; done
  printf '{"model":"%s","prompt":[%s],"max_tokens":%d,"ignore_eos":true,"stream":%s}' "$1" "$ids" "$O" "$2"
}
models=(default)
for i in $(seq 0 $((N_ADAPTERS - 1))); do models+=("a$i"); done
base=$(curl -s "$url/v1/models" | jq -r '.data[0].id')
models[0]=$base

# ---- run-time adapter churn: load, use, unload ----------------------------------------------------
(
  k=0
  while :; do
    k=$((k + 1))
    c=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/load_lora_adapter" -d "{\"lora_name\":\"churn$k\",\"lora_path\":\"churn\"}")
    echo "load $c"
    for _ in 1 2; do
      r=$(curl -s -o /dev/null -m 120 -w '%{http_code} %{time_total}' "$url/v1/completions" -d "$(body "churn$k" false)")
      echo "churn $r"
    done
    c=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/unload_lora_adapter" -d "{\"lora_name\":\"churn$k\"}")
    echo "unload $c"
    sleep 1
  done
) >"$out/churn.log" 2>&1 &
bg+=($!)

# ---- open-loop load ------------------------------------------------------------------------------
: >"$out/requests.log"
interval=$(awk -v r="$RATE" 'BEGIN { printf "%.6f", 1 / r }')
end=$(awk -v a="$t_start" -v d="$DURATION" 'BEGIN { printf "%.3f", a + d }')
next=$t_start
n=0
while :; do
  now=$(date +%s.%N)
  awk -v a="$now" -v b="$end" 'BEGIN { exit !(a < b) }' || break
  model=${models[$((RANDOM % ${#models[@]}))]}
  stream=false
  [ $((RANDOM % 2)) = 0 ] && stream=true
  t=$(awk -v a="$now" -v b="$t_start" 'BEGIN { printf "%.1f", a - b }')
  if [ $((RANDOM % 100)) -lt "$DISCONNECT" ]; then
    # hangs up after 20-200 ms: queued, mid-prefill or mid-stream
    lim=$(awk -v r=$((RANDOM % 180 + 20)) 'BEGIN { printf "%.3f", r / 1000 }')
    { r=$(curl -s -o /dev/null -m "$lim" -w '%{http_code} %{time_total}' "$url/v1/completions" -d "$(body "$model" $stream)" || true)
      echo "$t hangup $r"; } >>"$out/requests.log" &
  else
    { r=$(curl -s -o /dev/null -m 300 -w '%{http_code} %{time_total}' "$url/v1/completions" -d "$(body "$model" $stream)" || true)
      echo "$t normal $r"; } >>"$out/requests.log" &
  fi
  n=$((n + 1))
  next=$(awk -v a="$next" -v i="$interval" 'BEGIN { printf "%.6f", a + i }')
  delay=$(awk -v a="$next" -v b="$(date +%s.%N)" 'BEGIN { d = a - b; printf "%.6f", (d > 0 ? d : 0) }')
  sleep "$delay"
done
for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
bg=()
wait_left=600
# the clients still waiting (every background job but the server)
while [ "$(jobs -rp | grep -cvx "$pid")" -gt 0 ] && [ $wait_left -gt 0 ]; do sleep 1; wait_left=$((wait_left - 1)); done
alive=1
kill -0 "$pid" 2>/dev/null || alive=0
curl -s "$url/metrics" >"$out/metrics.txt" || true
rc=0
if [ $alive = 1 ]; then
  kill -TERM "$pid"
  wait "$pid" || rc=$?
fi
pid=

# ---- report -------------------------------------------------------------------------------------
fails=0
result() { echo "$1"; echo "$1" >>"$out/summary.txt"; }
: >"$out/summary.txt"
result "soak: $DURATION s at $RATE requests/s offered ($n sent), model $MODEL, $N_ADAPTERS adapters (cap $CAP), $DISCONNECT % hang-ups, --max-queue $QUEUE, --kv-cache-mb $KV_MB, --threads $THREADS"
[ $alive = 1 ] && [ $rc = 0 ] || { result "FAIL the server died or did not exit 0 (alive $alive, exit $rc)"; fails=1; }
codes=$(awk '$2 == "normal" { c[$3]++ } END { for (k in c) printf "%s:%d ", k, c[k] }' "$out/requests.log")
hang=$(awk '$2 == "hangup" { c[$3]++ } END { for (k in c) printf "%s:%d ", k, c[k] }' "$out/requests.log")
result "status codes of the requests that waited: $codes"
result "status codes of the hang-ups (000: hung up before the answer): $hang"
bad=$(awk '$2 == "normal" && $3 != 200 && $3 != 429' "$out/requests.log" | wc -l)
churn_bad=$(grep -cv -E '^(load 200|unload 200|churn (200|429) .*)$' "$out/churn.log" || true)
result "errors other than 429: $bad (run-time adapter loop: $churn_bad of $(wc -l <"$out/churn.log") steps)"
[ "$bad" = 0 ] && [ "$churn_bad" = 0 ] || fails=1
awk '$2 == "normal" && $3 == 200 { print $4 }' "$out/requests.log" | sort -g >"$work/lat"
nl=$(wc -l <"$work/lat")
if [ "$nl" -gt 0 ]; then
  p50=$(awk -v n="$nl" 'NR == int((n + 1) * 0.50) || (n == 1) { print; exit }' "$work/lat")
  p99=$(awk -v n="$nl" 'NR == int(n * 0.99 + 0.5) || (n == 1) { print; exit }' "$work/lat")
  result "latency of the $nl 200s: p50 ${p50} s, p99 ${p99} s"
fi
# windows of a minute (shorter runs: half of what follows the warm-up)
win=$(((DURATION - WARMUP) / 2 < 60 ? (DURATION - WARMUP) / 2 : 60))
rss=$(awk -v w="$WARMUP" -v d="$DURATION" -v n="$win" '
  $1 >= w && $1 < w + n { a += $2; na++ }
  $1 >= d - n && $1 < d { b += $2; nb++ }
  { if ($2 > m) m = $2 }
  END { if (na && nb) printf "%.0f %.0f %.0f %.1f", a / na / 1024, b / nb / 1024, m / 1024, 100 * (b / nb - a / na) / (a / na) }' "$out/rss.tsv")
if [ -n "$rss" ]; then
  read -r r1 r2 rmax growth <<<"$rss"
  result "RSS: ${r1} MiB in the ${win} s after warm-up, ${r2} MiB in the last ${win} s (${growth} %), peak ${rmax} MiB"
  awk -v g="$growth" -v t="$RSS_TOLERANCE" 'BEGIN { exit !(g <= t) }' || { result "FAIL RSS grew more than $RSS_TOLERANCE %"; fails=1; }
else
  result "RSS: too short a run to compare minutes ($(wc -l <"$out/rss.tsv") samples)"
fi
grep -E 'preft_adapter_(loads|evictions)_total |preft_requests_total|preft_http_requests_total\{code="(200|429|499)"' \
  "$out/metrics.txt" >>"$out/summary.txt" || true
[ $fails = 0 ] && result "soak: ok" || result "soak: FAILED"
exit $fails
