#!/usr/bin/env bash
# End-to-end: `preft serve` with a real tokenizer (Qwen3's) beside a small
# random model of the same vocabulary: text completions and chat equal
# `preft generate` (-p, --chat), streamed text equals the whole response,
# stop strings cut the text as generate does, logprobs line up with tokens;
# a client that disconnects mid-stream cancels its request and frees its KV
# blocks, and so does one that gives up on a whole response; a full queue
# answers 429 with Retry-After; a 6 MB prompt is refused by its size before
# it is tokenized; SIGTERM lets the request in flight finish its stream and
# exits 0.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tok=$data/.cache/qwen3
[ -s "$tok/tokenizer.json" ] || { echo "missing $tok/tokenizer.json: run scripts/fetch-test-data.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
m=$tmp/qwen-tiny
"$bin" make-model --shape tiny --vocab 151936 --seed 2 -o "$m" 2>/dev/null
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$m/"
gen() { "$bin" generate -m "$m" --temperature 0 --ignore-eos --threads 1 "$@"; }
# one sequence at a time and one waiting, so that a full queue is easy to make
start_server "$tmp/log" -m "$m" --threads 1 --max-running 1 --max-queue 1 || exit 1
name=qwen-tiny

# ---- text completions ------------------------------------------------------------------
want=$(gen -p "The quick brown fox" -n 24)
req='{"model":"qwen-tiny","prompt":"The quick brown fox","max_tokens":24,"temperature":0,"ignore_eos":true'
whole=$(curl -s "$SRV_URL/v1/completions" -d "$req}")
text=$(echo "$whole" | jq -j '.choices[0].text')
check "text completion = preft generate -p" test "$text" = "$want"
check "model field echoes the served name" test "$(echo "$whole" | jq -r .model)" = "$name"
sse() { sed -n 's/^data: //p' | grep -v '^\[DONE\]'; }
streamed=$(curl -sN "$SRV_URL/v1/completions" -d "$req,\"stream\":true}" | sse | jq -j '.choices[0].text')
check "streamed text = whole text" test "$streamed" = "$text"
check "stream ends with data: [DONE]" bash -c "curl -sN '$SRV_URL/v1/completions' -d '$req,\"stream\":true}' | grep -v '^\$' | tail -1 | grep -qx 'data: \[DONE\]'"
usage=$(curl -sN "$SRV_URL/v1/completions" -d "$req,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" | sse | jq -c 'select(.usage) | .usage')
check "stream usage chunk (include_usage)" test "$(echo "$usage" | jq .completion_tokens)" -eq 24

stop=${text:10:3}
want_stop=${text%%"$stop"*}
r=$(curl -s "$SRV_URL/v1/completions" -d "$req,\"stop\":[$(jq -Rn --arg s "$stop" '$s')]}")
check "stop '$stop' cuts the text before it" test "$(echo "$r" | jq -j '.choices[0].text')" = "$want_stop"
check "stop string: finish_reason stop" test "$(echo "$r" | jq -r '.choices[0].finish_reason')" = stop
check "stop string: same cut as preft generate --stop" test "$(gen -p "The quick brown fox" -n 24 --stop "$stop")" = "$want_stop"
s=$(curl -sN "$SRV_URL/v1/completions" -d "$req,\"stream\":true,\"stop\":$(jq -Rn --arg s "$stop" '$s')}" | sse | jq -j '.choices[0].text')
check "stop string, streamed" test "$s" = "$want_stop"

r=$(curl -s "$SRV_URL/v1/completions" -d "$req,\"logprobs\":2}")
check "logprobs: one token string per token" test "$(echo "$r" | jq '.choices[0].logprobs.tokens | length')" -eq 24
check "logprobs: text_offset never decreases and ends inside the text" \
  bash -c "echo '$(echo "$r" | jq -c .choices[0])' | jq -e '.logprobs.text_offset as \$o | ([range(1; \$o | length)] | all(\$o[.] >= \$o[. - 1])) and \$o[-1] <= (.text | length)' >/dev/null"

# ---- chat ------------------------------------------------------------------------------
want=$(gen -p "Hi" --chat --system "Be brief." -n 6 -v 2>"$tmp/err")
prompt_tokens=$(sed -n 's/.*: \([0-9]*\) prompt.*/\1/p' "$tmp/err")
msgs='"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]'
creq="{\"model\":\"qwen-tiny\",$msgs,\"max_tokens\":6,\"temperature\":0,\"ignore_eos\":true"
r=$(curl -s "$SRV_URL/v1/chat/completions" -d "$creq}")
check "chat content = preft generate --chat" test "$(echo "$r" | jq -j '.choices[0].message.content')" = "$want"
check "chat object and role" test "$(echo "$r" | jq -r '.object + " " + .choices[0].message.role')" = "chat.completion assistant"
check "chat usage: prompt tokens of the rendered template ($prompt_tokens)" test "$(echo "$r" | jq .usage.prompt_tokens)" -eq "$prompt_tokens"
chunks=$(curl -sN "$SRV_URL/v1/chat/completions" -d "$creq,\"stream\":true}" | sse)
check "chat stream: first delta has the role" test "$(echo "$chunks" | head -1 | jq -r '.choices[0].delta.role')" = assistant
check "chat stream: content = whole content" test "$(echo "$chunks" | jq -j '.choices[0].delta.content // ""')" = "$want"
check "chat stream: last chunk has finish_reason length" test "$(echo "$chunks" | tail -1 | jq -r '.choices[0].finish_reason')" = length
parts='"messages":[{"role":"system","content":[{"type":"text","text":"Be brief."}]},{"role":"user","content":"Hi"}]'
r2=$(curl -s "$SRV_URL/v1/chat/completions" -d "{$parts,\"max_tokens\":6,\"temperature\":0,\"ignore_eos\":true}")
check "content as text parts = content as a string" test "$(echo "$r2" | jq -j '.choices[0].message.content')" = "$want"
r=$(curl -s "$SRV_URL/v1/chat/completions" -d "$creq,\"logprobs\":true,\"top_logprobs\":2}")
check "chat logprobs: one entry per token, 2 alternatives" \
  test "$(echo "$r" | jq -c '[(.choices[0].logprobs.content | length), (.choices[0].logprobs.content[0].top_logprobs | length)]')" = "[6,2]"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$SRV_URL/v1/chat/completions" -d '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}')
check "chat image part: 400 naming messages[0]" test "$code:$(jq -r .error.param "$tmp/e")" = "400:messages[0]"

# ---- a client that goes away mid-stream --------------------------------------------------
long='{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"ignore_eos":true,"stream":true}'
curl -sN "$SRV_URL/v1/completions" -d "$long" | head -n 1 >/dev/null
cancelled() { [ "$(metric 'preft_requests_total{status="cancelled"}')" = 1 ] && [ "$(metric preft_running_sequences)" = 0 ]; }
check "disconnect mid-stream cancels the request" wait_for cancelled
check "... and frees its KV blocks" test "$(metric 'preft_kv_blocks{state="used"}')" = "$(metric 'preft_kv_blocks{state="cached"}')"

# ---- a full queue: 429 ---------------------------------------------------------------------
curl -sN "$SRV_URL/v1/completions" -d "$long" >/dev/null &
a=$!
check "first request runs" wait_for metric_is preft_running_sequences 1
curl -sN "$SRV_URL/v1/completions" -d "$long" >/dev/null &
b=$!
check "second request waits" wait_for metric_is preft_queue_depth 1
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$SRV_URL/v1/completions" -d '{"prompt":"x","max_tokens":2}')
check "third request: 429 with an error body" test "$code:$(jq -r .error.code "$tmp/e")" = "429:queue_full"
check "... and Retry-After" bash -c "curl -s -D - -o /dev/null '$SRV_URL/v1/completions' -d '{\"prompt\":\"x\",\"max_tokens\":2}' | grep -qi '^retry-after: [0-9]'"
kill $a $b 2>/dev/null
wait $a $b 2>/dev/null
check "killed clients' requests are cancelled" wait_for metric_is 'preft_requests_total{status="cancelled"}' 3
check "... and the server serves again" test "$(curl -s "$SRV_URL/v1/completions" -d "$req}" | jq -j '.choices[0].text')" = "$text"

