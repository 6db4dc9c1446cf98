#!/usr/bin/env bash
# The multitask study of docs/RESULTS.md ("BERT multitask") on a small BERT:
# baseline cross-encoder, +SMART (with the Bregman proximal term), the
# bi-encoder against the cross-encoder on the pair tasks, and early exit
# (exit heads trained jointly) at several thresholds, with the mean layers
# used and the measured speedup. Prints the tables' rows; every run's
# metrics.json and eval JSON stay under OUT.
#
#   scripts/bert-results.sh MODEL [OUT]
#
# Environment: STEPS (default 300), BATCH (16), MAXLEN (64), LR (peak learning
# rate, default 3e-4: 1e-3 left SST and Quora at the majority class), DEVLIMIT (dev
# rows per task, default 0: all), THREADS (1 per run; the runs go in parallel),
# EVALDATA (the data directory whose dev files the final evaluations read;
# default data/multitask), RULES (the early-exit rules), PHASES (which of
# "train eval exit" to run, default all three: the training runs need no
# quiet machine, the timed early-exit evaluations do).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/bert-results.sh MODEL [OUT]}
out=${2:-out/bert-results}
bin=${PREFT_BIN:-build/preft}
steps=${STEPS:-300}
batch=${BATCH:-16}
maxlen=${MAXLEN:-64}
lr=${LR:-3e-4}
devlimit=${DEVLIMIT:-0}
threads=${THREADS:-1}
evaldata=${EVALDATA:-data/multitask}
phases=" ${PHASES:-train eval exit} "
mkdir -p "$out"
if [[ $phases == *" train "* ]]; then
common=(train multitask -m "$model" --steps "$steps" --batch "$batch" --max-len "$maxlen" --lr "$lr"
  --dev-limit "$devlimit" --threads "$threads" --quiet)
"$bin" "${common[@]}" -o "$out/baseline" >"$out/baseline.log" 2>&1 &
"$bin" "${common[@]}" -o "$out/smart" --smart-lambda 1 --smart-sigma 1e-5 --smart-eta 1e-3 --smart-eps 1e-5 \
  --smart-steps 1 --bregman-mu 1 --bregman-beta 0.99 >"$out/smart.log" 2>&1 &
"$bin" "${common[@]}" -o "$out/siamese" --arch siamese --pooling mean >"$out/siamese.log" 2>&1 &
"$bin" "${common[@]}" -o "$out/exits" --early-exit joint >"$out/exits.log" 2>&1 &
wait
fi
if [[ $phases == *" eval "* ]]; then
for r in baseline smart siamese exits; do
  "$bin" eval multitask -m "$out/$r" --data "$evaldata" --dev-limit "$devlimit" --max-len "$maxlen" --batch 32 \
    --json "$out/$r/eval.json" --threads "$threads" >/dev/null
  jq -r --arg r "$r" '.dev | "| \($r) | \(.sst_accuracy) | \(.para_accuracy) | \(.sts_pearson) | \(.score) |"' \
    "$out/$r/eval.json"
done
fi
# early exit: the full model and each rule through the inference path, timed in the same process
if [[ $phases == *" exit "* ]]; then
for rule in ${RULES:-entropy:0.6 entropy:0.68 entropy:1.2 entropy:1.5 patience:1 patience:1:0.5}; do
  f=$out/exit-${rule//:/_}.json
  "$bin" eval multitask -m "$out/exits" --data "$evaldata" --dev-limit "$devlimit" --max-len "$maxlen" --batch 32 \
    --early-exit "$rule" --json "$f" --threads "$threads" >/dev/null
  jq -r --arg r "$rule" '"| \($r) | \(.dev.score) | \(.dev_full_model.score) | \(.mean_layers.sst) / \(.mean_layers.para) / \(.mean_layers.sts) of \(.layers) | \(.seconds_full) / \(.seconds_early_exit) | \(.speedup) |"' "$f"
done
fi
