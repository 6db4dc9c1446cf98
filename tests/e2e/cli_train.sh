#!/usr/bin/env bash
# End-to-end: `preft train sft` and `preft eval-loss` on a tiny reference
# model (pre-tokenised JSONL), `preft train pretrain` with a tokenizer the
# project trains itself, and the outputs loading in `preft generate`:
# eval-loss of the trained adapter equals the trainer's final eval loss; the
# saved configs record the mode; --json metrics, CSV log and SVG plot exist;
# resume of a finished run changes nothing; bad input gives exit code 1 with
# FILE:LINE, a bad command line exit code 2.
source "$(dirname "$0")/e2e_lib.bash"
model=$data/grads/full-llama-tiny/model

for sub in sft pretrain; do
  check "train $sub --help exits 0" bash -c "'$bin' train $sub --help | grep -q usage"
done
check "eval-loss --help exits 0" bash -c "'$bin' eval-loss --help | grep -q usage"
check "train sft --help states the truncation rule" bash -c "'$bin' train sft --help | grep -q 'Truncation to --seq'"

# six examples, pre-tokenised (the tiny model has no tokenizer)
for i in 0 1 2 3 4 5; do
  p=$(seq -s, $((3 + i)) $((9 + i)))
  c=$(seq -s, $((20 + 3 * i)) $((24 + 3 * i)))
  echo "{\"prompt_ids\": [$p], \"completion_ids\": [$c]}"
done >"$tmp/train.jsonl"

