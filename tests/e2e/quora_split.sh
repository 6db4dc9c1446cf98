#!/usr/bin/env bash
# data/multitask: the Quora train/dev split (issue 16) is what
# scripts/split-quora.sh writes from the committed halves (it depends only
# on the set of ids), the halves are disjoint and complete, the id list
# agrees with the dev file, and the copied SST / STS files are unchanged.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
d=$root/data/multitask
body() { tail -n +2 "$1"; }

check "the split script reproduces the committed split byte for byte" bash -c '
  bash "$1/scripts/split-quora.sh" --out "$2/again" >/dev/null &&
  cmp "$2/again/quora-train.csv" "$3/quora-train.csv" &&
  cmp "$2/again/quora-dev.csv" "$3/quora-dev.csv" &&
  cmp "$2/again/quora-dev-ids.txt" "$3/quora-dev-ids.txt"' _ "$root" "$tmp" "$d"
check "another seed gives another dev set" bash -c '
  bash "$1/scripts/split-quora.sh" --seed 17 --out "$2/other" >/dev/null &&
  ! cmp -s "$2/other/quora-dev-ids.txt" "$3/quora-dev-ids.txt"' _ "$root" "$tmp" "$d"
check "16170 training and 4042 dev pairs" test "$(body "$d/quora-train.csv" | wc -l) $(body "$d/quora-dev.csv" | wc -l)" = "16170 4042"
check "no id in both halves, none repeated" test -z "$( { body "$d/quora-train.csv"; body "$d/quora-dev.csv"; } | cut -f2 | sort | uniq -d)"
check "the dev id list is the dev file's ids" bash -c 'diff <(tail -n +2 "$1/quora-dev.csv" | cut -f2 | LC_ALL=C sort) "$1/quora-dev-ids.txt"' _ "$d"
check "every row has 5 fields and a 0.0 / 1.0 label" test -z "$( { body "$d/quora-train.csv"; body "$d/quora-dev.csv"; } | awk -F'\t' 'NF != 5 || ($5 != "0.0" && $5 != "1.0")')"
check "both halves keep the source header" test "$(head -n 1 "$d/quora-train.csv")" = "$(printf '\tid\tsentence1\tsentence2\tis_duplicate')" -a "$(head -n 1 "$d/quora-dev.csv")" = "$(head -n 1 "$d/quora-train.csv")"
# the dev share is near the label balance of the whole (a biased split would drift)
check "dev duplicates share within 2 points of the whole" bash -c '
  all=$( { tail -n +2 "$1/quora-train.csv"; tail -n +2 "$1/quora-dev.csv"; } | awk -F"\t" "{ n++; p += (\$5 == \"1.0\") } END { print p / n }")
  dev=$(tail -n +2 "$1/quora-dev.csv" | awk -F"\t" "{ n++; p += (\$5 == \"1.0\") } END { print p / n }")
  awk -v a="$all" -v b="$dev" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 0.02) }"' _ "$d"
check "the SST and STS files are the ones the README names" bash -c '
  cd "$1" && sed -n "/^\`\`\`$/,/^\`\`\`$/p" README.md | grep -E "^[0-9a-f]{64}  " | sha256sum -c --quiet' _ "$d"
e2e_exit
