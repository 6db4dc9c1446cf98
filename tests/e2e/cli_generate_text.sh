#!/usr/bin/env bash
# End-to-end: `preft generate` with a real tokenizer (Qwen3's, fetched by
# scripts/fetch-test-data.sh) beside a small random model of the same
# vocabulary: -p text is encoded, output streams as text, --chat renders the
# chat template, --stop cuts the text right before the stop string, and the
# text equals the detokenized ids of the same run.
source "$(dirname "$0")/e2e_lib.bash"
tok=$data/.cache/qwen3
[ -s "$tok/tokenizer.json" ] || { echo "missing $tok/tokenizer.json: run scripts/fetch-test-data.sh"; exit 1; }

"$bin" make-model --shape tiny --vocab 151936 --seed 2 -o "$tmp/m" 2>/dev/null
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$tmp/m/"

gen() { "$bin" generate -m "$tmp/m" --temperature 0 --ignore-eos "$@"; }
text=$(gen -p "The quick brown fox" -n 24)
check "generate -p exits 0 and prints text" test -n "$text"
ids=$(gen -p "The quick brown fox" -n 24 --print-ids | tr ' ' ',')
check "--print-ids prints 24 ids" test "$(echo "$ids" | tr ',' '\n' | wc -l)" -eq 24
detok=$("$bin" detokenize --tokenizer "$tmp/m" --ids "$ids")
check "streamed text = detokenized ids" test "$text" = "$detok"

# a stop string from the middle of the greedy output
stop=${text:10:3}
want=${text%%"$stop"*}
got=$(gen -p "The quick brown fox" -n 24 --stop "$stop")
check "--stop '$stop' cuts before its first occurrence" test "$got" = "$want"

chat=$(gen -p "Hi" --chat --system "Be brief." -n 4 -v 2>"$tmp/err")
check "--chat runs" test $? -eq 0
prompt_tokens=$(sed -n 's/.*: \([0-9]*\) prompt.*/\1/p' "$tmp/err")
# (the sentinel keeps the template's trailing newline from $(...))
rendered=$("$bin" chat-template --tokenizer "$tmp/m" --messages <(echo '[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]') --add-generation-prompt; echo x)
rendered=${rendered%x}
want_tokens=$("$bin" tokenize --tokenizer "$tmp/m" --no-special --text "$rendered" | tr -cd ',' | wc -c)
check "--chat prompt is the rendered template ($prompt_tokens tokens)" test "$prompt_tokens" -eq $((want_tokens + 1))

# perplexity: one window equals the NLL computed from `preft logits`
printf 'It was the best of times, it was the worst' >"$tmp/text.txt"
ids=$("$bin" tokenize --tokenizer "$tmp/m" --text "$(cat "$tmp/text.txt")" | tr -d '[]')
"$bin" logits -m "$tmp/m" --ids "$ids" -o "$tmp/l.f32" 2>/dev/null
want=$(od -An -v -t f4 -w$((151936 * 4)) "$tmp/l.f32" | awk -v ids="$ids" '
  BEGIN { n = split(ids, t, ",") }
  NR < n { mx = $1; for (i = 2; i <= NF; i++) if ($i > mx) mx = $i
           s = 0; for (i = 1; i <= NF; i++) s += exp($i - mx)
           nll += log(s) + mx - $(t[NR + 1] + 1); c++ }
  END { printf "%.4f", exp(nll / c) }')
got=$("$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" 2>/dev/null | sed -n 's/^perplexity //p')
check "perplexity ($got) = exp(mean NLL) from logits ($want)" awk -v a="$got" -v b="$want" 'BEGIN{exit !(a - b < 1e-3 * b && b - a < 1e-3 * b)}'
got2=$("$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" --ctx 64 --stride 3 2>/dev/null | sed -n 's/^perplexity //p')
check "stride does not matter within one window ($got2)" test "$got2" = "$got"
n_tok=$("$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" --ctx 4 --stride 2 2>/dev/null | sed -n 's/^tokens //p')
check "sliding windows score every token but the first ($n_tok)" test "$n_tok" -eq $(($(echo "$ids" | tr ',' '\n' | wc -l) - 1))
# --json: the same NLL; bits per byte = summed NLL in bits over the file's 42 bytes
"$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" --json "$tmp/ppl.json" >/dev/null 2>&1
want_bpb=$(awk -v p="$want" -v n="$(echo "$ids" | tr ',' '\n' | wc -l)" 'BEGIN{printf "%.4f", log(p) * (n - 1) / log(2) / 42}')
got_bpb=$(jq -r '.bits_per_byte' "$tmp/ppl.json")
check "--json bits_per_byte ($got_bpb) from logits ($want_bpb)" awk -v a="$got_bpb" -v b="$want_bpb" 'BEGIN{exit !(a - b < 1e-3 * b && b - a < 1e-3 * b)}'
check "--json has tokens, bytes, nll, perplexity" jq -e '.bytes == 42 and (.tokens | type) == "number" and (.nll | type) == "number" and (.perplexity | type) == "number"' "$tmp/ppl.json"
"$bin" perplexity -m "$tmp/m" -f "$tmp/nonexistent.txt" 2>"$tmp/err"
check "perplexity of a missing file exits 1 naming it" bash -c "grep -q nonexistent.txt '$tmp/err'"

gen -m "$data/models/llama-gqa-rope3" -p "x" -n 1 2>"$tmp/err" >/dev/null
check "-p without a tokenizer exits 1" test $? -eq 1

exit $((fails > 0))
