#!/usr/bin/env bash
# End-to-end: `preft train sft` of a LoRA on a quantized GGUF base (QLoRA:
# the frozen matrices used in place, the backward through them) against the
# same run on the FP32 base made of the same weights dequantized (`convert
# --type f32` of the quantized GGUF). The embedded default model (trained,
# with its tokenizer) is converted to Q8_0 and to Q4_K; on each, 20 steps of
# the same run on text data: every step's training loss within 1% of the
# dequantized run's (measured: under 0.3%), the final eval loss within 1%,
# the loss falls, and `preft eval-loss` of the saved adapter on the
# quantized GGUF gives the trainer's eval loss (the same forward).
source "$(dirname "$0")/e2e_lib.bash"
dm=$data/../../assets/default-model

words=(the people of the united states congress nation government war peace law freedom trade treasury year)
for i in $(seq 0 47); do
  p="" c=""
  for j in 0 1 2 3 4 5; do p="$p ${words[$(((i * 7 + j * 5 + i * j) % 15))]}"; done
  c=$(echo $p | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
  echo "{\"prompt\": \"Sort:$p\n\", \"completion\": \"$c\"}"
done >"$tmp/sft.jsonl"

# last column of train_log.csv's rows: step,epoch,lr,train_loss,...
losses() { cut -d, -f4 "$1/train_log.csv" | tail -n +2; }
eval_loss() { sed -n 's/.*"eval_loss":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$1"; }
for t in q8_0 q4_k; do
  "$bin" convert -m "$dm" --to gguf --type $t -o "$tmp/$t.gguf" 2>/dev/null
  "$bin" convert -m "$tmp/$t.gguf" --to gguf --type f32 -o "$tmp/deq-$t.gguf" 2>/dev/null
  check "$t: quantized and dequantized GGUFs written" test -s "$tmp/$t.gguf" -a -s "$tmp/deq-$t.gguf"
  for f in $t deq-$t; do
    "$bin" train sft -m "$tmp/$f.gguf" --method lora --rank 8 --data "$tmp/sft.jsonl" --eval "$tmp/sft.jsonl" \
      -o "$tmp/out-$f" --steps 20 --batch 4 --lr 3e-3 --threads 2 -q --json "$tmp/$f.json" >"$tmp/log" 2>&1
    check "train sft on $f.gguf exits 0" test $? -eq 0
  done
  worst=$(paste -d' ' <(losses "$tmp/out-$t") <(losses "$tmp/out-deq-$t") |
    awk 'NF == 2 { d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > w) w = d; n++ } END { if (n == 20) printf "%.5f", w }')
  check "$t: each of 20 steps' loss within 1% of the dequantized base's (worst $worst)" below "$worst" 0.01
  a=$(eval_loss "$tmp/$t.json") b=$(eval_loss "$tmp/deq-$t.json")
  check "$t: final eval loss $a within 1% of $b" awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 0.01 * b) }'
  first=$(losses "$tmp/out-$t" | head -1) last=$(losses "$tmp/out-$t" | tail -1)
  check "$t: the loss falls ($first -> $last)" below "$last" "$first" 0.8
  got=$("$bin" eval-loss -m "$tmp/$t.gguf" -a "$tmp/out-$t" --data "$tmp/sft.jsonl" --threads 2 2>/dev/null |
    sed -n 's/^eval loss \([0-9.]*\) .*/\1/p')
  check "$t: eval-loss on the quantized GGUF ($got) is the trainer's ($a)" awk -v a="$got" -v b="$a" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-3 * b) }'
done
e2e_exit
