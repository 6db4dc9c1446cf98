#!/usr/bin/env bash
# Splits the Quora question pairs (the CS224N multitask `quora-dev.csv`,
# 20214 pairs) into data/multitask/quora-train.csv and quora-dev.csv by a
# fixed seed, and writes the held-out ids to data/multitask/quora-dev-ids.txt.
#
#   scripts/split-quora.sh [--source FILE] [--out DIR] [--seed N]
#
# --source: the original file. Without it, the source is the two committed
#   halves put back together (header, train rows, dev rows): the split depends
#   only on the set of ids, not on their order, so this reproduces the
#   committed files byte for byte (tests/e2e/quora_split.sh checks it).
# --out: where to write (default data/multitask); --seed: default 16.
#
# Rule: rows whose label (column 5) is neither 0.0 nor 1.0 are dropped (two
# rows of the source, broken by unbalanced quotes). The remaining ids are
# sorted (bytewise), shuffled by Fisher-Yates driven by the Park-Miller
# generator x <- 48271 x mod (2^31 - 1) starting at the seed, and the first
# floor(n / 5) of the shuffled order are the dev set. Rows keep their source
# order in both halves. Integer arithmetic below 2^53 only, so any awk gives
# the same split.
set -euo pipefail
cd "$(dirname "$0")/.."
source_file="" out=data/multitask seed=16
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_file=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "split-quora: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$seed" in '' | *[!0-9]*) echo "split-quora: --seed must be a positive integer" >&2; exit 2 ;; esac
[ "$seed" -gt 0 ] && [ "$seed" -lt 2147483647 ] || { echo "split-quora: --seed must be in 1..2147483646" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$source_file" ]; then
  for f in data/multitask/quora-train.csv data/multitask/quora-dev.csv; do
    [ -f "$f" ] || { echo "split-quora: $f is missing; pass --source FILE" >&2; exit 1; }
  done
  { cat data/multitask/quora-train.csv; tail -n +2 data/multitask/quora-dev.csv; } >"$tmp/source.csv"
  source_file=$tmp/source.csv
fi
[ -f "$source_file" ] || { echo "split-quora: $source_file: no such file" >&2; exit 1; }
header=$(head -n 1 "$source_file")
[ "$header" = $'\tid\tsentence1\tsentence2\tis_duplicate' ] ||
  { echo "split-quora: $source_file: line 1 is not the header '<tab>id<tab>sentence1<tab>sentence2<tab>is_duplicate'" >&2; exit 1; }

# usable rows: 5 fields, a label of 0.0 or 1.0
tail -n +2 "$source_file" | awk -F'\t' 'NF == 5 && ($5 == "0.0" || $5 == "1.0")' >"$tmp/rows"
cut -f2 "$tmp/rows" | LC_ALL=C sort >"$tmp/ids"
dups=$(uniq -d "$tmp/ids" | head -n 3)
[ -z "$dups" ] || { echo "split-quora: duplicate ids in $source_file: $dups" >&2; exit 1; }

awk -v seed="$seed" '
  { id[NR] = $0 }
  END {
    n = NR; x = seed
    for (i = n; i >= 2; i--) {
      x = (48271 * x) % 2147483647
      j = 1 + x % i
      t = id[i]; id[i] = id[j]; id[j] = t
    }
    for (i = 1; i <= int(n / 5); i++) print id[i]
  }' "$tmp/ids" | LC_ALL=C sort >"$tmp/dev-ids"

printf '%s\n' "$header" >"$tmp/train.csv"
printf '%s\n' "$header" >"$tmp/dev.csv"
awk -F'\t' -v train="$tmp/train.csv" -v dev="$tmp/dev.csv" '
  FNR == NR { is_dev[$0] = 1; next }
  { print >> ($2 in is_dev ? dev : train) }' "$tmp/dev-ids" "$tmp/rows"

mkdir -p "$out"
# each file written next to its destination, then renamed over it
for pair in train.csv:quora-train.csv dev.csv:quora-dev.csv dev-ids:quora-dev-ids.txt; do
  cp "$tmp/${pair%%:*}" "$out/.${pair#*:}.tmp"
  mv "$out/.${pair#*:}.tmp" "$out/${pair#*:}"
done
echo "split-quora: seed $seed: $(($(wc -l <"$tmp/train.csv") - 1)) train, $(($(wc -l <"$tmp/dev.csv") - 1)) dev pairs of $(wc -l <"$tmp/ids") usable ($(($(wc -l <"$source_file") - 1)) rows in the source) -> $out"