# ---- a client that closes while its whole (not streamed) response waits ------------------------
curl -sN "$SRV_URL/v1/completions" -d "$long" >/dev/null &
a=$!
check "a long request runs" wait_for metric_is preft_running_sequences 1
curl -s -m 1 "$SRV_URL/v1/completions" -d '{"prompt":"x","max_tokens":2000,"ignore_eos":true}' >/dev/null
check "the client that gave up after 1 s: its queued request is cancelled" \
  wait_for metric_is 'preft_requests_total{status="cancelled"}' 4
kill $a 2>/dev/null
wait $a 2>/dev/null
check "... and the long one when killed" wait_for metric_is 'preft_requests_total{status="cancelled"}' 5

# ---- a prompt too long to be worth tokenizing ----------------------------------------------
# (refused by its size in bytes: the message says bytes, not tokens)
head -c 6000000 /dev/zero | tr '\0' a | jq -Rs '{prompt: ., max_tokens: 1}' >"$tmp/huge.json"
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$SRV_URL/v1/completions" --data-binary @"$tmp/huge.json")
check "a 6 MB prompt: 400 context_length_exceeded by its bytes" \
  test "$code:$(jq -r .error.code "$tmp/e"):$(jq -r '.error.message | test("bytes")' "$tmp/e")" = "400:context_length_exceeded:true"

# ---- SIGTERM with a request in flight ---------------------------------------------------
url=$SRV_URL
curl -sN "$url/v1/completions" -d '{"prompt":"Once","max_tokens":60,"temperature":0,"ignore_eos":true,"stream":true,"return_token_ids":true}' >"$tmp/inflight" &
c=$!
check "request in flight" wait_for grep -q '^data: ' "$tmp/inflight"
stop_server
check "SIGTERM while streaming: exit 0" test $? -eq 0
wait_jobs $c
check "the stream in flight finished: 60 tokens and [DONE]" \
  test "$(sse <"$tmp/inflight" | jq -s '[.[].choices[0].token_ids[]?] | length'):$(grep -c '^data: \[DONE\]' "$tmp/inflight")" = "60:1"
check "after the stop nothing listens" bash -c "! curl -s -m 2 '$url/health' >/dev/null"

exit $((fails > 0))
