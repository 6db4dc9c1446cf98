#!/usr/bin/env bash
# End-to-end: `preft rl-data`. The same seed prints the same prompts; text
# with answers is "PROMPT ANSWER" lines; --jsonl writes a task file that
# --task-file reads back line for line; training seeds and held-out seeds
# (>= 1000000) share no problem; bad task names and files exit with a reason.
source "$(dirname "$0")/e2e_lib.bash"
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }

check "rl-data --help exits 0 and lists the tasks" bash -c "'$bin' rl-data --help | grep -q 'reverse:N'"
"$bin" rl-data --task addition --n 50 --seed 3 >"$tmp/a1"
"$bin" rl-data --task addition --n 50 --seed 3 >"$tmp/a2"
"$bin" rl-data --task addition --n 50 --seed 4 >"$tmp/a3"
check "same seed, same prompts" cmp -s "$tmp/a1" "$tmp/a2"
check "another seed, other prompts" bash -c "! cmp -s '$tmp/a1' '$tmp/a3'"
check "50 prompts ending in the marker and its space" test "$(grep -c ' A: $' "$tmp/a1")" -eq 50
"$bin" rl-data --task addition:3 --n 20 --seed 3 --with-answers >"$tmp/wa"
check "--with-answers: one space before the answer" test "$(grep -c 'A: [0-9]' "$tmp/wa")" -eq 20
# every number is written least significant digit first
check "--with-answers: the sums are right" awk -F'[ +=]+' 'function fwd(s,  r, i) { r = ""; for (i = length(s); i > 0; i--) r = r substr(s, i, 1); return r + 0 }
  { if (fwd($2) + fwd($3) != fwd($5)) bad = 1 } END { exit bad || NR != 20 }' "$tmp/wa"
"$bin" rl-data --task reverse --n 5 --start 10 --seed 3 >"$tmp/s1"
"$bin" rl-data --task reverse --n 15 --seed 3 | tail -5 >"$tmp/s2"
check "--start picks up the stream" cmp -s "$tmp/s1" "$tmp/s2"

"$bin" rl-data --task count --n 30 --seed 2 --jsonl >"$tmp/t.jsonl"
check "--jsonl lines carry the match kind" test "$(grep -c '"match":"first_line"' "$tmp/t.jsonl")" -eq 30
"$bin" rl-data --task-file "$tmp/t.jsonl" --n 30 --seed 9 --jsonl | sort >"$tmp/back"
check "a task file reads back the same lines" bash -c "sort '$tmp/t.jsonl' | cmp -s - '$tmp/back'"

"$bin" rl-data --task addition:1 --n 3000 --seed 1 | sort -u >"$tmp/train"
"$bin" rl-data --task addition:1 --n 300 --seed 1000000 | sort -u >"$tmp/heldout"
check "held-out problems exist" test "$(wc -l <"$tmp/heldout")" -ge 3
check "training and held-out seeds share no problem" test -z "$(comm -12 "$tmp/train" "$tmp/heldout")"

check "unknown task exits 2" test "$(rc "$bin" rl-data --task subtraction --n 1)" -eq 2
check "  naming it" grep -q "unknown task 'subtraction'" "$tmp/err"
check "bad level exits 2" test "$(rc "$bin" rl-data --task count:0 --n 1)" -eq 2
printf '{"prompt": "a", "answer": "b"}\n{"prompt": 3, "answer": "b"}\n' >"$tmp/bad.jsonl"
check "bad task file exits 1" test "$(rc "$bin" rl-data --task-file "$tmp/bad.jsonl" --n 1)" -eq 1
check "  naming FILE:LINE and the field" grep -q "bad.jsonl:2: field \"prompt\"" "$tmp/err"
check "no --n exits 2" test "$(rc "$bin" rl-data --task count)" -eq 2
e2e_exit
