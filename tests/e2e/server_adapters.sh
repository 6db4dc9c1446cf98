#!/usr/bin/env bash
# End-to-end: `preft serve` and broken or many adapters, over loopback with
# curl. An adapter whose files do not load is found when the server starts
# (or on first use with --no-adapter-check), listed in /v1/models as
# unavailable with its error, and every request for it is a 400
# adapter_unavailable naming it, never a 500; once its files are fixed it
# serves again (a failed load is retried after a backoff).
# --max-loaded-adapters is a hard cap: with more adapters wanted at once
# than it allows, never more are loaded (sampled from /metrics while 16
# concurrent requests over 4 adapters run) and every request is answered,
# with the same tokens as alone; --adapter-cache-mb is a hard cap on their
# memory too (loads under way reserved by an upper bound), an adapter that
# can never fit is unavailable; /metrics counts loads, failures, evictions
# and load times; /v1/models pages with limit and after. A name not
# registered is looked up in --adapters DIR (a new user's adapter needs no
# registration); adapters loaded at run time are kept in --adapter-registry
# FILE across a restart. A loaded adapter is read into memory: its
# files truncated or replaced do not change it (nor kill the server), and
# once reloaded it serves the new files, with no prefix-cache block of the
# old ones reused.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
ad=$data/adapters
adapters=(lora-qv-r4 lora-all7-rslora-patterns loreft-f3l3 direft-f5l5-shared)
args=()
for a in "${adapters[@]}"; do args+=(--adapter "$a=$ad/$a"); done
# fixable: a copy of a broken adapter whose files are fixed later on
cp -r "$ad/bad/lora-wrong-shape" "$tmp/fixable"
body() { echo "{\"model\":\"$1\",\"prompt\":[1,2,3,4],\"max_tokens\":${2:-6},\"temperature\":0,\"ignore_eos\":true}"; }
# unavailable NAME [STREAM]: a request for NAME is a 400 adapter_unavailable naming it
unavailable() {
  local r; r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/completions" -d "{\"model\":\"$1\",\"prompt\":[1],\"stream\":${2:-false}}")
  local code=${r##*$'\n'} b=${r%$'\n'*}
  [ "$code:$(echo "$b" | jq -r '.error.code + ":" + .error.param + ":" + .error.type')" = "400:adapter_unavailable:model:invalid_request_error" ] &&
    echo "$b" | jq -e --arg n "$1" '.error.message | contains("'"'"'" + $n + "'"'"'")' >/dev/null
}
status_of() { curl -s "$SRV_URL/v1/models/$1" | jq -r .status; }

# ---- broken adapters found at start-up ------------------------------------------------------
start_server "$tmp/log" -m "$model" "${args[@]}" --adapter "broken=$ad/lora-qwen2-bf16" \
  --adapter "fixable=$tmp/fixable" --max-loaded-adapters 2 --threads 1 || exit 1
check "start-up names the unavailable adapters" bash -c "grep -q \"adapter 'broken' is unavailable\" '$tmp/log' && grep -q \"adapter 'fixable' is unavailable\" '$tmp/log'"
check "start-up: 6 checked, 2 unavailable" grep -q "checked 6 adapters in .* 2 unavailable" "$tmp/log"
models=$(curl -s "$SRV_URL/v1/models")
check "/v1/models lists all 6 adapters and the base" test "$(echo "$models" | jq '.data | length')" -eq 7
check "broken: status unavailable, its error" \
  bash -c "echo '$models' | jq -e '.data[] | select(.id == \"broken\") | .status == \"unavailable\" and .loaded == false and (.error | contains(\"lora-qwen2-bf16\"))' >/dev/null"
check "good adapters are not unavailable, none has an error" \
  test "$(echo "$models" | jq '[.data[] | select(.parent != null and .id != "broken" and .id != "fixable") | select(.status == "unavailable" or has("error"))] | length')" -eq 0
check "the cap holds at start-up: 2 loaded" test "$(echo "$models" | jq '[.data[] | select(.loaded == true)] | length')" -eq 2
check "a request for it: 400 adapter_unavailable naming it" unavailable broken
check "... streamed: the same 400" unavailable broken true
check "... and again (no 500 on any use)" unavailable broken
check "no 500 was answered" test "$(metric 'preft_http_requests_total{code="500"}')" = 0

# ---- fixed files are loaded again after the backoff ---------------------------------------------
check "fixable: 400 while broken" unavailable fixable
rm -rf "$tmp/fixable" && cp -r "$ad/lora-qv-r4" "$tmp/fixable"
# retried by a request 1 s after the failure (2 s, 4 s after further ones)
served_ok() { r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/completions" -d "$(body fixable)"); [ "${r##*$'\n'}" = 200 ]; }
check "fixable: 200 once its files are fixed" wait_for served_ok
want=$(curl -s "$SRV_URL/v1/completions" -d "$(body lora-qv-r4)" | jq -c .choices[0].token_ids)
check "... with the fixed files' tokens" test "$(echo "${r%$'\n'*}" | jq -c .choices[0].token_ids)" = "$want"
check "fixable: status loaded" test "$(status_of fixable)" = loaded

# ---- the cap is hard under concurrent requests -------------------------------------------------
for a in "${adapters[@]}"; do curl -s "$SRV_URL/v1/completions" -d "$(body "$a" 24)" | jq -c .choices[0].token_ids >"$tmp/alone.$a"; done
pids=()
for i in $(seq 0 15); do
  a=${adapters[$((i % 4))]}
  curl -s "$SRV_URL/v1/completions" -d "$(body "$a" 24)" -o "$tmp/got.$i" &
  pids+=($!)
done
max=0
while :; do # sample the gauge while the requests run
  n=$(metric preft_adapters_loaded)
  [ -n "$n" ] && [ "$n" -gt "$max" ] && max=$n
  left=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
  [ $left = 0 ] && break
done
check "16 concurrent requests over 4 adapters end" wait_jobs "${pids[@]}"
check "never more than 2 adapters loaded (at most $max seen)" test "$max" -le 2
same=0
for i in $(seq 0 15); do
  a=${adapters[$((i % 4))]}
  [ "$(jq -c .choices[0].token_ids "$tmp/got.$i")" = "$(cat "$tmp/alone.$a")" ] && same=$((same + 1))
done
check "every request answered with its adapter's tokens ($same/16)" test $same -eq 16
check "idle: at most 2 loaded" test "$(metric preft_adapters_loaded)" -le 2
stop_server
check "SIGTERM: exit 0" test $? -eq 0

# ---- the byte cap: --adapter-cache-mb ---------------------------------------------------------
# four random rank-64 LoRAs of about 1.3 MB loaded (0.87 MB files: a load
# reserves twice that) under a cap of 3 MiB: two fit at once, never three;
# a rank-256 one can never fit
for i in 1 2 3 4; do "$bin" make-adapter -m "$model" -o "$tmp/big$i" --rank 64 --dtype f32 --seed $i >/dev/null; done
"$bin" make-adapter -m "$model" -o "$tmp/huge" --rank 256 --dtype f32 >/dev/null
bargs=()
for i in 1 2 3 4; do bargs+=(--adapter "big$i=$tmp/big$i"); done
start_server "$tmp/log4" -m "$model" "${bargs[@]}" --adapter "huge=$tmp/huge" --adapter-cache-mb 3 --threads 1 || exit 1
check "the adapter too big for the cache is unavailable at start-up" \
  bash -c "curl -s '$SRV_URL/v1/models/huge' | jq -e '.status == \"unavailable\" and (.error | contains(\"adapter cache\"))' >/dev/null"
check "... and a request for it is a 400 adapter_unavailable" unavailable huge
for i in 1 2 3 4; do curl -s "$SRV_URL/v1/completions" -d "$(body big$i 24)" | jq -c .choices[0].token_ids >"$tmp/balone.$i"; done
check "the four adapters give four outputs" test "$(sort -u "$tmp"/balone.* | wc -l)" -eq 4
pids=()
for i in $(seq 0 11); do
  curl -s "$SRV_URL/v1/completions" -d "$(body big$((i % 4 + 1)) 24)" -o "$tmp/bgot.$i" &
  pids+=($!)
done
maxb=0 maxn=0 limit=$(metric 'preft_adapter_cache_bytes{state="limit"}')
while :; do
  m=$(curl -s "$SRV_URL/metrics")
  b=$(echo "$m" | awk '$1 ~ /^preft_adapter_cache_bytes\{state="(used|reserved)"\}$/ { s += $2 } END { print s + 0 }')
  n=$(echo "$m" | awk '$1 == "preft_adapters_loaded" { print $2 }')
  [ "$b" -gt "$maxb" ] && maxb=$b
  [ -n "$n" ] && [ "$n" -gt "$maxn" ] && maxn=$n
  left=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
  [ $left = 0 ] && break
done
check "12 concurrent requests over the four end" wait_jobs "${pids[@]}"
check "limit is 3 MiB" test "$limit" = 3145728
check "loaded + reserved bytes never over the cap ($maxb)" test "$maxb" -le 3145728
check "never more than two loaded ($maxn)" test "$maxn" -le 2
same=0
for i in $(seq 0 11); do [ "$(jq -c .choices[0].token_ids "$tmp/bgot.$i")" = "$(cat "$tmp/balone.$((i % 4 + 1))")" ] && same=$((same + 1)); done
check "every request answered with its adapter's tokens ($same/12)" test $same -eq 12
check "/metrics counts loads and evictions" bash -c "[ \$(curl -s '$SRV_URL/metrics' | awk '\$1 == \"preft_adapter_evictions_total\" { print \$2 }') -ge 2 ]"
check "/metrics has the load-time histogram" bash -c "curl -s '$SRV_URL/metrics' | grep -q '^preft_adapter_load_seconds_count [1-9]'"
check "/metrics counts the failed load" test "$(metric preft_adapter_load_failures_total)" -ge 1
check "a loaded adapter shows its bytes" bash -c "curl -s '$SRV_URL/v1/models' | jq -e '[.data[] | select(.loaded) | .bytes > 1000000] | all and length > 0' >/dev/null"

# ---- /v1/models pages: ?limit=N&after=ID -------------------------------------------------------
page=$(curl -s "$SRV_URL/v1/models?limit=2")
check "limit=2: the base model and the first adapter, has_more" \
  test "$(echo "$page" | jq -c '[[.data[].id], .has_more, .first_id, .last_id]')" = '[["llama-gqa-rope3","big1"],true,"llama-gqa-rope3","big1"]'
page=$(curl -s "$SRV_URL/v1/models?limit=3&after=big1")
check "after=big1, limit=3: the next three, in registration order" test "$(echo "$page" | jq -c '[[.data[].id], .has_more]')" = '[["big2","big3","big4"],true]'
page=$(curl -s "$SRV_URL/v1/models?limit=3&after=big4")
check "the last page: has_more false" test "$(echo "$page" | jq -c '[[.data[].id], .has_more]')" = '[["huge"],false]'
check "no limit: all six" test "$(curl -s "$SRV_URL/v1/models" | jq '.data | length')" -eq 6
r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/models?after=nobody")
check "after an unknown id: 400, param after" test "${r##*$'\n'}:$(echo "${r%$'\n'*}" | jq -r .error.param)" = 400:after
r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/models?limit=0")
check "limit=0: 400, param limit" test "${r##*$'\n'}:$(echo "${r%$'\n'*}" | jq -r .error.param)" = 400:limit
stop_server
check "SIGTERM: exit 0 (byte cap)" test $? -eq 0

# ---- a loaded adapter is immune to its files changing ----------------------------------------
# (before: truncating the safetensors file of a loaded adapter killed the
# server with SIGBUS; files copied over it were read half from each)
cp -r "$ad/lora-qv-r4" "$tmp/live"
start_server "$tmp/log3" -m "$model" --adapter "live=$tmp/live" --adapter "other=$ad/lora-all7-rslora-patterns" \
  --adapter "qv=$ad/lora-qv-r4" --max-loaded-adapters 1 --threads 1 || exit 1
long=$(seq -s, 1 40) # over two KV blocks: the prefix cache keeps them
bl() { echo "{\"model\":\"$1\",\"prompt\":[$long],\"max_tokens\":8,\"temperature\":0,\"ignore_eos\":true}"; }
toks() { curl -s "$SRV_URL/v1/completions" -d "$(bl "$1")" | jq -c .choices[0].token_ids; }
want_a=$(toks qv) want_b=$(toks other)
check "the two adapters' outputs differ" test "$want_a" != "$want_b"
check "live serves its files' tokens" test "$(toks live)" = "$want_a"
sum_a=$(curl -s "$SRV_URL/v1/models/live" | jq -r .checksum)
check "/v1/models shows the loaded files' checksum" test "${#sum_a}" -eq 16
truncate -s 100 "$tmp/live/adapter_model.safetensors"
check "its file truncated while loaded: the same tokens" test "$(toks live)" = "$want_a"
check "... and the server is alive" kill -0 "$SRV_PID"
rm -rf "$tmp/live" && cp -r "$ad/lora-all7-rslora-patterns" "$tmp/live"
check "another adapter copied over it: still its own tokens" test "$(toks live)" = "$want_a"
toks qv >/dev/null # the cap of 1 evicts live
check "reloaded after eviction: the new files' tokens (no stale prefix cache)" test "$(toks live)" = "$want_b"
check "... and a new checksum" test "$(curl -s "$SRV_URL/v1/models/live" | jq -r .checksum)" != "$sum_a"
check "the change is logged" grep -q "adapter live: its files changed" "$tmp/log3"
stop_server
check "SIGTERM: exit 0 (changed files)" test $? -eq 0

# ---- adapters found in --adapters DIR on first use; runtime ones kept in --adapter-registry ------
mkdir -p "$tmp/ads" "$tmp/state"
cp -r "$ad/lora-qv-r4" "$tmp/ads/first"
start_server "$tmp/log5" -m "$model" --adapters "$tmp/ads" --allow-runtime-adapters --adapter-root "$ad" \
  --adapter-registry "$tmp/state/adapters.tsv" --threads 1 || exit 1
want=$(curl -s "$SRV_URL/v1/completions" -d "$(body first)" | jq -c .choices[0].token_ids)
cp -r "$ad/lora-qv-r4" "$tmp/ads/later" # a new user's adapter, after start-up
r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/completions" -d "$(body later)")
check "an adapter added to the directory after start-up serves on first use" test "${r##*$'\n'}" = 200
check "... with its tokens" test "$(echo "${r%$'\n'*}" | jq -c .choices[0].token_ids)" = "$want"
check "... and is listed from then on" test "$(status_of later)" = loaded
cp -r "$ad/bad/lora-wrong-shape" "$tmp/ads/newbroken"
check "a broken one added later: 400 adapter_unavailable" unavailable newbroken
mkdir "$tmp/ads/noconfig"
check "a directory without an adapter config: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/completions" -d "$(body noconfig)")" = 404
ln -s "$ad/lora-qv-r4" "$tmp/ads/escape"
check "a link out of the directory: 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/completions" -d "$(body escape)")" = 404
check "a name with '..': 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/completions" -d "$(body ../ads/first)")" = 404
r=$(post /v1/load_lora_adapter '{"lora_name":"kept","lora_path":"loreft-f3l3"}')
check "load_lora_adapter: 200" test "${r##*$'\n'}" = 200
r=$(post /v1/load_lora_adapter '{"lora_name":"gone","lora_path":"lora-qv-r4"}')
check "a second one: 200" test "${r##*$'\n'}" = 200
r=$(post /v1/unload_lora_adapter '{"lora_name":"gone"}')
check "unload it: 200" test "${r##*$'\n'}" = 200
check "the registry file holds the loaded one only" \
  test "$(grep -v '^#' "$tmp/state/adapters.tsv" | cut -f1 | tr '\n' ' ')" = "kept "
