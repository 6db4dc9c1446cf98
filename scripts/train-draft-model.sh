#!/usr/bin/env bash
# Trains the draft model for speculative decoding (assets/draft-model): a
# 1-layer Llama-style decoder of the default model's width on its tokenizer
# (assets/default-model/tokenizer.json, 8192 tokens, reused as it is, so the
# draft's token ids are the target's). It starts from the default model's
# embedding, first layer and final norm (an "early exit" of the target:
# config.json with one layer over the target's weights; the other layers'
# tensors are ignored) and is trained by scripts/train-default-model.sh on
# the same training side of the State of the Union addresses
# (data/sotu/split.tsv) with that shape, a low learning rate and few steps,
# so that one layer learns to predict what six do. The weights are then
# stored as BF16 (tools/safetensors_bf16.py) to keep the directory small.
# Its quality only decides how many drafted tokens the target accepts, never
# what the target outputs.
# Usage: scripts/train-draft-model.sh [BUILD_DIR]
#   env: STEPS (40), LR (3e-4), THREADS (default: all cores), WORK (state
#        folder, kept), OUT (assets/draft-model)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${OUT:-assets/draft-model}
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
# the target's tokenizer: train-default-model.sh trains one only when WORK has none
cp assets/default-model/tokenizer.json "$work/tokenizer.json"
# the starting point: the default model cut to its first layer
rm -rf "$work/init"
mkdir -p "$work/init"
cp assets/default-model/model.safetensors assets/default-model/tokenizer.json "$work/init/"
jq '.num_hidden_layers = 1' assets/default-model/config.json >"$work/init/config.json"
shape=$(jq -r '"\(.hidden_size) \(.intermediate_size) \(.num_attention_heads) \(.num_key_value_heads)"' \
  assets/default-model/config.json)
read -r width ffn heads kv_heads <<<"$shape"
STEPS=${STEPS:-40} LR=${LR:-3e-4} WARMUP=0 INIT="$work/init" WIDTH=$width LAYERS=1 FFN=$ffn HEADS=$heads \
  KV_HEADS=$kv_heads WORK=$work OUT="$work/out" bash scripts/train-default-model.sh "$build"
python3 tools/safetensors_bf16.py "$work/out/model.safetensors"
jq '.torch_dtype = "bfloat16"' "$work/out/config.json" >"$work/out/config.json.new"
mv "$work/out/config.json.new" "$work/out/config.json"
mkdir -p "$(dirname "$out")"
rm -rf "$out.new"
cp -r "$work/out" "$out.new"
if [ -f "$out/README.md" ]; then cp "$out/README.md" "$out.new/README.md"; fi
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$out.new" "$out"
rm -rf "$out.old"
echo "train-draft-model: wrote $out ($(du -sh "$out" | cut -f1))"
