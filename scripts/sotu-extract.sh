#!/usr/bin/env bash
# Writes the byte ranges of one side of data/sotu/split.tsv as files, one per
# row: OUT_DIR/<file>[.<start>-<end>].txt (the suffix only for partial
# ranges), so that training never reads held-out text.
# Usage: scripts/sotu-extract.sh train|heldout OUT_DIR [PRESIDENT]
set -euo pipefail
cd "$(dirname "$0")/.."
side=${1:?usage: sotu-extract.sh train|heldout OUT_DIR [PRESIDENT]}
out=${2:?usage: sotu-extract.sh train|heldout OUT_DIR [PRESIDENT]}
who=${3:-}
case "$side" in train | heldout) ;; *) echo "sotu-extract: the side is train or heldout, not '$side'" >&2; exit 2 ;; esac
src=$(bash scripts/fetch-sotu.sh)
mkdir -p "$out"
tail -n +2 data/sotu/split.tsv | while IFS=$'\t' read -r split name _party _year file start end; do
  [ "$split" = "$side" ] || continue
  [ -z "$who" ] || [ "$name" = "$who" ] || continue
  size=$(stat -c %s "$src/$file")
  name_out=${file%.txt}
  [ "$start" -eq 0 ] && [ "$end" -eq "$size" ] || name_out="$name_out.$start-$end"
  # head stops reading at END and tail reads to its end: no side of the pipe
  # is cut short (tail | head could die of SIGPIPE under pipefail, at random)
  head -c "$end" "$src/$file" | tail -c $((end - start)) >"$out/$name_out.txt"
done
echo "$out"
