#!/usr/bin/env bash
# Data-parallel training under MPI on this machine: the same pretraining run
# (a 4-layer, width-128 Llama on packed text, global batch B of T-token
# windows, STEPS steps, seed 0) as one process on 1 thread, one process on 2
# threads, and `mpirun -np 2` with 1 thread per rank (same global batch:
# each rank runs half of it, one MPI_Allreduce of the gradients a step);
# then many adapters in one job (--adapters-from: USERS folders of LoRA
# data) the same three ways. Prints a table: tokens/s of the training loop
# (from --json), wall seconds of the whole command (start-up, data, saving
# and MPI start-up included), and the speed-up over 1 thread.
# Usage: bench/train_mpi.sh [BUILD_DIR]
# Environment: B (8), T (128), STEPS (12), USERS (8).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
B=${B:-8} T=${T:-128} STEPS=${STEPS:-12} USERS=${USERS:-8}
bin=$build/preft
"$bin" --version | grep -q '^mpi: no' && { echo "preft was built without MPI" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpirun is missing: run scripts/install-deps.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpi() { mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np "$@"; }
jnum() { sed -n "s/.*\"$2\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }

mkdir -p "$work/tok"
"$bin" tokenizer train --vocab-size 512 --special '<|bos|>' --special '<|eos|>' -o "$work/tok/tokenizer.json" \
  tests/data/tokenizer/train_text.txt >/dev/null 2>&1
cat >"$work/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128, "intermediate_size": 384,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
JSON
pre=(train pretrain --config "$work/config.json" --tokenizer "$work/tok" --data tests/data/tokenizer/train_text.txt
  --steps "$STEPS" --batch "$B" --seq "$T" --lr 1e-3 --eval-frac 0 -q)

printf "%-34s %12s %10s %9s\n" "run" "tokens/s" "wall s" "speed-up"
row() { # row NAME JSON WALL BASE_TPS
  local tps
  tps=$(jnum "$2" tokens_per_s)
  printf "%-34s %12.0f %10.2f %8.2fx\n" "$1" "$tps" "$3" "$(awk -v a="$tps" -v b="$4" 'BEGIN { print a / b }')"
}
timed() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

w1=$(timed "$bin" "${pre[@]}" --threads 1 -o "$work/p1" --json "$work/p1.json")
base=$(jnum "$work/p1.json" tokens_per_s)
row "pretrain, 1 process x 1 thread" "$work/p1.json" "$w1" "$base"
w2=$(timed "$bin" "${pre[@]}" --threads 2 -o "$work/p2" --json "$work/p2.json")
row "pretrain, 1 process x 2 threads" "$work/p2.json" "$w2" "$base"
w3=$(timed mpi 2 "$bin" "${pre[@]}" --threads 1 -o "$work/p3" --json "$work/p3.json")
row "pretrain, mpirun -np 2 x 1 thread" "$work/p3.json" "$w3" "$base"

# many adapters: USERS folders of 24 examples each, a LoRA each, trained on the model just pretrained
for u in $(seq -w 1 "$USERS"); do
  mkdir -p "$work/users/u$u"
  for i in $(seq 0 23); do
    p=$(seq -s, $((3 + i + 10#$u)) $((60 + i + 10#$u)))
    c=$(seq -s, $((100 + 2 * i)) $((130 + 2 * i)))
    echo "{\"prompt_ids\": [$p], \"completion_ids\": [$c]}"
  done >"$work/users/u$u/train.jsonl"
done
many=(train sft -m "$work/p1" --method lora --rank 8 --adapters-from "$work/users" --steps 6 --batch 4 -q)
# tokens/s here: adapters trained per second, scaled to the 1-thread run
adapters_row() { # NAME WALL BASE_WALL
  printf "%-34s %12s %10.2f %8.2fx\n" "$1" "-" "$2" "$(awk -v a="$2" -v b="$3" 'BEGIN { print b / a }')"
}
m1=$(timed "$bin" "${many[@]}" --threads 1 -o "$work/m1")
adapters_row "$USERS adapters, 1 process x 1 thread" "$m1" "$m1"
m2=$(timed "$bin" "${many[@]}" --threads 2 -o "$work/m2")
adapters_row "$USERS adapters, 1 process x 2 threads" "$m2" "$m1"
m3=$(timed mpi 2 "$bin" "${many[@]}" --threads 1 -o "$work/m3")
adapters_row "$USERS adapters, mpirun -np 2 x 1 thread" "$m3" "$m1"
echo "(B=$B T=$T STEPS=$STEPS on $(nproc) cores; $(uptime | sed 's/.*load average/load average/'))"
