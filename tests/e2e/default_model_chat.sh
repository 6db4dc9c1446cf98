#!/usr/bin/env bash
# End-to-end: the embedded default model (assets/default-model) chats out of
# the box. Its chat template renders the conversation as plain prose with the
# assistant's turn opening as a speech to Congress (checked against the text
# written out by hand here), and `preft serve` answers /v1/chat/completions
# with 200 and text (it answered 400 when the model had no template).
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
dm=$data/../../assets/default-model
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && tail -40 "$tmp/log"; rm -rf "$tmp"' EXIT

cat >"$tmp/msgs.json" <<'JSON'
[{"role": "system", "content": "On the economy."}, {"role": "user", "content": "What of our debt? "},
 {"role": "assistant", "content": "It is paid."}, {"role": "user", "content": "And the army?"}]
JSON
header="Fellow-Citizens of the Senate and House of Representatives:"
printf '%s' "On the economy.

What of our debt?

$header It is paid.<|endoftext|>And the army?

$header" >"$tmp/want"
"$bin" chat-template --tokenizer "$dm" --messages "$tmp/msgs.json" --add-generation-prompt >"$tmp/got"
check "the template renders the conversation as written out by hand" cmp -s "$tmp/got" "$tmp/want"
"$bin" chat-template --tokenizer "$dm" --messages "$tmp/msgs.json" >"$tmp/got2"
check "  and without the generation prompt, stops after the last user turn" \
  test "$(cat "$tmp/got2")" = "$(head -c -$((${#header} + 2)) "$tmp/want")"

start_server "$tmp/log" -m "$dm" --threads 1 || exit 1
req='{"model":"default-model","messages":[{"role":"user","content":"On the state of the Union."}],"max_tokens":16,"temperature":0}'
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' "$SRV_URL/v1/chat/completions" -d "$req")
check "/v1/chat/completions answers 200" test "$code" = 200
check "  with an assistant message of some text" \
  test "$(jq -r '.choices[0].message.role' "$tmp/r.json")$(jq -r '.choices[0].message.content | length > 0' "$tmp/r.json")" = assistanttrue
check "  whose prompt is the rendered template (prompt tokens counted)" \
  test "$(jq -r '.usage.prompt_tokens' "$tmp/r.json")" -gt 10
want=$("$bin" generate -m "$dm" -p "On the state of the Union." --chat -n 16 --temperature 0 --threads 1)
check "  and equals preft generate --chat" test "$(jq -j '.choices[0].message.content' "$tmp/r.json")" = "$want"
exit $((fails > 0))
