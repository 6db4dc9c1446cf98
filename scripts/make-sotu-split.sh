#!/usr/bin/env bash
# Writes the train / held-out split of the State of the Union addresses,
# data/sotu/split.tsv: for every president, the latest speech is held out;
# for a president with a single speech, its last fifth (from the first
# whitespace at or after 4/5 of its bytes). Everything else is training
# text. Columns: split, president, party, year, file, start, end (a byte
# range [start, end) of the .txt file). Deterministic: rerunning it gives
# the same file. scripts/sotu-extract.sh turns the manifest into files.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(bash scripts/fetch-sotu.sh)
out=data/sotu/split.tsv
mkdir -p data/sotu
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf 'split\tpresident\tparty\tyear\tfile\tstart\tend\n' >"$tmp"
# one row per speech: name, party, year, file, bytes; sorted by name, year, file
for j in "$src"/*.json; do
  f=$(basename "$j" .json).txt
  printf '%s\t%s\n' "$(jq -r '[.name, .party, (.year | tostring)] | @tsv' "$j")" "$f"
done | while IFS=$'\t' read -r name party year file; do
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$party" "$year" "$file" "$(stat -c %s "$src/$file")"
done | sort -t$'\t' -k1,1 -k3,3n -k4,4 | awk -F'\t' -v OFS='\t' -v src="$src" '
  { name[NR] = $1; party[NR] = $2; year[NR] = $3; file[NR] = $4; size[NR] = $5; count[$1]++; last[$1] = NR }
  END {
    for (i = 1; i <= NR; i++) {
      n = name[i]
      if (count[n] > 1) {
        print (i == last[n] ? "heldout" : "train"), n, party[i], year[i], file[i], 0, size[i]
        continue
      }
      # a single speech: cut at the first whitespace at or after 4/5 of its bytes
      cut = int(size[i] * 4 / 5)
      cmd = "tail -c +" (cut + 1) " \"" src "/" file[i] "\""
      RS_old = RS; RS = "\001"; cmd | getline rest; close(cmd); RS = RS_old
      match(rest, /[ \t\n]/)
      cut += (RSTART > 0 ? RSTART - 1 : 0)
      print "train", n, party[i], year[i], file[i], 0, cut
      print "heldout", n, party[i], year[i], file[i], cut, size[i]
    }
  }' >>"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "make-sotu-split: $(grep -c $'^train\t' "$out") training and $(grep -c $'^heldout\t' "$out") held-out ranges, $(cut -f2 "$out" | tail -n +2 | sort -u | wc -l) presidents -> $out"
