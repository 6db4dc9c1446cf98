#!/usr/bin/env bash
# Serving throughput with one adapter per client, through the HTTP API:
# `preft serve` on the Qwen2.5-0.5B shape (random BF16 weights) with N rank-16
# LoRA adapters (all seven projections) and N rank-16 DiReFT adapters, and
# `preft bench serve` with N concurrent clients, client i on adapter i.
# Runs (RUNS, default "base lora-p lora direft-p base2"), each with fresh
# random prompts (no prefix-cache hits); a run named base*, lora-p*, lora*
# or direft-p* is:
#   base       the base model for every client
#   lora-p     LoRA, prefill-only (decode runs the base model)
#   lora       LoRA, all-token (classic multi-LoRA serving)
#   direft-p   DiReFT, prefill-only
# and repeating base at the end shows how much the machine drifted.
# Prints a table of output tokens/s and the ratio to the base model, the
# HTTP layer's share of step time, and writes each run's JSON to OUT_DIR.
# Usage: bench/serve_adapters.sh [BUILD_DIR] [OUT_DIR]
# Environment: N (clients = adapters, 64), REQ (requests per run, 2N),
# P (prompt tokens, 32), O (output tokens, 32), RUNS, LAYERS (override the shape's
# 24 layers), THREADS (server compute threads, all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve_lib.bash
build=${1:-build}
out=${2:-bench-serve-out}
N=${N:-64} P=${P:-32} O=${O:-32}
REQ=${REQ:-$((2 * N))}
RUNS=${RUNS:-base lora-p lora direft-p base2}
bin=$build/preft
mkdir -p "$out"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

"$bin" make-model --shape qwen2.5-0.5b --dtype bf16 ${LAYERS:+--layers "$LAYERS"} -o "$work/model" >/dev/null
lora= direft=
for i in $(seq -w 0 $((N - 1))); do
  "$bin" make-adapter -m "$work/model" --kind lora --rank 16 --seed "$((10#$i))" -o "$work/adapters/lora-$i"
  "$bin" make-adapter -m "$work/model" --kind direft --rank 16 --seed "$((10#$i))" -o "$work/adapters/direft-$i"
  lora+=${lora:+,}lora-$i
  direft+=${direft:+,}direft-$i
done
"$bin" serve -m "$work/model" --adapters "$work/adapters" --port 0 --max-loaded-adapters $((2 * N)) --adapter-cache-mb 0 \
  ${THREADS:+--threads "$THREADS"} 2>"$work/log" &
pid=$!
url=$(listening_url "$work/log") || exit 1
run() { # run NAME SEED [bench serve args]
  local name=$1 seed=$2; shift 2
  "$bin" bench serve --url "$url" --concurrency "$N" --requests "$REQ" --prompt-len "$P" --output-len "$O" \
    --vocab 151936 --seed "$seed" --json "$out/$name.json" "$@" | sed "s/^/[$name] /"
}
# warm-up: touch the weights and the KV cache, load every adapter once
# (loading is not what is measured)
run warmup-base 99 --requests "$N" --output-len 2 >/dev/null
run warmup-lora 100 --adapters "$lora" --requests "$N" --prompt-len 4 --output-len 2 >/dev/null
run warmup-direft 101 --adapters "$direft" --requests "$N" --prompt-len 4 --output-len 2 >/dev/null
seed=0
for r in $RUNS; do
  seed=$((seed + 1))
  case $r in
    base*) run "$r" $seed ;;
    lora-p*) run "$r" $seed --adapters "$lora" --adapter-mode prefill ;;
    lora*) run "$r" $seed --adapters "$lora" --adapter-mode all ;;
    direft-p*) run "$r" $seed --adapters "$direft" --adapter-mode prefill ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done
kill -TERM "$pid"
wait "$pid"
pid=
echo
printf '%-9s %12s %9s %10s %10s %10s %8s\n' run "tokens/s" "vs base" "TTFT p50" "TPOT p50" "step ms" "HTTP %"
base=$(jq .output_tokens_per_s "$out/base.json")
for r in $RUNS; do
  jq -r --arg r "$r" --argjson b "$base" \
    '[$r, .output_tokens_per_s, .output_tokens_per_s / $b, .ttft_s.p50 * 1e3, .tpot_s.p50 * 1e3,
      .server.mean_step_ms, .server.http_fraction_of_step_time * 100]
     | "\(.[0])\t\(.[1])\t\(.[2])\t\(.[3])\t\(.[4])\t\(.[5])\t\(.[6])"' "$out/$r.json" |
    awk -F'\t' '{ printf "%-9s %12.1f %8.3fx %8.0f ms %8.0f ms %10.1f %7.2f%%\n", $1, $2, $3, $4, $5, $6, $7 }'
done
