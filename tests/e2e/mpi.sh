#!/usr/bin/env bash
# End-to-end: jobs under `mpirun -np 2`. Data-parallel training
# (docs/TRAINING.md, "Data-parallel training with MPI"): The weights trained over 2 ranks equal
# single-process training with the same global batch and seed within
# TOL = 5e-5 per weight (the ranks sum their shares' gradients in another
# float order: measured differences are about 3e-7 for LoRA, 0 for LoReFT,
# 4e-6 for pretraining); a run with another global batch differs by more, so
# the comparison can fail. Covered: LoRA (an uneven batch of 5 over 2 ranks,
# 2 accumulated micro-batches, held-out eval), LoReFT, pretraining; --json
# world_size, rank 0's outputs; --adapters-from (3 users over 2 ranks, each
# adapter bit for bit the one trained alone); GRPO (`train rl`, 3 prompts
# a step over 2 ranks: measured equal bit for bit). A task run (docs/TASKS.md,
# "Sharded runs"; with root and bubblewrap): each rank a shard, rank 0's
# merged result equals a single run's. Skipped (exit 77) only when
# preft was built without MPI, after checking that it then refuses mpirun.
source "$(dirname "$0")/e2e_lib.bash"
model=$data/grads/full-llama-tiny/model
TOL=5e-5

if "$bin" --version | grep -q '^mpi: no'; then
  OMPI_COMM_WORLD_SIZE=2 "$bin" train sft -m "$model" --method lora --data /dev/null -o "$tmp/x" >"$tmp/out" 2>&1
  check "without MPI, a run under mpirun exits 2" test $? -eq 2
  check "without MPI, the refusal says so" grep -q 'built without MPI' "$tmp/out"
  if [ $fails -gt 0 ]; then e2e_exit; fi
  echo "skip: preft was built without MPI (install libopenmpi-dev openmpi-bin and rebuild to run this test)"
  exit 77
fi
if ! command -v mpirun >/dev/null; then
  echo "FAIL preft is built with MPI but mpirun is missing (scripts/install-deps.sh installs openmpi-bin)"
  exit 1
