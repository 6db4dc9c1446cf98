#!/usr/bin/env bash
# Held-out bits per byte of a model on the State of the Union split: for every
# president, `preft perplexity --json` on that president's held-out text (the
# heldout side of data/sotu/split.tsv, never seen in training), then the mean
# over presidents and the pooled figure (all held-out NLL bits / all held-out
# bytes). Writes OUT.tsv (one row per president) and OUT.json (the summary)
# and prints the table.
# Usage: scripts/eval-heldout.sh [MODEL_DIR] [OUT_PREFIX] [BUILD_DIR]
#   env: ADAPTER (adapter dir, optional), ADAPTER_MODE (all|prefill),
#        MAX_BYTES (score only the first N bytes of each held-out text)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/default-model}
out=${2:-heldout}
build=${3:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash scripts/sotu-extract.sh heldout "$work/text" >/dev/null
adapter_args=()
[ -z "${ADAPTER:-}" ] || adapter_args=(-a "$ADAPTER" --adapter-mode "${ADAPTER_MODE:-all}")
printf 'president\tyear\tbytes\ttokens\tnll\tbits_per_byte\n' >"$work/table.tsv"
tail -n +2 data/sotu/split.tsv | while IFS=$'\t' read -r split name _party year file start end; do
  [ "$split" = heldout ] || continue
  text=$(ls "$work/text/${file%.txt}"*.txt)
  if [ -n "${MAX_BYTES:-}" ]; then
    head -c "$MAX_BYTES" "$text" >"$work/cut.txt"
    text=$work/cut.txt
  fi
  "$build/preft" perplexity -m "$model" -f "$text" "${adapter_args[@]}" --json "$work/p.json" >/dev/null 2>"$work/err" ||
    { cat "$work/err" >&2; echo "eval-heldout: preft perplexity failed on $name's held-out text" >&2; exit 1; }
  jq -r --arg n "$name" --arg y "$year" \
    '[$n, $y, .bytes, .tokens, (.nll * 1e6 | round / 1e6), (.bits_per_byte * 1e4 | round / 1e4)] | @tsv' \
    "$work/p.json" >>"$work/table.tsv"
  echo "eval-heldout: $name $(jq -r '.bits_per_byte' "$work/p.json")" >&2
done
mv "$work/table.tsv" "$out.tsv.tmp" && mv "$out.tsv.tmp" "$out.tsv"
# pooled: sum over presidents of bpb*bytes / sum of bytes
awk -F'\t' 'NR > 1 { n++; s += $6; bits += $6 * $3; bytes += $3; if (min == "" || $6 < min) min = $6; if ($6 > max) max = $6 }
  END { printf "{\"presidents\": %d, \"mean_bits_per_byte\": %.4f, \"pooled_bits_per_byte\": %.4f, \"min\": %.4f, \"max\": %.4f, \"bytes\": %d}\n", n, s / n, bits / bytes, min, max, bytes }' \
  "$out.tsv" >"$out.json.tmp"
mv "$out.json.tmp" "$out.json"
column -t -s $'\t' "$out.tsv"
cat "$out.json"
