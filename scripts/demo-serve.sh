#!/usr/bin/env bash
# The serving half of the demo (scripts/demo.sh): starts `preft serve` with a
# model and a folder of per-president adapters, sends the same opening words
# in several presidents' voices at once through the HTTP API (each request
# names its adapter), prints the generations side by side, then measures
# output tokens/s for the same requests served by the base model, by the
# adapters on every token and by the adapters on the prompt only (greedy,
# a fixed number of tokens), and shuts the server down (its exit status is
# this script's).
# Usage: scripts/demo-serve.sh [options]
#   --preft BIN        the preft binary (default build/preft)
#   -m DIR             model (default assets/default-model)
#   --adapters DIR     one adapter folder per president (default
#                      assets/presidents/lora-p), named as by
#                      scripts/make-president-data.sh (abraham-lincoln)
#   --show A,B,...     adapters whose generations are shown (default six
#                      presidents from Washington to Obama, those present)
#   --prompt TEXT      the opening words (default "The state of the Union")
#   --max-tokens N     tokens generated per voice (default 60)
#   --bench-tokens N   tokens per request in the throughput runs (default 48)
#   --threads N        the server's compute threads (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
preft=build/preft model=assets/default-model adapters=assets/presidents/lora-p show= threads=
opening="The state of the Union" max_tokens=60 bench_tokens=48
while [ $# -gt 0 ]; do
  case "$1" in
    --preft) preft=$2; shift 2 ;;
    -m) model=$2; shift 2 ;;
    --adapters) adapters=$2; shift 2 ;;
    --show) show=$2; shift 2 ;;
    --prompt) opening=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --bench-tokens) bench_tokens=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo-serve: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for t in curl jq; do command -v $t >/dev/null || { echo "demo-serve: $t is missing: run scripts/install-deps.sh" >&2; exit 1; }; done
[ -x "$preft" ] || { echo "demo-serve: $preft is missing: run scripts/build.sh" >&2; exit 1; }
[ -f "$model/config.json" ] || { echo "demo-serve: no model at $model" >&2; exit 1; }
[ -d "$adapters" ] || { echo "demo-serve: no adapters at $adapters (scripts/train-presidents.sh makes them)" >&2; exit 1; }
names=$(cd "$adapters" && for d in */; do [ -f "$d/adapter_config.json" ] || [ -f "$d/reft_config.json" ] && echo "${d%/}"; done)
[ -n "$names" ] || { echo "demo-serve: no adapter folders in $adapters" >&2; exit 1; }
n_adapters=$(wc -l <<<"$names")
work=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; rm -rf "$work"' EXIT

# each adapter's president (display name) and the year of the held-out speech
# (the header "[YEAR] Name:" of the adapters' training data)
while IFS= read -r slug; do
  awk -F'\t' -v s="$slug" 'NR > 1 { n = tolower($2); gsub(/[^a-z0-9]+/, "-", n); if (n == s) { y = $4; name = $2 } }
    END { if (name == "") { name = s; y = 2000 } print s "\t" name "\t" y }' data/sotu/split.tsv
done <<<"$names" >"$work/who.tsv"
if [ -z "$show" ]; then
  for s in george-washington abraham-lincoln theodore-roosevelt franklin-d-roosevelt john-f-kennedy barack-obama; do
    grep -qx "$s" <<<"$names" && show="$show${show:+,}$s"
  done
  [ -n "$show" ] || show=$(head -3 <<<"$names" | paste -sd,)
fi

