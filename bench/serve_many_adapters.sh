#!/usr/bin/env bash
# Serving throughput with uniform traffic over many more adapters than the
# server keeps loaded (issue 20, item 16), through the HTTP API:
# `preft serve` on the Qwen2.5-0.5B shape with LAYERS layers (random BF16
# weights) and NA rank-16 LoRA adapters (all seven projections) in one
# --adapters directory, an adapter cache of CACHE adapters (far fewer than
# NA), and `preft bench serve` with C concurrent clients, of which at most
# MAXRUN run at once (--max-running) and the others wait in the queue: with
# no queue there is nothing to load ahead (a request's adapter load starts
# when it arrives).
# Two servers over the same files, one with loading ahead (prefetch of
# queued requests' adapters) and one with --no-adapter-prefetch; runs
# (RUNS, default "base pre uni uni-nopf base2 pre2 uni2 uni-nopf2 base3")
# alternate, each with fresh random prompts (no prefix-cache hits):
#   base*      the base model for every request
#   pre*       every request a random one of PRE adapters, all loaded before
#              the run (the cost of adapters without loading)
#   uni*       every request a random one of the NA adapters (prefetch on)
#   uni-nopf*  the same traffic on the server without prefetch
# and repeating base shows how much the machine drifted.
# Prints a table of output tokens/s and the ratio to the mean of the base
# runs, the server's CPU time per generated token and its ratio to the base
# runs' (on a shared machine this ratio is the robust one: tokens/s follow
# whatever else runs, CPU time per token much less), TTFT and the adapter
# loads of each run with their wall and CPU time (from the server's
# /metrics), and writes each run's JSON and summary.json to OUT_DIR.
# Usage: bench/serve_many_adapters.sh [BUILD_DIR] [OUT_DIR]
# Environment: NA (adapters, 2000), DISTINCT (adapters made with their own seed,
# NA; the others are copies of these), CACHE (adapters held loaded, 64), PRE (32),
# C (clients, 32), MAXRUN (C/2), REQ (requests per run, 4C), P (prompt tokens, 32), O (output
# tokens, 32), LAYERS (4), RUNS, THREADS (server compute threads, all cores),
# KEEP (a directory for the model and adapters, made once and reused by later
# runs; default a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_lib.bash
build=${1:-build}
out=${2:-bench-many-adapters-out}
NA=${NA:-2000} DISTINCT=${DISTINCT:-${NA:-2000}} CACHE=${CACHE:-64} PRE=${PRE:-32} C=${C:-32} MAXRUN=${MAXRUN:-$((${C:-32} / 2))} P=${P:-32} O=${O:-32} LAYERS=${LAYERS:-4}
REQ=${REQ:-$((4 * C))}
RUNS=${RUNS:-base pre uni uni-nopf base2 pre2 uni2 uni-nopf2 base3}
bin=$build/preft
mkdir -p "$out"
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

