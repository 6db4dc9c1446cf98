#!/usr/bin/env bash
# examples/train_lora (public API, libpreft.so) trains the same LoRA adapter,
# bit for bit, as `preft train sft` with the same settings: same adapter
# tensors, same losses and gradient norms at every step.
# usage: train_matches_cli.sh TRAIN_LORA PREFT MODELS_DIR
set -euo pipefail
train_lora=$1 preft=$2 models=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$models/llama-gqa-rope3

# 12 already-tokenised examples (ids < 256, the model's vocabulary).
for i in $(seq 0 11); do
  p=$(seq -s, $((i + 1)) 3 $((i + 30)))
  c=$(seq -s, $((200 - i)) -5 $((150 - i)))
  echo "{\"prompt_ids\": [$p], \"completion_ids\": [$c]}"
done >"$tmp/train.jsonl"

"$train_lora" "$model" "$tmp/train.jsonl" "$tmp/api" 4 4 >/dev/null
"$preft" train sft -m "$model" --method lora --rank 4 --targets q,v --data "$tmp/train.jsonl" --steps 4 \
  --threads 2 --quiet -o "$tmp/cli" >/dev/null 2>&1

fail=0
if ! cmp -s "$tmp/api/adapter_model.safetensors" "$tmp/cli/adapter_model.safetensors"; then
  echo "FAIL: adapter_model.safetensors differs between train_lora and preft train sft"
  fail=1
fi
# step,epoch,lr,train_loss,eval_loss,grad_norm (the rest is timing)
cut -d, -f1-6 "$tmp/api/train_log.csv" >"$tmp/api.csv"
cut -d, -f1-6 "$tmp/cli/train_log.csv" >"$tmp/cli.csv"
if ! cmp -s "$tmp/api.csv" "$tmp/cli.csv"; then
  echo "FAIL: train_log.csv differs:"
  diff "$tmp/api.csv" "$tmp/cli.csv" || true
  fail=1
fi
if [[ $(wc -l <"$tmp/api.csv") -ne 5 ]]; then
  echo "FAIL: expected a header and 4 steps in train_log.csv:"
  cat "$tmp/api.csv"
  fail=1
fi
[[ $fail -eq 0 ]] && echo "ok: train_lora and preft train sft wrote the same adapter and losses"
exit $fail
