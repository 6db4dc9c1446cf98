#!/usr/bin/env bash
# End-to-end: `preft serve --lora-dtype`. An FP32 LoRA held as bfloat16 (or
# float16) takes less memory (/v1/models' bytes), its generated tokens' log-
# probabilities move from the FP32 server's (the engine computes with the
# rounded weights), and the prompt scoring of echo (its own copy of the
# adapter) gives the same numbers as generation on the same server, as does
# `preft eval-loss --lora-dtype` (the CLI's option) of the first generated
# token; an unknown type is a usage error (exit 2) naming the option. The numbers
# themselves are checked against PyTorch in test_adapters.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
adapter=$data/adapters/lora-all7-rslora-patterns # FP32 A and B

"$bin" serve -m "$model" --lora-dtype float32 --port 0 >/dev/null 2>"$tmp/err"
check "--lora-dtype float32: exit 2" test $? -eq 2
check "... naming the option" grep -q -- "--lora-dtype" "$tmp/err"

gen='{"model":"u","prompt":[1,2,3,4,5],"max_tokens":4,"temperature":0,"ignore_eos":true,"logprobs":1}'
# serve_run TYPE: bytes of the loaded adapter, then the greedy tokens' ids and
# logprobs, then the echo-scored logprob of the first generated token
serve_run() {
  start_server "$tmp/log-$1" -m "$model" --adapter "u=$adapter" --lora-dtype "$1" --threads 1 || return 1
  local g ids first s
  g=$(curl -s "$SRV_URL/v1/completions" -d "$gen")
  ids=$(echo "$g" | jq -c '[.choices[0].logprobs.tokens[]]')
  first=$(echo "$g" | jq -r '.choices[0].logprobs.token_logprobs[0]')
  # the prompt and the first generated token, scored as a prompt
  s=$(curl -s "$SRV_URL/v1/completions" -d "{\"model\":\"u\",\"prompt\":[1,2,3,4,5,$(echo "$g" | jq -r '.choices[0].token_ids[0] // empty')],\"max_tokens\":1,\"temperature\":0,\"echo\":true,\"logprobs\":1}")
  echo "{\"prompt_ids\": [1, 2, 3, 4, 5], \"completion_ids\": [$(echo "$g" | jq -r '.choices[0].token_ids[0]')]}" >"$tmp/first-$1.jsonl"
  echo "$(curl -s "$SRV_URL/v1/models/u" | jq .bytes) $first $(echo "$s" | jq -r '.choices[0].logprobs.token_logprobs[5]') $ids"
  stop_server
}
read -r bytes32 lp32 echo32 ids32 <<<"$(serve_run auto)"
read -r bytes16 lp16 echo16 ids16 <<<"$(serve_run bfloat16)"
echo "auto: $bytes32 bytes, first logprob $lp32 (echo $echo32); bfloat16: $bytes16 bytes, $lp16 (echo $echo16)"
# near A B TOL: |A - B| <= TOL, both numbers
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { if (a !~ /^-?[0-9.e+-]+$/ || b !~ /^-?[0-9.e+-]+$/) exit 1; d = a - b; exit !(d <= t && -d <= t) }'; }
far() { require_number "$1" && require_number "$2" && ! near "$@"; }
require_number() { [[ $1 =~ ^-?[0-9] ]] || { echo "  not a number: '$1'"; return 1; }; }
check "bfloat16: the adapter takes less than 3/4 of the memory" test "$bytes16" -lt $((bytes32 * 3 / 4))
check "bfloat16: the first token's logprob moves from the FP32 server's" \
  far "$lp16" "$lp32" 1e-6
check "bfloat16: echo's prompt scoring agrees with generation (1e-4)" near "$echo16" "$lp16" 1e-4
check "auto: likewise" near "$echo32" "$lp32" 1e-4
# eval_loss TYPE: preft eval-loss of the first generated token (minus its logprob)
eval_loss() {
  "$bin" eval-loss -m "$model" -a "$adapter" --data "$tmp/first-$1.jsonl" --lora-dtype "$1" --threads 1 \
    --json "$tmp/el-$1.json" >/dev/null 2>&1 && jq -r '-.eval_loss' "$tmp/el-$1.json"
}
check "eval-loss --lora-dtype bfloat16 gives the bfloat16 server's logprob" near "$(eval_loss bfloat16)" "$lp16" 1e-4
check "eval-loss --lora-dtype auto gives the FP32 server's" near "$(eval_loss auto)" "$lp32" 1e-4
"$bin" eval-loss -m "$model" -a "$adapter" --data "$tmp/first-auto.jsonl" --lora-dtype f32 >/dev/null 2>"$tmp/err"
check "eval-loss --lora-dtype f32: exit 2" test $? -eq 2
exit $((fails > 0))