t0=$(date +%s)
if [ ! -d "$work/adapters/a$(printf "%0${#NA}d" $((NA - 1)))" ]; then
  rm -rf "$work/model" "$work/adapters"
  "$bin" make-model --shape qwen2.5-0.5b --dtype bf16 --layers "$LAYERS" -o "$work/model" >/dev/null
  # DISTINCT adapters from make-adapter (seeds 0..DISTINCT-1); the rest of the
  # NA directories hold copies of them (real copies: each load reads its own
  # files), for a machine too busy to make NA adapters in minutes
  for i in $(seq -w 0 $((NA - 1))); do
    if [ $((10#$i)) -lt "$DISTINCT" ]; then
      "$bin" make-adapter -m "$work/model" --kind lora --rank 16 --seed "$((10#$i))" -o "$work/adapters/a$i"
    else
      cp -r "$work/adapters/a$(printf "%0${#i}d" $((10#$i % DISTINCT)))" "$work/adapters/a$i"
    fi
  done
fi
kb=$(du -sk "$work/adapters/a$(printf "%0${#NA}d" 0)" | cut -f1)
mb=$(((kb + 1023) / 1024))
echo "the model ($LAYERS layers) and $NA adapters ($DISTINCT distinct, $kb kB each) made or found in $work" \
  "in $(($(date +%s) - t0)) s"

# Each adapter's load reserves twice its files; the cache holds CACHE of them.
cache_mb=$((2 * CACHE * (mb + 1)))
declare -A url=()
start_server() { # start_server NAME [serve args]; sets url[NAME]
  local name=$1
  shift
  "$bin" serve -m "$work/model" --adapters "$work/adapters" --port 0 --no-adapter-check \
    --max-loaded-adapters "$CACHE" --adapter-cache-mb "$cache_mb" --kv-cache-mb $((cache_mb + 1024)) \
    --max-running "$MAXRUN" \
    ${THREADS:+--threads "$THREADS"} "$@" 2>"$work/log-$name" &
  pids+=($!)
  url[$name]=$(listening_url "$work/log-$name") || exit 1
}
start_server pf
start_server nopf --no-adapter-prefetch

run() { # run NAME URL SEED [bench serve args]
  local name=$1 u=$2 seed=$3
  shift 3
  "$bin" bench serve --url "$u" --concurrency "$C" --requests "$REQ" --prompt-len "$P" --output-len "$O" \
    --vocab 151936 --seed "$seed" --json "$out/$name.json" "$@" | sed "s/^/[$name] /"
}
# warm-up: touch the weights and the KV cache of both servers
run warmup-pf "${url[pf]}" 99 --requests "$C" --output-len 2 >/dev/null
run warmup-nopf "${url[nopf]}" 98 --requests "$C" --output-len 2 >/dev/null
seed=0
for r in $RUNS; do
  seed=$((seed + 1))
  echo "$r: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
  case $r in
    base*) run "$r" "${url[pf]}" $seed ;;
    pre*) # the uniform runs evicted them: load the PRE adapters again first (not measured)
      run "warmup-$r" "${url[pf]}" $((seed + 1000)) --num-adapters "$PRE" --concurrency "$PRE" --requests "$PRE" \
        --prompt-len 4 --output-len 2 >/dev/null
      run "$r" "${url[pf]}" $seed --num-adapters "$PRE" --adapter-pick uniform ;;
    uni-nopf*) run "$r" "${url[nopf]}" $seed --num-adapters "$NA" --adapter-pick uniform ;;
    uni*) run "$r" "${url[pf]}" $seed --num-adapters "$NA" --adapter-pick uniform ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done
for p in "${pids[@]}"; do
  kill -TERM "$p"
  wait "$p" || true
done
pids=()

echo
echo "model: qwen2.5-0.5b shape, $LAYERS layers, BF16; $NA rank-16 LoRA adapters of $kb kB ($DISTINCT distinct),"
echo "$CACHE held loaded ($cache_mb MB cache); $C clients ($MAXRUN running at most), $REQ requests per run, prompt $P, output $O"
printf '%-10s %9s %8s %12s %8s %9s %6s %6s %8s %8s\n' run "tokens/s" "vs base" "CPU ms/tok" "vs base" \
  "TTFT p50" loads ahead "load ms" "load CPU"
cpu_tok='(.server.cpu_seconds / .server.generated_tokens * 1e3)'
bases=$(for r in $RUNS; do case $r in base*) echo "$out/$r.json" ;; esac; done)
# shellcheck disable=SC2086
base=$(jq -s 'map(.output_tokens_per_s) | add / length' $bases)
# shellcheck disable=SC2086
base_cpu=$(jq -s "map($cpu_tok) | add / length" $bases)
for r in $RUNS; do
  jq -r --arg r "$r" --argjson b "$base" --argjson bc "$base_cpu" \
    "[\$r, .output_tokens_per_s, .output_tokens_per_s / \$b, $cpu_tok, $cpu_tok / \$bc, .ttft_s.p50 * 1e3,
      (.server.adapter_loads // 0), (.server.adapter_prefetches // 0),
      (if (.server.adapter_loads // 0) > 0 then .server.adapter_load_seconds / .server.adapter_loads * 1e3 else 0 end),
      (if (.server.adapter_loads // 0) > 0 then .server.adapter_load_cpu_seconds / .server.adapter_loads * 1e3 else 0 end)]
     | @tsv" "$out/$r.json" |
    awk -F'\t' '{ printf "%-10s %9.1f %7.3fx %12.1f %7.3fx %6.0f ms %6d %6d %8.1f %8.1f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
done
# shellcheck disable=SC2046
jq -n --argjson base "$base" --argjson base_cpu "$base_cpu" --arg load "$(cat "$out/load.txt")" \
  --argjson cfg "{\"adapters\":$NA,\"distinct\":$DISTINCT,\"cache_adapters\":$CACHE,\"adapter_kb\":$kb,\"layers\":$LAYERS,\"clients\":$C,\"max_running\":$MAXRUN,\"requests\":$REQ,\"prompt_len\":$P,\"output_len\":$O}" \
  '{config: $cfg, base_tokens_per_s: $base, base_cpu_ms_per_token: $base_cpu, load_average: ($load | split("\n")), runs: [inputs | {run: (input_filename | split("/") | last | rtrimstr(".json")), adapter_pick, adapters,
    output_tokens_per_s, vs_base: (.output_tokens_per_s / $base),
    cpu_ms_per_token: (.server.cpu_seconds / .server.generated_tokens * 1e3),
    cpu_vs_base: (.server.cpu_seconds / .server.generated_tokens * 1e3 / $base_cpu), ttft_p50_s: .ttft_s.p50, server}]}' \
  $(for r in $RUNS; do echo "$out/$r.json"; done) >"$out/summary.json.tmp"
mv "$out/summary.json.tmp" "$out/summary.json"
echo "wrote $out/summary.json"
