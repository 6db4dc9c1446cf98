#!/usr/bin/env bash
# End-to-end: preft tokenize (--text, --jsonl, --no-special), detokenize and
# chat-template on the real Llama 3.1 tokenizer; ids checked against the
# golden file written from the Hugging Face reference.
set -euo pipefail
bin=${PREFT_BIN:?} data=${PREFT_TEST_DATA:?}
tok=$data/.cache/llama3_1
[ -f "$tok/tokenizer.json" ] || { echo "missing $tok (run scripts/fetch-test-data.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --jsonl: one JSON string per line in, one id array per line out, in order
head -n 30 "$data/tokenizer/corpus.jsonl" > "$tmp/in.jsonl"
"$bin" tokenize --tokenizer "$tok" --jsonl "$tmp/in.jsonl" > "$tmp/out.jsonl"
head -n 30 "$data/tokenizer/llama3_1.golden.jsonl" | sed 's/^{"ids":\(\[[^]]*\]\).*/\1/' > "$tmp/want.jsonl"
diff "$tmp/want.jsonl" "$tmp/out.jsonl"

[ "$("$bin" tokenize --tokenizer "$tok" --text "Hello world")" = "[128000,9906,1917]" ]
[ "$("$bin" tokenize --tokenizer "$tok/tokenizer.json" --no-special --text "Hello world")" = "[9906,1917]" ]
[ "$("$bin" detokenize --tokenizer "$tok" --ids 9906,1917)" = "Hello world" ]

printf '[{"role": "user", "content": "Hi!"}]' > "$tmp/m.json"
"$bin" chat-template --tokenizer "$tok" --messages "$tmp/m.json" --add-generation-prompt > "$tmp/prompt.txt"
printf '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n' > "$tmp/want.txt"
cmp "$tmp/want.txt" "$tmp/prompt.txt"

# bad input: exit codes 1 (input) and 2 (usage)
set +e
echo '"ok"' > "$tmp/bad.jsonl"; echo 'not json' >> "$tmp/bad.jsonl"
"$bin" tokenize --tokenizer "$tok" --jsonl "$tmp/bad.jsonl" > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q ':2:' "$tmp/err"
set +e
"$bin" tokenize --tokenizer "$tok" > /dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ]
echo "tokenizer_cli: ok"