kept=$(curl -s "$SRV_URL/v1/completions" -d "$(body kept)" | jq -c .choices[0].token_ids)
stop_server
check "SIGTERM: exit 0 (resolver)" test $? -eq 0
start_server "$tmp/log6" -m "$model" --adapter-registry "$tmp/state/adapters.tsv" --threads 1 || exit 1
check "after a restart the runtime-loaded adapter is registered again" test "$(status_of kept)" = loaded
check "... and serves the same tokens" test "$(curl -s "$SRV_URL/v1/completions" -d "$(body kept)" | jq -c .choices[0].token_ids)" = "$kept"
check "... the unloaded one is not" test "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/v1/models/gone")" = 404
stop_server
printf 'no tab here\n' >"$tmp/state/bad.tsv"
check "a malformed registry file: the server refuses to start, naming file and line" \
  bash -c "timeout 20 '$bin' serve -m '$model' --port 0 --adapter-registry '$tmp/state/bad.tsv' 2>&1 | grep -q 'bad.tsv: line 1: expected NAME<tab>DIRECTORY'"

# ---- --no-adapter-check: found on first use, the same 400 ----------------------------------------
start_server "$tmp/log2" -m "$model" --adapter "broken=$ad/lora-qwen2-bf16" --no-adapter-check --threads 1 || exit 1
check "not checked: nothing reported at start-up" bash -c "! grep -q unavailable '$tmp/log2'"
check "not checked: listed as not loaded" test "$(status_of broken)" = not_loaded
check "first use: 400 adapter_unavailable" unavailable broken
check "then listed as unavailable" test "$(status_of broken)" = unavailable
check "streamed: 400 adapter_unavailable" unavailable broken true
stop_server
check "SIGTERM: exit 0 (no check)" test $? -eq 0

exit $((fails > 0))
