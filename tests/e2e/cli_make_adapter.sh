#!/usr/bin/env bash
# End-to-end: `preft make-adapter` adapters are distinguishable (issue 20):
# on the embedded default model, LoRA (BF16) and DiReFT adapters at the
# default --scale change the greedy output of each of three prompts within
# a few tokens, and two seeds give two outputs, so a test that checks which
# adapter was applied can fail. A LoRA at --scale 0.002 (50x below the
# default) leaves a prompt's first 16 tokens as the base's: the check above
# measures the adapter's size, not noise.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
model=$root/assets/default-model
gen() { "$bin" generate -m "$model" "$@" -n 16 --print-ids 2>/dev/null | tail -1; }
# first_diff A B: index of the first differing token of two id lists (16 if none)
first_diff() {
  local a=($1) b=($2) k=0
  while [ $k -lt 16 ] && [ "${a[$k]:-x}" = "${b[$k]:-y}" ]; do k=$((k + 1)); done
  echo $k
}
for kind in lora direft; do
  for seed in 1 2; do "$bin" make-adapter -m "$model" --kind $kind --seed $seed -o "$tmp/$kind$seed" >/dev/null; done
done
"$bin" make-adapter -m "$model" --kind lora --seed 3 --scale 0.002 -o "$tmp/weak" >/dev/null
check "make-adapter --help documents --scale" bash -c "'$bin' make-adapter --help | grep -q -- --scale"
for p in 5,6,7,8,9,10 100,200,300 42,43,44,45,46,47,48,49; do
  base=$(gen --ids "$p")
  for kind in lora direft; do
    a1=$(gen -a "$tmp/${kind}1" --ids "$p")
    a2=$(gen -a "$tmp/${kind}2" --ids "$p")
    d=$(first_diff "$base" "$a1")
    check "$kind, prompt $p: the output leaves the base's by token 4 (at $d)" test "$d" -le 4
    check "$kind, prompt $p: two seeds, two outputs" test "$a1" != "$a2"
  done
done
d=$(first_diff "$(gen --ids 100,200,300)" "$(gen -a "$tmp/weak" --ids 100,200,300)")
check "--scale 0.002: 16 tokens as the base's ($d)" test "$d" -eq 16
e2e_exit
