#!/usr/bin/env bash
# End-to-end: speculative decoding by prompt lookup (`--speculative ngram`)
# and by the draft model (`--draft-model assets/draft-model`) on the
# embedded default model. `preft generate` writes the same text with it as
# without, greedy (both drafters) and seeded sampled (prompt lookup), on a
# prompt that repeats (where drafts are made and accepted: -v reports it);
# `preft serve --speculative ngram` answers a completion with that same
# text, and 8 concurrent ones each with their own, and so does `serve
# --draft-model`; a bad --speculative value, or draft without a draft
# model, is a usage error; a draft model of another vocabulary, or whose
# tokenizer.json holds another vocabulary, is refused (naming both
# directories).
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
dm=$data/../../assets/default-model
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && tail -40 "$tmp/log"; rm -rf "$tmp"' EXIT
prompt="The Congress shall have power to lay and collect taxes. The Congress shall have power to borrow money. The Congress shall have power to"
gen() { "$bin" generate -m "$dm" -p "$prompt" -n 48 --ignore-eos --threads 1 "$@"; }

gen --temperature 0 >"$tmp/plain"
gen --temperature 0 --speculative ngram --spec-k 5 -v >"$tmp/spec" 2>"$tmp/err"
check "greedy: the same text with speculation" cmp -s "$tmp/plain" "$tmp/spec"
accepted=$(sed -n 's/.*tokens, \([0-9]*\) accepted.*/\1/p' "$tmp/err")
check "drafts were made and accepted (accepted: '$accepted')" test "${accepted:-0}" -gt 0
gen --temperature 0.9 --seed 7 >"$tmp/plain-s"
gen --temperature 0.9 --seed 7 --speculative ngram >"$tmp/spec-s"
check "seeded sampling: the same text with speculation" cmp -s "$tmp/plain-s" "$tmp/spec-s"
dd=$data/../../assets/draft-model
gen --temperature 0 --draft-model "$dd" -v >"$tmp/draft" 2>"$tmp/err"
check "greedy: the same text with a draft model" cmp -s "$tmp/plain" "$tmp/draft"
accepted=$(sed -n 's/.*tokens, \([0-9]*\) accepted.*/\1/p' "$tmp/err")
check "  its drafts were accepted (accepted: '$accepted')" test "${accepted:-0}" -gt 0
"$bin" generate -m "$dm" -p x --speculative draft 2>"$tmp/err"
check "--speculative draft without --draft-model is a usage error (2)" test $? -eq 2
"$bin" generate -m "$dm" -p x --draft-model "$data/models/llama-gqa-rope3" 2>"$tmp/err"
check "a draft model of another vocabulary fails (1)" test $? -eq 1
check "  saying why" grep -q "vocabulary" "$tmp/err"
mkdir "$tmp/other-tok" # the draft model with two tokens swapped in its tokenizer.json
cp "$dd/config.json" "$dd/generation_config.json" "$dd/tokenizer_config.json" "$tmp/other-tok/"
ln -s "$(cd "$dd" && pwd)/model.safetensors" "$tmp/other-tok/model.safetensors"
jq -c '.model.vocab |= with_entries(if .value == 100 then .value = 101 elif .value == 101 then .value = 100 else . end)' \
  "$dd/tokenizer.json" >"$tmp/other-tok/tokenizer.json"
"$bin" generate -m "$dm" -p x --draft-model "$tmp/other-tok" 2>"$tmp/err"
check "a draft model whose tokenizer.json has another vocabulary fails (1)" test $? -eq 1
check "  naming both directories and what differs" grep -q "other-tok .*default-model.*differ in vocab" "$tmp/err"
"$bin" generate -m "$dm" -p x --speculative eagle 2>"$tmp/err"
check "an unknown --speculative is a usage error (2)" test $? -eq 2
check "  naming the option" grep -q -- "--speculative" "$tmp/err"

start_server "$tmp/log" -m "$dm" --threads 1 --speculative ngram || exit 1
req=$(jq -cn --arg p "$prompt" '{model: "default-model", prompt: $p, max_tokens: 48, temperature: 0, ignore_eos: true}')
text=$(curl -s "$SRV_URL/v1/completions" -d "$req" | jq -j '.choices[0].text')
check "serve --speculative ngram: the text of preft generate" test "$text" = "$(cat "$tmp/plain")"
pids=()
for i in 1 2 3 4 5 6 7 8; do
  jq -cn --arg p "$prompt $i" '{model: "default-model", prompt: $p, max_tokens: 32, temperature: 0, ignore_eos: true}' >"$tmp/req$i"
  curl -s "$SRV_URL/v1/completions" -d @"$tmp/req$i" | jq -j '.choices[0].text' >"$tmp/got$i" &
  pids+=($!)
done
wait_jobs "${pids[@]}"
ok=1
for i in 1 2 3 4 5 6 7 8; do
  "$bin" generate -m "$dm" -p "$prompt $i" -n 32 --ignore-eos --threads 1 --temperature 0 >"$tmp/want$i"
  [ "$(cat "$tmp/got$i")" = "$(cat "$tmp/want$i")" ] || { ok=0; echo "  request $i differs"; }
done
check "8 concurrent completions: each the text of preft generate" test $ok = 1
drafted=$(curl -s "$SRV_URL/metrics" | sed -n 's/^preft_spec_drafted_tokens_total \([0-9]*\)/\1/p')
check "/metrics counts drafted tokens ('$drafted')" test "${drafted:-0}" -gt 0
stop_server
check "the server exits 0 on SIGTERM" test $? -eq 0

start_server "$tmp/log" -m "$dm" --threads 1 --draft-model "$dd" || exit 1
text=$(curl -s "$SRV_URL/v1/completions" -d "$req" | jq -j '.choices[0].text')
check "serve --draft-model: the text of preft generate" test "$text" = "$(cat "$tmp/plain")"
accepted=$(curl -s "$SRV_URL/metrics" | sed -n 's/^preft_spec_accepted_tokens_total \([0-9]*\)/\1/p')
check "  /metrics counts accepted drafts ('$accepted')" test "${accepted:-0}" -gt 0
stop_server
check "the server exits 0 on SIGTERM" test $? -eq 0
exit $((fails > 0))