echo "demo: starting preft serve with $model and $n_adapters adapters from $adapters"
"$preft" serve -m "$model" --adapters "$adapters" --port 0 ${threads:+--threads "$threads"} >"$work/log" 2>&1 &
pid=$!
port=
for _ in $(seq 1200); do # 60 s
  port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\) (.*/\1/p' "$work/log")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "demo: the server did not start:" >&2; cat "$work/log" >&2; pid=; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "demo: the server reported no port in 60 s:" >&2; cat "$work/log" >&2; exit 1; }
url=http://127.0.0.1:$port
base=$(curl -sf "$url/v1/models" | jq -r '[.data[] | select(.parent == null) | .id][0]')
grep -q "is unavailable" "$work/log" && { echo "demo: some adapters did not load:" >&2; grep "is unavailable" "$work/log" >&2; exit 1; }

# request SLUG MODEL MODE TOKENS TEMPERATURE OUTFILE: one completion, in the
# background; the prompt is the president's header and the opening words
request() {
  local slug=$1 model=$2 mode=$3 tokens=$4 temp=$5 of=$6 name year
  IFS=$'\t' read -r _ name year < <(grep "^$slug"$'\t' "$work/who.tsv")
  jq -nc --arg m "$model" --arg p "[$year] $name: $opening" --arg mode "$mode" --argjson n "$tokens" --argjson t "$temp" \
    '{model: $m, prompt: $p, max_tokens: $n, temperature: $t, top_p: 0.95, seed: 7}
     + (if $t == 0 then {ignore_eos: true} else {} end) + (if $mode == "" then {} else {adapter_mode: $mode} end)' >"$of.req"
  curl -s --max-time 300 -o "$of" -w '%{http_code}' "$url/v1/completions" -H 'Content-Type: application/json' -d @"$of.req" >"$of.code" &
}

# ---- several presidents' voices, at once --------------------------------------------------------
IFS=, read -ra voices <<<"$show"
echo "demo: ${#voices[@]} requests at once, each naming its president's adapter (prefill-only, rank as trained):"
echo "      \"$opening ...\""
jobs_=()
for s in "${voices[@]}"; do
  grep -qx "$s" <<<"$names" || { echo "demo: no adapter '$s' in $adapters" >&2; exit 1; }
  request "$s" "$s" "" "$max_tokens" 0.8 "$work/voice.$s"
  jobs_+=($!)
done
wait "${jobs_[@]}"
for s in "${voices[@]}"; do
  [ "$(cat "$work/voice.$s.code")" = 200 ] || { echo "demo: the request for $s failed: $(cat "$work/voice.$s")" >&2; exit 1; }
done
# side by side: three columns of 38 characters
width=38
for ((i = 0; i < ${#voices[@]}; i += 3)); do
  cols=()
  for s in "${voices[@]:i:3}"; do
    name=$(awk -F'\t' -v s="$s" '$1 == s { print $2 }' "$work/who.tsv")
    { echo "== $name"; echo "$opening$(jq -r '.choices[0].text' "$work/voice.$s")" | tr -s '\n\t\r' '   ' | fold -s -w $width; } >"$work/col.$s"
    cols+=("$work/col.$s")
  done
  echo
  awk -v w=$width -v k=${#cols[@]} '
    { f = FILENAME; if (!(f in idx)) { idx[f] = nf++ } c = idx[f]; line[c, cnt[c]++] = $0; if (cnt[c] > rows) rows = cnt[c] }
    END { for (r = 0; r < rows; r++) { s = ""; for (c = 0; c < k; c++) { t = ((c, r) in line) ? line[c, r] : ""; s = s sprintf("%-" w "s  ", t) } sub(/ +$/, "", s); print s } }' "${cols[@]}"
done

# ---- throughput of the same requests: base, all-token, prefill-only ------------------------------
echo
echo "demo: throughput, $n_adapters requests at once (one per adapter, $bench_tokens tokens each, greedy):"
mapfile -t all_names <<<"$names"
printf '  %-34s %8s %8s %10s\n' "serving" tokens seconds "tokens/s"
for run in base all prefill; do
  jobs_=()
  t0=$(date +%s.%N)
  for s in "${all_names[@]}"; do
    case $run in
      base) request "$s" "$base" "" "$bench_tokens" 0 "$work/bench.$s" ;;
      *) request "$s" "$s" "$run" "$bench_tokens" 0 "$work/bench.$s" ;;
    esac
    jobs_+=($!)
  done
  wait "${jobs_[@]}"
  t1=$(date +%s.%N)
  tokens=0
  for s in "${all_names[@]}"; do
    [ "$(cat "$work/bench.$s.code")" = 200 ] || { echo "demo: a $run request for $s failed: $(cat "$work/bench.$s")" >&2; exit 1; }
    tokens=$((tokens + $(jq .usage.completion_tokens "$work/bench.$s")))
  done
  case $run in
    base) label="base model ($base)" ;;
    all) label="adapters on every token" ;;
    prefill) label="adapters on the prompt only" ;;
  esac
  awk -v l="$label" -v n=$tokens -v a="$t0" -v b="$t1" 'BEGIN { printf "  %-34s %8d %8.2f %10.1f\n", l, n, b - a, n / (b - a) }'
done

# ---- clean shutdown -------------------------------------------------------------------------------
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ $rc -ne 0 ]; then
  echo "demo: the server exited with status $rc:" >&2
  tail -20 "$work/log" >&2
  exit $rc
fi
echo
echo "demo: the server shut down cleanly (exit 0)"
