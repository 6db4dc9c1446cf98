#!/usr/bin/env bash
# End-to-end: `preft serve` of a BERT encoder (tests/data/bert) answers
# /v1/embeddings with its pooled output (= `preft encode --pooled`, which
# cli_encode.sh checks against PyTorch), L2-normalised unless
# "normalize": false; a checkpoint without a pooler gives the mean of its
# last hidden state (= the mean of `preft encode`'s rows); the generation
# endpoints answer 400 naming the model; adapters are refused at start-up.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do tail -20 "$l"; done; rm -rf "$tmp"' EXIT
ids=44,49,12,32,5,37,1
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
# max |a - b| of two whitespace-separated lists of numbers
maxdiff() { paste <(tr -s ' \n' '\n\n' <<<"$1" | grep .) <(tr -s ' \n' '\n\n' <<<"$2" | grep .) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ } END { if (n == 0) print 1; else printf "%.3g\n", m }'; }
emb() { curl -s "$SRV_URL/v1/embeddings" -d "$1" | jq -r '.data[0].embedding | map(tostring) | join(" ")'; }

m=$data/bert/bert-model-f32
"$bin" encode -m "$m" --ids "$ids" --pooled -o "$tmp/p.f32" 2>/dev/null
want=$(od -An -v -t f4 "$tmp/p.f32")
start_server "$tmp/log" -m "$m" --threads 1 || exit 1
got=$(emb "{\"input\":[$ids],\"normalize\":false}")
d=$(maxdiff "$got" "$want")
check "pooled embedding = preft encode --pooled (max diff $d)" below "$d" 1e-6
norm=$(emb "{\"input\":[$ids]}" | tr ' ' '\n' | awk '{ s += $1 * $1 } END { printf "%.6f", sqrt(s) }')
check "normalised by default (norm $norm)" test "$norm" = 1.000000
r=$(post /v1/completions '{"prompt":[1,2]}')
check "completions: 400 naming model" test "${r##*$'\n'}:$(echo "${r%$'\n'*}" | jq -r .error.param)" = "400:model"
r=$(post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}]}')
check "chat: 400" test "${r##*$'\n'}" = 400
check "/v1/models lists the encoder alone" test "$(curl -s "$SRV_URL/v1/models" | jq -c '[.data[].id]')" = '["bert-model-f32"]'
r=$(post /v1/embeddings '{"input":[1,2],"model":"other"}')
check "another model: 404" test "${r##*$'\n'}" = 404
r=$(post /v1/embeddings '{"input":[1,999]}')
check "an id outside the vocabulary: 400 naming input" test "${r##*$'\n'}:$(echo "${r%$'\n'*}" | jq -r .error.param)" = "400:input"
stop_server
check "SIGTERM: exit 0" test $? -eq 0

# no pooler (BertForMaskedLM): the mean of the last hidden state
m2=$data/bert/bert-mlm-gamma-f16
"$bin" encode -m "$m2" --ids "$ids" -o "$tmp/h.f32" 2>/dev/null
D=$(jq .hidden_size "$m2/config.json")
want=$(od -An -v -t f4 -w4 "$tmp/h.f32" | awk -v D="$D" '{ s[(NR - 1) % D] += $1; n = int((NR - 1) / D) + 1 }
  END { for (i = 0; i < D; i++) printf "%.9g ", s[i] / n }')
start_server "$tmp/log2" -m "$m2" --threads 1 || exit 1
d=$(maxdiff "$(emb "{\"input\":[$ids],\"normalize\":false}")" "$want")
check "no pooler: mean of the last hidden state (max diff $d)" below "$d" 1e-6
check "  (the reference has $D values)" test "$(wc -w <<<"$want")" -eq "$D"
stop_server
check "SIGTERM: exit 0 (no pooler)" test $? -eq 0

"$bin" serve -m "$m" --port 0 --adapters "$tmp" >"$tmp/out" 2>&1
check "an encoder with --adapters: exit 2 naming the encoder" \
  bash -c "[ $? -eq 2 ] && grep -q 'encoder' '$tmp/out'"
exit $((fails > 0))
