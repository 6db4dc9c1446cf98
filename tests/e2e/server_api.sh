#!/usr/bin/env bash
# End-to-end: `preft serve` on a tiny reference model with four adapters,
# over loopback with curl. Greedy output equals `preft generate` for the
# base model and every adapter in both modes, alone and in a batch of 32
# concurrent mixed requests (streamed and whole); n, batched prompts, seeds,
# logprobs, usage, stop ids; every error path answers 4xx/5xx with an
# OpenAI-style error body and the server keeps serving; adapters load and
# unload while requests run (--allow-runtime-adapters); --api-key (the
# scheme in any case); SIGTERM exits 0.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
ad=$data/adapters
adapters=(lora-qv-r4 lora-all7-rslora-patterns loreft-f3l3 direft-f5l5-shared)
args=()
for a in "${adapters[@]}"; do args+=(--adapter "$a=$ad/$a"); done
# broken: a LoRA of another model's shape (found by the start-up check)
start_server "$tmp/log" -m "$model" "${args[@]}" --adapter "broken=$ad/lora-qwen2-bf16" --threads 1 \
  --allow-runtime-adapters --adapter-root "$ad" || exit 1

check "/health is ok" bash -c "curl -sf '$SRV_URL/health' | jq -e '.status == \"ok\"' >/dev/null"
models=$(curl -s "$SRV_URL/v1/models")
check "/v1/models lists the base model and 5 adapters" test "$(echo "$models" | jq '.data | length')" -eq 6
check "adapters' parent is the base model" \
  test "$(echo "$models" | jq '[.data[] | select(.parent == "llama-gqa-rope3")] | length')" -eq 5

