#!/usr/bin/env bash
# Trains assets/task-model, the small model for the RL tasks (`preft train rl
# --task addition|reverse|count`), from scratch with preft alone: text of
# "PROMPT ANSWER" lines from `preft rl-data` (training seeds only, so the
# held-out problems of seed 1000000 stay unseen), a 280-token byte-level BPE
# tokenizer learned from that text (23 merges: the format words; digits and
# the letters of `count` stay single bytes), and a 4-layer, 128-wide
# Llama-style decoder.
# Deterministic for a given thread count. The result replaces
# assets/task-model atomically; its README.md (the model card) is kept.
# Usage: scripts/train-task-model.sh [BUILD_DIR]   (env: STEPS, THREADS, LINES)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${STEPS:-300}
threads=${THREADS:-$(nproc)}
lines=${LINES:-6000} # per part of the mix
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the text: task levels around each default, interleaved line by line
levels=(addition:1 addition:2 addition:2 addition:3 reverse:2 reverse:3 reverse:4 count:4 count:6 count:8)
files=()
for i in "${!levels[@]}"; do
  "$build/preft" rl-data --task "${levels[$i]}" --n "$lines" --seed $((i + 1)) --with-answers >"$work/part$i.txt"
  files+=("$work/part$i.txt")
done
paste -d '\n' "${files[@]}" >"$work/tasks.txt"
echo "train-task-model: $(wc -l <"$work/tasks.txt") lines, $(wc -c <"$work/tasks.txt") bytes"

"$build/preft" tokenizer train --vocab-size 280 --special "<|endoftext|>" -o "$work/tokenizer.json" "$work/tasks.txt"
cat >"$work/config.json" <<'JSON'
{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 280,
  "hidden_size": 128,
  "intermediate_size": 384,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 4,
  "head_dim": 32,
  "max_position_embeddings": 256,
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
  --data "$work/tasks.txt" -o "$work/model" --steps "$steps" --batch 16 --seq 64 --lr 2e-3 --warmup 20 \
  --eval-every 100 --save-every 100 --seed 1 --threads "$threads"
rm -f "$work/model/checkpoint.bin"
# greedy by default: the tasks are scored on the first line of a completion
cat >"$work/model/generation_config.json" <<'JSON'
{
  "do_sample": false,
  "bos_token_id": 0,
  "eos_token_id": 0
}
JSON
[ -f assets/task-model/README.md ] && cp assets/task-model/README.md "$work/model/"
mkdir -p assets
rm -rf assets/task-model.new assets/task-model.old
mv "$work/model" assets/task-model.new
[ -d assets/task-model ] && mv assets/task-model assets/task-model.old
mv assets/task-model.new assets/task-model
rm -rf assets/task-model.old
echo "train-task-model: wrote assets/task-model"
