#!/usr/bin/env bash
# End-to-end: the serving half of the README's demo (scripts/demo-serve.sh),
# on a tiny random model with the default model's tokenizer and three
# presidents' adapters (random, prefill-only): the script starts `preft
# serve`, gets every president's generation (shown under the president's
# name), measures the three throughput rows (base, all-token, prefill-only:
# every request answered, a positive rate) and shuts the server down with
# exit 0. A broken adapter folder makes it fail with a message, not hang.
source "$(dirname "$0")/e2e_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
dm=$repo/assets/default-model
vocab=$(jq .vocab_size "$dm/config.json")
"$bin" make-model --shape tiny --vocab "$vocab" -o "$tmp/model" >/dev/null
cp "$dm/tokenizer.json" "$dm/tokenizer_config.json" "$tmp/model/"
mkdir -p "$tmp/ad"
"$bin" make-adapter -m "$tmp/model" --kind lora --rank 4 --mode prefill --seed 1 -o "$tmp/ad/abraham-lincoln" >/dev/null
"$bin" make-adapter -m "$tmp/model" --kind direft --rank 4 --mode prefill --seed 2 -o "$tmp/ad/george-washington" >/dev/null
"$bin" make-adapter -m "$tmp/model" --kind lora --rank 4 --mode prefill --seed 3 -o "$tmp/ad/barack-obama" >/dev/null
demo() { timeout $((120 * ${PREFT_TEST_TIME_SCALE:-1})) bash "$repo/scripts/demo-serve.sh" --preft "$bin" -m "$tmp/model" --threads 1 --max-tokens 6 --bench-tokens 4 "$@"; }
demo --adapters "$tmp/ad" >"$tmp/out" 2>&1
rc=$?
check "demo-serve exits 0" test $rc -eq 0
check "it names the three adapters' presidents" \
  bash -c "grep -q '== George Washington' '$tmp/out' && grep -q '== Abraham Lincoln' '$tmp/out' && grep -q '== Barack Obama' '$tmp/out'"
for l in "base model" "adapters on every token" "adapters on the prompt only"; do
  check "throughput row '$l': 12 tokens, a positive rate" \
    bash -c "awk -v l='$l' 'index(\$0, l) == 3 { ok = (\$(NF - 2) == 12 && \$NF > 0) } END { exit !ok }' '$tmp/out'"
done
check "the server shut down cleanly" grep -q "shut down cleanly (exit 0)" "$tmp/out"
# a broken adapter: the script says so and fails (the server is not left running)
mkdir -p "$tmp/bad/john-adams" && echo '{' >"$tmp/bad/john-adams/adapter_config.json"
demo --adapters "$tmp/bad" >"$tmp/out2" 2>&1
rc=$?
check "a broken adapter: non-zero exit" test $rc -ne 0 -a $rc -ne 124
check "  naming it" grep -q "john-adams" "$tmp/out2"
[ $fails -eq 0 ] || { echo "== demo output"; cat "$tmp/out"; echo "== with the broken adapter"; cat "$tmp/out2"; }
e2e_exit