# ---- greedy output equals preft generate, alone ---------------------------------
ref() { # ref IDS N [ADAPTER MODE]: token ids from preft generate, space-separated
  local extra=()
  [ $# -gt 2 ] && extra=(-a "$ad/$3" --adapter-mode "$4")
  "$bin" generate -m "$model" --ids "$1" -n "$2" --temperature 0 --ignore-eos --print-ids --threads 1 "${extra[@]}"
}
body() { # body IDS N [MODEL MODE [STREAM]]
  local m=${3:-llama-gqa-rope3} mode=
  [ -n "${4:-}" ] && mode=",\"adapter_mode\":\"$4\""
  echo "{\"model\":\"$m\",\"prompt\":[$1],\"max_tokens\":$2,\"temperature\":0,\"ignore_eos\":true$mode,\"stream\":${5:-false}}"
}
served() { # served IDS N [MODEL MODE]: token ids from the server, whole response
  curl -s "$SRV_URL/v1/completions" -d "$(body "$@")" | jq -r '.choices[0].token_ids | map(tostring) | join(" ")'
}
streamed() { # the same, streamed
  curl -sN "$SRV_URL/v1/completions" -d "$(body "$1" "$2" "${3:-llama-gqa-rope3}" "${4:-}" true)" |
    sed -n 's/^data: //p' | grep -v '^\[DONE\]' | jq -r '.choices[0].token_ids[]?' | tr '\n' ' ' | sed 's/ $//'
}
ids=1,2,3,4,5,6,7,8
check "base model: server = preft generate" test "$(served $ids 12)" = "$(ref $ids 12)"
check "base model streamed: server = preft generate" test "$(streamed $ids 12)" = "$(ref $ids 12)"
for a in "${adapters[@]}"; do
  for mode in all prefill; do
    want=$(ref $ids 12 "$a" $mode)
    check "$a ($mode): server = preft generate" test "$(served $ids 12 "$a" $mode)" = "$want"
  done
done
check "an adapter changes the output (lora-qv-r4)" test "$(served $ids 12 lora-qv-r4 all)" != "$(ref $ids 12)"

# ---- 32 concurrent mixed requests -------------------------------------------------
combos=("llama-gqa-rope3 -")
for a in "${adapters[@]}"; do combos+=("$a all" "$a prefill"); done
for i in $(seq 0 31); do
  read -r m mode <<<"${combos[$((i % ${#combos[@]}))]}"
  p=$((i + 1)),$((i * 7 % 250 + 1)),$((i * 13 % 250 + 1)),9,10$( [ $((i % 3)) -eq 0 ] && echo ,11,12,13)
  echo "$m $mode $p" >"$tmp/req.$i"
  [ "$mode" = - ] && mode=
  if [ $((i % 2)) -eq 0 ]; then served "$p" 16 "$m" "$mode" >"$tmp/got.$i" &
  else streamed "$p" 16 "$m" "$mode" >"$tmp/got.$i" & fi
done
check "the 32 concurrent requests end" wait_jobs $(jobs -p | grep -v "^$SRV_PID\$")
same=0
for i in $(seq 0 31); do
  read -r m mode p <"$tmp/req.$i"
  if [ "$mode" = - ]; then want=$(ref "$p" 16); else want=$(ref "$p" 16 "$m" "$mode"); fi
  [ "$(cat "$tmp/got.$i")" = "$want" ] && same=$((same + 1)) || echo "  request $i ($m $mode): got '$(cat "$tmp/got.$i")', want '$want'"
done
check "32 concurrent mixed-adapter requests equal preft generate ($same/32)" test $same -eq 32

# ---- n, batched prompts, seeds, logprobs, usage, stop ids ------------------------------
r=$(curl -s "$SRV_URL/v1/completions" -d '{"prompt":[1,2,3],"max_tokens":6,"temperature":0,"n":3,"ignore_eos":true}')
check "n=3 gives 3 choices indexed 0..2" test "$(echo "$r" | jq -c '[.choices[].index]')" = "[0,1,2]"
check "n=3 greedy choices are equal" test "$(echo "$r" | jq '[.choices[].token_ids] | unique | length')" -eq 1
check "usage counts the prompt once and every choice" test "$(echo "$r" | jq -c '.usage')" = \
  '{"prompt_tokens":3,"completion_tokens":18,"total_tokens":21}'
r=$(curl -s "$SRV_URL/v1/completions" -d '{"prompt":[[1,2,3],[4,5,6]],"max_tokens":6,"temperature":0,"n":2,"ignore_eos":true}')
check "two prompts x n=2 give 4 choices" test "$(echo "$r" | jq '.choices | length')" -eq 4
check "choice 2 is the second prompt's" test "$(echo "$r" | jq -r '.choices[2].token_ids | map(tostring) | join(" ")')" = "$(ref 4,5,6 6)"
sampled='{"prompt":[1,2,3],"max_tokens":8,"temperature":1.0,"top_p":0.9,"top_k":50,"seed":7,"n":2,"ignore_eos":true}'
r1=$(curl -s "$SRV_URL/v1/completions" -d "$sampled" | jq -c '[.choices[].token_ids]')
r2=$(curl -s "$SRV_URL/v1/completions" -d "$sampled" | jq -c '[.choices[].token_ids]')
check "seeded sampling is reproducible" test "$r1" = "$r2"
check "n=2 with a seed samples two different sequences" test "$(echo "$r1" | jq 'unique | length')" -eq 2
r=$(curl -s "$SRV_URL/v1/completions" -d '{"prompt":[1,2,3],"max_tokens":5,"temperature":0,"logprobs":3,"ignore_eos":true}')
check "logprobs: 5 tokens, 3 alternatives each" test "$(echo "$r" | jq '[.choices[0].logprobs.top_logprobs[] | length] | unique')" = "$(printf '[\n  3\n]')"
check "logprobs: greedy token is the top alternative" \
  bash -c "echo '$r' | jq -e '.choices[0].logprobs as \$l | [range(5)] | all(\$l.token_logprobs[.] == (\$l.top_logprobs[.] | to_entries | max_by(.value) | .value))' >/dev/null"
check "logprobs are <= 0" bash -c "echo '$r' | jq -e 'all(.choices[0].logprobs.token_logprobs[]; . <= 0)' >/dev/null"
fifth=$(ref 1,2,3 8 | cut -d' ' -f5)
r=$(curl -s "$SRV_URL/v1/completions" -d "{\"prompt\":[1,2,3],\"max_tokens\":8,\"temperature\":0,\"stop_token_ids\":[$fifth]}")
check "stop_token_ids ends with finish_reason stop" test "$(echo "$r" | jq -r '.choices[0].finish_reason')" = stop
check "stop_token_ids: the stop id is the last token" test "$(echo "$r" | jq '.choices[0].token_ids[-1]')" -eq "$fifth"
check "max_tokens ends with finish_reason length" \
  test "$(curl -s "$SRV_URL/v1/completions" -d '{"prompt":[1],"max_tokens":3,"ignore_eos":true}' | jq -r '.choices[0].finish_reason')" = length

# ---- errors -------------------------------------------------------------------------------
err_check() { # err_check NAME STATUS PARAM JSON [PATH]: status, OpenAI error shape and param
  local name=$1 status=$2 param=$3 json=$4 path=${5:-/v1/completions}
  local out; out=$(post "$path" "$json")
  local got=${out##*$'\n'} b=${out%$'\n'*}
  local shape; shape=$(echo "$b" | jq -r '.error | (has("message") and has("type") and has("param") and has("code")) and (.message | type == "string")' 2>/dev/null)
  local p; p=$(echo "$b" | jq -r '.error.param // "null"' 2>/dev/null)
  check "$name: $status, error body, param $param" test "$got:$shape:$p" = "$status:true:$param"
}
err_check "malformed JSON" 400 null '{"prompt":[1],'
err_check "body not an object" 400 null '[1,2]'
err_check "nested 100 deep" 400 null "{\"prompt\":$(printf '[%.0s' $(seq 100))1$(printf ']%.0s' $(seq 100))}"
err_check "max_tokens a string" 400 max_tokens '{"prompt":[1],"max_tokens":"x"}'
err_check "max_tokens 0" 400 max_tokens '{"prompt":[1],"max_tokens":0}'
err_check "max_tokens 1.5" 400 max_tokens '{"prompt":[1],"max_tokens":1.5}'
err_check "max_tokens past the context" 400 max_tokens '{"prompt":[1],"max_tokens":100000}'
err_check "temperature 3" 400 temperature '{"prompt":[1],"temperature":3}'
err_check "top_p 0" 400 top_p '{"prompt":[1],"top_p":0}'
err_check "n 0" 400 n '{"prompt":[1],"n":0}'
err_check "stream not a bool" 400 stream '{"prompt":[1],"stream":"yes"}'
err_check "stop a number" 400 stop '{"prompt":[1],"stop":5}'
err_check "logprobs 50" 400 logprobs '{"prompt":[1],"logprobs":50}'
err_check "presence_penalty 5" 400 presence_penalty '{"prompt":[1],"presence_penalty":5}'
err_check "logit_bias id outside the vocabulary" 400 logit_bias '{"prompt":[1],"logit_bias":{"256":1}}'
err_check "adapter_mode unknown" 400 adapter_mode '{"model":"lora-qv-r4","prompt":[1],"adapter_mode":"sometimes"}'
err_check "prompt missing" 400 prompt '{"max_tokens":3}'
err_check "prompt of objects" 400 prompt '{"prompt":[{"a":1}]}'
err_check "prompt id outside the vocabulary" 400 prompt '{"prompt":[1,256]}'
err_check "negative prompt id" 400 prompt '{"prompt":[1,-3]}'
err_check "stop id outside the vocabulary" 400 stop_token_ids '{"prompt":[1],"stop_token_ids":[256]}'
err_check "a mixed prompt list" 400 prompt '{"prompt":[[1,2],"x"]}'
long=$(seq -s, 1 600 | sed 's/[0-9][0-9]*/7/g')
err_check "prompt longer than the context" 400 prompt "{\"prompt\":[$long]}"
err_check "text prompt without a tokenizer" 400 prompt '{"prompt":"hello"}'
err_check "chat without a tokenizer" 400 messages '{"messages":[{"role":"user","content":"hi"}]}' /v1/chat/completions
err_check "chat messages not an array" 400 messages '{"messages":"hi"}' /v1/chat/completions
err_check "unknown model" 404 model '{"model":"nope","prompt":[1]}'
err_check "model not a string" 400 model '{"model":5,"prompt":[1]}'
err_check "adapter that fails to load" 400 model '{"model":"broken","prompt":[1]}'
err_check "adapter that fails to load, streamed" 400 model '{"model":"broken","prompt":[1],"stream":true}'
code=$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/completions" --data-binary @<(head -c 9000000 /dev/zero | tr '\0' ' '))
check "9 MB body: 413" test "$code" = 413
check "GET /v1/completions: 405" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/completions")" = 405
check "unknown path: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v2/nothing")" = 404
check "the server still serves after the errors" test "$(served $ids 12)" = "$(ref $ids 12)"
check "/metrics counts the 400s" test "$(metric 'preft_http_requests_total{code="400"}')" -ge 20

# ---- adapters loaded (paths relative to --adapter-root) and unloaded while requests run ---
for i in $(seq 0 15); do
  curl -s "$SRV_URL/v1/completions" -d "$(body "$((i + 1)),2,3" 400 lora-qv-r4 all)" -o "$tmp/bg.$i" -w '%{http_code}' >"$tmp/bgcode.$i" &
done
r=$(post /v1/load_lora_adapter "{\"lora_name\":\"extra\",\"lora_path\":\"loreft-f3l3\"}")
check "load_lora_adapter: 200" test "${r##*$'\n'}" = 200
check "the loaded adapter serves = preft generate" test "$(served $ids 12 extra prefill)" = "$(ref $ids 12 loreft-f3l3 prefill)"
check "/v1/models lists it" bash -c "curl -s '$SRV_URL/v1/models' | jq -e '.data | any(.id == \"extra\")' >/dev/null"
r=$(post /v1/unload_lora_adapter '{"lora_name":"lora-qv-r4"}')
check "unload_lora_adapter while its requests run: 200" test "${r##*$'\n'}" = 200
check "the 16 requests started before the unload end" wait_jobs $(jobs -p | grep -v "^$SRV_PID\$")
ok=0 gone=0
for i in $(seq 0 15); do
  c=$(cat "$tmp/bgcode.$i")
  if [ "$c" = 200 ] && [ "$(jq '.choices[0].token_ids | length' "$tmp/bg.$i")" = 400 ]; then ok=$((ok + 1)); fi
  if [ "$c" = 404 ]; then gone=$((gone + 1)); fi
done
check "requests accepted before the unload finish, later ones get 404 ($ok + $gone of 16)" test $((ok + gone)) -eq 16
err_check "an unloaded adapter" 404 model '{"model":"lora-qv-r4","prompt":[1]}'
err_check "unload an unknown adapter" 404 lora_name '{"lora_name":"lora-qv-r4"}' /v1/unload_lora_adapter
err_check "load a taken name" 400 lora_name "{\"lora_name\":\"extra\",\"lora_path\":\"lora-qv-r4\"}" /v1/load_lora_adapter
err_check "load a missing directory" 400 lora_path "{\"lora_name\":\"x2\",\"lora_path\":\"none\"}" /v1/load_lora_adapter
err_check "load a broken adapter" 400 lora_path "{\"lora_name\":\"x3\",\"lora_path\":\"bad/lora-wrong-shape\"}" /v1/load_lora_adapter
err_check "load without lora_path" 400 lora_path '{"lora_name":"x4"}' /v1/load_lora_adapter
r=$(post /v1/unload_lora_adapter '{"lora_name":"extra"}')
check "unload the loaded adapter: 200" test "${r##*$'\n'}" = 200
check "KV blocks are all free again" wait_for metric_is 'preft_kv_blocks{state="used"}' 0

stop_server
check "SIGTERM: exit 0" test $? -eq 0

# ---- --api-key ------------------------------------------------------------------------------
start_server "$tmp/log2" -m "$model" --api-key sekrit --threads 1 || exit 1
check "no key: 401" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/models")" = 401
check "401 body names invalid_api_key" bash -c "curl -s '$SRV_URL/v1/completions' -d '{}' | jq -e '.error.code == \"invalid_api_key\"' >/dev/null"
check "wrong key: 401" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekriT' "$SRV_URL/v1/models")" = 401
check "right key: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekrit' "$SRV_URL/v1/models")" = 200
check "right key, scheme in lower case: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: bearer sekrit' "$SRV_URL/v1/models")" = 200
check "a key without the scheme: 401" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: sekrit' "$SRV_URL/v1/models")" = 401
check "/health needs no key" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/health")" = 200
stop_server
check "SIGTERM: exit 0 (api-key server)" test $? -eq 0

exit $((fails > 0))
