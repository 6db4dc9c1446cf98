#!/usr/bin/env bash
# End-to-end: `preft train pretrain --init DIR` starts from DIR's weights (a
# second stage of training, as scripts/train-task-model.sh uses it): on
# text the model knows, the first step's loss is the model's (about 1.5 nats
# per token for assets/task-model on count text, 5.6 from random weights)
# and with lr 0 the saved weights are the model's; a config of another shape
# fails naming both.
source "$(dirname "$0")/e2e_lib.bash"
model=${PREFT_TASK_MODEL:-$data/../../assets/task-model}
"$bin" rl-data --task count:4 --n 400 --seed 3 --with-answers >"$tmp/text.txt"
run() {
  "$bin" train pretrain --config "$1" --tokenizer "$model" --data "$tmp/text.txt" -o "$2" --steps 2 --batch 4 \
    --seq 64 --lr 0 --warmup 0 --eval-frac 0.1 --threads 1 -q "${@:3}" >/dev/null 2>"$tmp/err"
}
run "$model/config.json" "$tmp/init" --init "$model"
loss=$(awk -F, 'NR == 2 { print $4 }' "$tmp/init/train_log.csv")
echo "  first step's loss from the model's weights: $loss"
check "the first step's loss is the model's, not a random one's" below "$loss" 2.0
check "lr 0 keeps the weights" cmp -s <(tail -c 100000 "$model/model.safetensors") \
  <(tail -c 100000 "$tmp/init/model.safetensors")
run "$model/config.json" "$tmp/fresh"
check "  (from random weights the loss is high)" below 4.0 "$(awk -F, 'NR == 2 { print $4 }' "$tmp/fresh/train_log.csv")"
jq '.num_hidden_layers += 1' "$model/config.json" >"$tmp/other.json"
status=0
run "$tmp/other.json" "$tmp/x" --init "$model" || status=$?
check "another shape exits 1" test "$status" -eq 1
check "  naming the model and the config" grep -q "init .*shape is not that of .*other.json" "$tmp/err"
e2e_exit