for mode in all prefill; do
  "$bin" train sft -m "$model" --method lora --mode $mode --rank 4 --data "$tmp/train.jsonl" --eval "$tmp/train.jsonl" \
    -o "$tmp/lora-$mode" --steps 30 --batch 3 --lr 1e-2 --json "$tmp/lora-$mode.json" -q >"$tmp/out" 2>&1
  check "train sft lora $mode exits 0" test $? -eq 0
  want=$(sed -n 's/.*"eval_loss":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$tmp/lora-$mode.json")
  got=$("$bin" eval-loss -m "$model" -a "$tmp/lora-$mode" --data "$tmp/train.jsonl" | sed -n 's/^eval loss \([0-9.]*\) .*/\1/p')
  check "eval-loss ($got) equals the trainer's eval loss ($want), $mode" close_to "$got" "$want"
  check "lora $mode: csv, svg, checkpoint written" test -s "$tmp/lora-$mode/train_log.csv" -a -s "$tmp/lora-$mode/loss.svg" -a -s "$tmp/lora-$mode/checkpoint.bin"
  check "lora $mode: metrics hold tokens_per_s" grep -q tokens_per_s "$tmp/lora-$mode.json"
done
check "prefill adapter records preft_mode" grep -q '"preft_mode":[[:space:]]*"prefill"' "$tmp/lora-prefill/adapter_config.json"
base=$("$bin" eval-loss -m "$model" --data "$tmp/train.jsonl" | sed -n 's/^eval loss \([0-9.]*\) .*/\1/p')
pre=$("$bin" eval-loss -m "$model" -a "$tmp/lora-prefill" --data "$tmp/train.jsonl" | sed -n 's/^eval loss \([0-9.]*\) .*/\1/p')
check "prefill-only adapter ($pre) well below base ($base)" below "$pre" "$base" 0.5

for method in loreft direft; do
  "$bin" train sft -m "$model" --method $method --mode prefill --rank 2 --positions f2+l2 --data "$tmp/train.jsonl" \
    --eval-frac 0.34 -o "$tmp/$method" --steps 5 --batch 2 -q >"$tmp/out" 2>&1
  check "train sft $method exits 0" test $? -eq 0
  check "$method reft_config.json records mode prefill" grep -q '"mode":[[:space:]]*"prefill"' "$tmp/$method/reft_config.json"
  check "$method adapter serves" bash -c "'$bin' generate -m '$model' -a '$tmp/$method' --ids 3,4,5,6 -n 3 --print-ids >/dev/null"
done

cp "$tmp/lora-all/checkpoint.bin" "$tmp/ck.bin"
"$bin" train sft -m "$model" --method lora --mode all --rank 4 --data "$tmp/train.jsonl" -o "$tmp/lora-all" \
  --steps 30 --batch 3 --lr 1e-2 --resume -q >"$tmp/out" 2>&1
check "resuming a finished run exits 0" test $? -eq 0
check "resuming a finished run leaves the checkpoint" cmp -s "$tmp/ck.bin" "$tmp/lora-all/checkpoint.bin"

printf '{"prompt_ids": [1, 2], "completion_ids": [3]}\nnot json\n' >"$tmp/bad.jsonl"
"$bin" train sft -m "$model" --method lora --data "$tmp/bad.jsonl" -o "$tmp/bad" -q >"$tmp/out" 2>&1
check "bad line exits 1" test $? -eq 1
check "bad line names file and line" grep -q 'bad.jsonl:2:' "$tmp/out"
"$bin" train sft -m "$model" --method lora --data "$tmp/bad.jsonl" -o "$tmp/bad" --on-bad-line skip --steps 1 -q >"$tmp/out" 2>&1
check "--on-bad-line skip trains" test $? -eq 0
"$bin" train sft -m "$model" --method frob --data "$tmp/bad.jsonl" -o "$tmp/bad" >/dev/null 2>&1
check "unknown method is a usage error" test $? -eq 2

# pretraining: a byte-level BPE trained here, a 2-layer model, text files
mkdir -p "$tmp/tok"
"$bin" tokenizer train --vocab-size 300 --special '<|bos|>' --special '<|eos|>' -o "$tmp/tok/tokenizer.json" \
  "$data/tokenizer/train_text.txt" >/dev/null 2>&1
check "tokenizer train exits 0" test $? -eq 0
cat >"$tmp/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
 "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}
JSON
head -c 20000 "$data/tokenizer/train_text.txt" >"$tmp/a.txt"
tail -c 20000 "$data/tokenizer/train_text.txt" >"$tmp/b.txt"
"$bin" train pretrain --config "$tmp/config.json" --tokenizer "$tmp/tok" --data "$tmp/a.txt" "$tmp/b.txt" -o "$tmp/pre" \
  --steps 12 --batch 4 --seq 32 --lr 3e-3 --eval-every 6 --json "$tmp/pre.json" -q >"$tmp/out" 2>&1
check "train pretrain exits 0" test $? -eq 0
for f in config.json model.safetensors tokenizer.json tokenizer_config.json train_log.csv loss.svg; do
  check "pretrain wrote $f" test -s "$tmp/pre/$f"
done
first=$(sed -n 2p "$tmp/pre/train_log.csv" | cut -d, -f4)
last=$(tail -n 1 "$tmp/pre/train_log.csv" | cut -d, -f4)
check "pretraining lowers the loss ($first -> $last)" below "$last" "$first"
check "the pretrained model generates text" bash -c "'$bin' generate -m '$tmp/pre' -p 'Hello' -n 5 >/dev/null"

# --matmul-precision bf16 (vdpbf16ps, or the emulation with a note): the same
# run's first-step loss within BF16 rounding (2^-8 relative) of FP32's, and
# not bit-identical (BF16 engaged); a bad value is a usage error
"$bin" train pretrain --config "$tmp/config.json" --tokenizer "$tmp/tok" --data "$tmp/a.txt" "$tmp/b.txt" \
  -o "$tmp/pre16" --steps 3 --batch 4 --seq 32 --lr 3e-3 --matmul-precision bf16 -q >"$tmp/out16" 2>&1
check "train pretrain --matmul-precision bf16 exits 0" test $? -eq 0
f32_1=$(sed -n 2p "$tmp/pre/train_log.csv" | cut -d, -f4)
bf16_1=$(sed -n 2p "$tmp/pre16/train_log.csv" | cut -d, -f4)
check "bf16 first-step loss $bf16_1 within 2^-8 of f32's $f32_1, not identical" \
  awk -v a="$bf16_1" -v b="$f32_1" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d > 0 && d < b / 256) }'
"$bin" train pretrain --config "$tmp/config.json" --tokenizer "$tmp/tok" --data "$tmp/a.txt" -o "$tmp/bad16" \
  --matmul-precision fp8 >"$tmp/outbad" 2>&1
check "--matmul-precision fp8 is a usage error naming the option" \
  bash -c "test $? -eq 2 && grep -q 'matmul-precision expects f32 or bf16' '$tmp/outbad'"

if [ $fails -ne 0 ]; then echo "$fails failed"; exit 1; fi
echo "all passed"