fi
# Open MPI's components, dlopened and closed again, leave allocations that
# LeakSanitizer reports from unknown modules: leak checking is off for the
# ranks (the same code runs with it on in the single-process runs here).
# Single-copy shared memory needs ptrace rights containers often withhold.
mpi() {
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np "$@"
}
# max |a - b| over the float32 data of two safetensors files of one layout
f32() {
  local hl
  hl=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  od -An -tf4 -v -j $((8 + hl)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
max_diff() {
  paste <(f32 "$1") <(f32 "$2") | awk 'NF != 2 { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
    END { if (bad || n == 0) print "nan"; else printf "%.3g\n", m }'
}
within() { require_numbers "$1" && awk -v a="$1" -v t="$2" 'BEGIN { exit !(a <= t) }'; }
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }

for i in 0 1 2 3 4 5 6 7 8 9; do
  p=$(seq -s, $((3 + i)) $((9 + i)))
  c=$(seq -s, $((20 + 3 * i)) $((24 + 3 * i)))
  echo "{\"prompt_ids\": [$p], \"completion_ids\": [$c]}"
done >"$tmp/train.jsonl"

# LoRA: global batch 5 (3 + 2 over the ranks), 2 micro-batches a step
sft=(train sft -m "$model" --data "$tmp/train.jsonl" --eval-frac 0.2 --steps 6 --grad-accum 2 --threads 1 -q)
"$bin" "${sft[@]}" --method lora --rank 4 --lr 1e-2 --batch 5 -o "$tmp/lora1" --json "$tmp/lora1.json" >/dev/null 2>&1
check "lora, one process: exits 0" test $? -eq 0
mpi 2 "$bin" "${sft[@]}" --method lora --rank 4 --lr 1e-2 --batch 5 -o "$tmp/lora2" --json "$tmp/lora2.json" >"$tmp/out" 2>&1
check "lora, mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
d=$(max_diff "$tmp/lora1/adapter_model.safetensors" "$tmp/lora2/adapter_model.safetensors")
check "lora: 2 ranks equal one process within $TOL (max |diff| $d)" within "$d" $TOL
check "lora: --json records world_size 2" grep -q '"world_size":[[:space:]]*2' "$tmp/lora2.json"
check "lora: one process records world_size 1" grep -q '"world_size":[[:space:]]*1' "$tmp/lora1.json"
check "lora: the loss reported is the global mean" close_to "$(json_num "$tmp/lora2.json" train_loss)" "$(json_num "$tmp/lora1.json" train_loss)"
check "lora: the eval loss is the whole eval set's" close_to "$(json_num "$tmp/lora2.json" eval_loss)" "$(json_num "$tmp/lora1.json" eval_loss)"
check "lora: tokens counted over both ranks" test "$(json_num "$tmp/lora2.json" train_tokens)" = "$(json_num "$tmp/lora1.json" train_tokens)"
check "lora: rank 0 wrote log, plot and checkpoint" test -s "$tmp/lora2/train_log.csv" -a -s "$tmp/lora2/loss.svg" -a -s "$tmp/lora2/checkpoint.bin"
check "lora: the summary is printed once" test "$(grep -c '^saved to' "$tmp/out")" -eq 1
# the comparison can fail: another global batch trains other weights
"$bin" "${sft[@]}" --method lora --rank 4 --lr 1e-2 --batch 4 -o "$tmp/lora4" >/dev/null 2>&1
d=$(max_diff "$tmp/lora1/adapter_model.safetensors" "$tmp/lora4/adapter_model.safetensors")
check "lora: global batch 4 differs from 5 by more than $TOL ($d)" bash -c "! awk -v a='$d' -v t=$TOL 'BEGIN { exit !(a <= t) }'"

# LoReFT on its positions (ReFT parameters, re-orthonormalised R)
reft=(--method loreft --rank 2 --positions f2+l2 --lr 5e-3 --batch 3)
"$bin" "${sft[@]}" "${reft[@]}" -o "$tmp/reft1" >/dev/null 2>&1
mpi 2 "$bin" "${sft[@]}" "${reft[@]}" -o "$tmp/reft2" >"$tmp/out" 2>&1
check "loreft, mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
d=$(max_diff "$tmp/reft1/reft_model.safetensors" "$tmp/reft2/reft_model.safetensors")
check "loreft: 2 ranks equal one process within $TOL (max |diff| $d)" within "$d" $TOL

# pretraining: every weight of a model, a tokenizer trained here
mkdir -p "$tmp/tok"
"$bin" tokenizer train --vocab-size 300 --special '<|bos|>' --special '<|eos|>' -o "$tmp/tok/tokenizer.json" \
  "$data/tokenizer/train_text.txt" >/dev/null 2>&1
cat >"$tmp/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
 "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
JSON
head -c 20000 "$data/tokenizer/train_text.txt" >"$tmp/a.txt"
pre=(train pretrain --config "$tmp/config.json" --tokenizer "$tmp/tok" --data "$tmp/a.txt" --steps 6 --batch 5
  --seq 32 --lr 3e-3 --threads 1 -q)
"$bin" "${pre[@]}" -o "$tmp/pre1" >/dev/null 2>&1
check "pretrain, one process: exits 0" test $? -eq 0
mpi 2 "$bin" "${pre[@]}" -o "$tmp/pre2" --json "$tmp/pre2.json" >"$tmp/out" 2>&1
check "pretrain, mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
d=$(max_diff "$tmp/pre1/model.safetensors" "$tmp/pre2/model.safetensors")
check "pretrain: 2 ranks equal one process within $TOL (max |diff| $d)" within "$d" $TOL
check "pretrain: rank 0 wrote the tokenizer" test -s "$tmp/pre2/tokenizer.json"
check "pretrain: --json records world_size 2" grep -q '"world_size":[[:space:]]*2' "$tmp/pre2.json"

# many adapters in one job: 3 users over 2 ranks, each as if trained alone
for u in alice bob carol; do mkdir -p "$tmp/users/$u"; done
head -6 "$tmp/train.jsonl" >"$tmp/users/alice/train.jsonl"
tail -5 "$tmp/train.jsonl" >"$tmp/users/bob/train.jsonl"
head -3 "$tmp/train.jsonl" >"$tmp/users/carol/train.jsonl"
tail -2 "$tmp/train.jsonl" >"$tmp/users/carol/eval.jsonl"
many=(train sft -m "$model" --method lora --rank 4 --lr 1e-2 --batch 2 --steps 4 --eval-frac 0.2 --threads 1 -q)
mpi 2 "$bin" "${many[@]}" --adapters-from "$tmp/users" -o "$tmp/many" --json "$tmp/many.json" >"$tmp/out" 2>&1
check "--adapters-from under mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
"$bin" "${many[@]}" --adapters-from "$tmp/users" -o "$tmp/many1" >/dev/null 2>&1
check "--adapters-from in one process: exits 0" test $? -eq 0
for u in alice bob carol; do
  ev=()
  [ -f "$tmp/users/$u/eval.jsonl" ] && ev=(--eval "$tmp/users/$u/eval.jsonl")
  "$bin" "${many[@]}" --data "$tmp/users/$u/train.jsonl" "${ev[@]}" -o "$tmp/alone-$u" >/dev/null 2>&1
  check "--adapters-from: $u equals $u trained alone, bit for bit" \
    cmp -s "$tmp/alone-$u/adapter_model.safetensors" "$tmp/many/$u/adapter_model.safetensors"
  check "--adapters-from in one process: $u equals $u trained alone" \
    cmp -s "$tmp/alone-$u/adapter_model.safetensors" "$tmp/many1/$u/adapter_model.safetensors"
done
check "--adapters-from: --json lists 3 adapters, world_size 2" \
  bash -c "grep -c '\"name\":' '$tmp/many.json' | grep -qx 3 && grep -q '\"world_size\":[[:space:]]*2' '$tmp/many.json'"
check "--adapters-from: bob trained on rank 1" grep -q '"rank":[[:space:]]*1' "$tmp/many.json"
mkdir -p "$tmp/users2/dave"
"$bin" "${many[@]}" --adapters-from "$tmp/users2" -o "$tmp/many2" >"$tmp/out" 2>&1
check "--adapters-from: a folder without train.jsonl exits 1 naming it" \
  bash -c "test $? -eq 1 && grep -q 'dave: no train.jsonl' '$tmp/out'"

# GRPO: the step's 3 prompts sharded 2 + 1 over the ranks (each sample keeps its seed)
model_rl="$data/../../assets/default-model"
reward='jq --unbuffered "if (.completion | test(\"the\")) then 1 else 0 end"'
rl=(train rl -m "$model_rl" --task addition --reward-cmd "$reward" --method lora --mode prefill --rank 4 --group 4
  --prompts-per-step 3 --max-new-tokens 8 --no-stop-newline --seed 5 --steps 3 --threads 1 -q)
"$bin" "${rl[@]}" -o "$tmp/rl1" --json "$tmp/rl1.json" >/dev/null 2>&1
check "rl, one process: exits 0" test $? -eq 0
mpi 2 "$bin" "${rl[@]}" -o "$tmp/rl2" --json "$tmp/rl2.json" >"$tmp/out" 2>&1
check "rl, mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
# AdamW divides each update by the gradient's own scale, so an element whose
# gradient is near zero moves by up to the learning rate (2e-3 a step here)
# whichever way rounding tips it; the ranks' sums are associated differently
# from one process's, and 3 steps of that leave one element in 160,000 at
# 6e-5 (3% of a step). A rank that lost or doubled its share differs by
# whole steps in most elements.
TOL_RL=1e-4
d=$(max_diff "$tmp/rl1/adapter_model.safetensors" "$tmp/rl2/adapter_model.safetensors")
check "rl: 2 ranks equal one process within $TOL_RL (max |diff| $d)" within "$d" $TOL_RL
steps='[.steps[] | [.reward_mean, .equal_groups, .completion_tokens]]'
check "rl: every step's rewards are the whole step's" test "$(jq -c "$steps" "$tmp/rl2.json")" = "$(jq -c "$steps" "$tmp/rl1.json")"
check "rl: --json records world_size 2" test "$(jq .world_size "$tmp/rl2.json")" = 2
check "rl: no rank's rollout adapter left behind" bash -c "! ls -d '$tmp/rl2'/rollout-policy* 2>/dev/null"

# a task run, each rank a shard of it (the sandboxes need root and bubblewrap)
if [ "$(id -u)" = 0 ] && command -v bwrap >/dev/null; then
  run=(tasks run --path "$data/tasks" -t hello -t legacy -t badreward --agent oracle --n-attempts 2 -o "$tmp/jobs"
    --cache "$tmp/cache" --quiet)
  "$bin" "${run[@]}" --job-name single >/dev/null 2>&1
  check "tasks run, one process: exits 0" test $? -eq 0
  mpi 2 "$bin" "${run[@]}" --job-name ranks --json "$tmp/ranks.json" >"$tmp/out" 2>&1
  check "tasks run, mpirun -np 2: exits 0" test $? -eq 0 || cat "$tmp/out"
  summary='{mean_reward, n_trials, n_errors, pass_at_k, trials}'
  check "tasks run: the ranks' merged result equals a single run's" \
    test "$(jq -cS "$summary" "$tmp/jobs/ranks/result.json")" = "$(jq -cS "$summary" "$tmp/jobs/single/result.json")"
  check "tasks run: --json holds the merged summary" \
    test "$(jq -cS "$summary" "$tmp/ranks.json")" = "$(jq -cS "$summary" "$tmp/jobs/single/result.json")"
  check "tasks run: both shards' results are there" \
    test -s "$tmp/jobs/ranks/result-shard-1-of-2.json" -a -s "$tmp/jobs/ranks/result-shard-2-of-2.json"
else
  echo "skip the task run under mpirun: the sandboxes need root and bubblewrap"
fi
e2e_exit
