#!/usr/bin/env bash
# Serving throughput over 1, 2 and 3 `preft serve` replicas behind HAProxy
# (configured by `preft route`), against one replica reached directly, on
# this machine. Every replica serves the same model (the Qwen2.5-0.5B shape
# with LAYERS layers, random BF16 weights) and N rank-16 LoRA adapters;
# `preft bench serve` runs C concurrent clients, client i on adapter i mod N,
# so the router spreads the adapters over the replicas by consistent hashing.
# On one machine the replicas share its cores (each gets cores/replicas
# threads), so the table shows the router's cost and how the load divides;
# on a machine per replica each replica keeps all the cores of its machine
# (docs/SCALING.md turns one into the other).
# Usage: bench/route_replicas.sh [BUILD_DIR] [OUT_DIR]
# Environment: N (adapters, 16), C (clients, 16), REQ (requests per run, 64),
# P (prompt tokens, 32), O (output tokens, 32), LAYERS (4), REPLICAS ("1 2 3").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-bench-route-out}
N=${N:-16} C=${C:-16} REQ=${REQ:-64} P=${P:-32} O=${O:-32} LAYERS=${LAYERS:-4}
REPLICAS=${REPLICAS:-1 2 3}
bin=$build/preft
command -v haproxy >/dev/null || { echo "haproxy is missing: run scripts/install-deps.sh" >&2; exit 1; }
cores=$(nproc)
mkdir -p "$out"
work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT

"$bin" make-model --shape qwen2.5-0.5b --dtype bf16 --layers "$LAYERS" -o "$work/model" >/dev/null
for i in $(seq -w 0 $((N - 1))); do
  "$bin" make-adapter -m "$work/model" --kind lora --rank 16 --seed "$((10#$i))" -o "$work/adapters/lora-$i" >/dev/null
done
adapters=$(ls "$work/adapters" | paste -sd,)

start_replica() { # start_replica LOG THREADS: sets url
  "$bin" serve -m "$work/model" --adapters "$work/adapters" --port 0 --threads "$2" >"$1" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    url=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$1")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}
bench() { # bench URL NAME: output tokens/s
  "$bin" bench serve --url "$1" --adapters "$adapters" --concurrency "$C" --requests "$REQ" \
    --prompt-len "$P" --output-len "$O" --json "$out/$2.json" >"$out/$2.txt" 2>&1
  jq -r '.output_tokens_per_s' "$out/$2.json"
}

printf '%-28s %8s %12s %8s\n' run threads "tok/s" ratio | tee "$out/table.txt"
start_replica "$work/direct.log" "$cores"
direct=$(bench "$url" direct)
printf '%-28s %8d %12.1f %8.2f\n' "1 replica, direct" "$cores" "$direct" 1 | tee -a "$out/table.txt"
# what each machine of an n-machine fleet would do: one replica with all the
# cores and 1/n of the clients (and so of the adapters)
for n in $REPLICAS; do
  [ "$n" -gt 1 ] || continue
  c_all=$C
  C=$(((c_all + n - 1) / n))
  tps=$(bench "$url" "direct-c$C")
  C=$c_all
  printf '%-28s %8d %12.1f %8.2f\n' "1 replica, 1/$n of the clients" "$cores" "$tps" \
    "$(awk -v a="$tps" -v b="$direct" 'BEGIN { print a / b }')" | tee -a "$out/table.txt"
done
stop_all
for n in $REPLICAS; do
  threads=$(((cores + n - 1) / n))
  urls=()
  for r in $(seq 1 "$n"); do
    start_replica "$work/r$r.log" "$threads"
    urls+=("$url")
  done
  port=$((20000 + RANDOM % 20000))
  "$bin" route --replicas "${urls[@]}" --bind 127.0.0.1 --port "$port" --check-ms 500 -o "$work/haproxy.cfg"
  haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy-$n.log" 2>&1 </dev/null &
  pids+=($!)
  sleep 1
  tps=$(bench "http://127.0.0.1:$port" "haproxy-$n")
  printf '%-28s %8d %12.1f %8.2f\n' "$n replica(s) behind HAProxy" "$threads" "$tps" \
    "$(awk -v a="$tps" -v b="$direct" 'BEGIN { print a / b }')" | tee -a "$out/table.txt"
  stop_all
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" | tee -a "$out/table.txt"
