#!/usr/bin/env bash
# End-to-end: a short `preft bench serve` load run (the project's own
# client, 8 concurrent streaming clients over four adapters in both modes
# and the base model) against `preft serve`; every request succeeds with
# the asked number of tokens, the report and its JSON are complete, and
# both processes exit 0 (under AddressSanitizer: with no leak).
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
ad=$data/adapters
"$bin" make-adapter -m "$model" --kind direft --rank 2 --mode prefill --seed 1 -o "$tmp/made-direft"
check "make-adapter writes a ReFT directory" test -s "$tmp/made-direft/reft_config.json"
"$bin" make-adapter -m "$model" --kind lora --rank 2 --dtype f32 --seed 1 -o "$tmp/made-lora"
check "make-adapter writes a PEFT LoRA directory" test -s "$tmp/made-lora/adapter_model.safetensors"
start_server "$tmp/log" -m "$model" --threads 1 --adapter "a=$ad/lora-qv-r4" --adapter "b=$ad/loreft-f3l3" \
  --adapter "c=$ad/direft-f5l5-shared" --adapter "d=$tmp/made-lora" --adapter "e=$tmp/made-direft" || exit 1

run() { "$bin" bench serve --url "$SRV_URL" --concurrency 8 --requests 32 --prompt-len 12 --output-len 10 "$@"; }
run --num-adapters 5 --adapter-mode all --json "$tmp/all.json" >"$tmp/out" 2>&1
check "bench serve, 5 adapters all-token: exit 0" test $? -eq 0
check "32 ok, 0 errors, 320 tokens" test "$(jq -c '[.ok, .errors, .output_tokens]' "$tmp/all.json")" = "[32,0,320]"
check "report has TTFT and TPOT percentiles" bash -c "grep -q '^TTFT ms' '$tmp/out' && grep -q '^TPOT ms' '$tmp/out'"
check "report has the HTTP share of step time" grep -q 'HTTP layer' "$tmp/out"
check "JSON has p50/p90/p99" bash -c "jq -e '.ttft_s.p99 >= .ttft_s.p50 and .tpot_s.p90 > 0' '$tmp/all.json' >/dev/null"
run --adapters a,b,e --adapter-mode prefill --json "$tmp/prefill.json" >"$tmp/out" 2>&1
check "bench serve, prefill-only: 32 ok" test "$(jq .ok "$tmp/prefill.json")" = 32
run --json "$tmp/base.json" >"$tmp/out" 2>&1
check "bench serve, base model: 32 ok" test "$(jq .ok "$tmp/base.json")" = 32
check "prefill-only tokens counted as prefill mode" test "$(metric 'preft_generation_tokens_total{mode="prefill"}')" = 320
"$bin" bench serve --url "$SRV_URL" --adapters nope --requests 2 --output-len 2 >"$tmp/out" 2>&1
check "unknown adapter: bench serve reports errors, exit 1" bash -c "test $? -eq 1 && grep -q '0 ok, 2 errors' '$tmp/out'"
# one client over [a, nope]: client i mod N always names a; uniform picks
# per request, so some of 8 requests name the unknown one
"$bin" bench serve --url "$SRV_URL" --concurrency 1 --adapters a,nope --requests 8 --output-len 2 \
  --json "$tmp/client.json" >"$tmp/out" 2>&1
check "--adapter-pick client (default): one client, every request on its adapter" \
  test "$(jq -c '[.ok, .adapter_pick]' "$tmp/client.json")" = '[8,"client"]'
"$bin" bench serve --url "$SRV_URL" --concurrency 1 --adapters a,nope --adapter-pick uniform --requests 8 \
  --output-len 2 --json "$tmp/uniform.json" >"$tmp/out" 2>&1
check "--adapter-pick uniform: each request a random adapter (some on each)" \
  jq -e '.adapter_pick == "uniform" and .ok > 0 and .errors > 0 and .ok + .errors == 8' "$tmp/uniform.json"
stop_server
check "SIGTERM after the load: exit 0" test $? -eq 0
"$bin" bench serve --url "$SRV_URL" --requests 1 >"$tmp/out" 2>&1
check "no server: exit 1 with a message" bash -c "test $? -eq 1 && grep -q 'preft bench serve:' '$tmp/out'"

exit $((fails > 0))
