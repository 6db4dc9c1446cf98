#!/usr/bin/env bash
# Pretrains preft's own small BERT (issue 16) as a masked language model on
# the State of the Union training split and Moby-Dick, then fine-tunes it on
# the multitask data: the full run, sized for about 90 minutes on a quiet
# 2-core machine (an estimate from the short run's measured speed; see
# assets/bert-mini-sotu/README.md). A cut run continues where its last
# checkpoint left it: run the script again.
#
#   scripts/train-small-bert.sh [OUT]        (default out/bert-small-sotu)
#
# Environment: THREADS (default: all cores), STEPS (MLM steps, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/bert-small-sotu}
bin=${PREFT_BIN:-build/preft}
threads=${THREADS:-0}
steps=${STEPS:-600}
bash scripts/fetch-sotu.sh >/dev/null
bash scripts/fetch-moby-dick.sh >/dev/null
targs=()
[ "$threads" != 0 ] && targs=(--threads "$threads")
resume=()
[ -f "$out/mlm/checkpoint.bin" ] && resume=(--resume)
# L4 D256 H4 F1024, 128 positions, vocabulary 8000: about 5.6M parameters
"$bin" train mlm -o "$out/mlm" --layers 4 --dim 256 --heads 4 --ffn 1024 --max-len 128 \
  --vocab-size 8000 --batch 32 --steps "$steps" --lr 5e-4 --warmup 0.06 --whole-word \
  --eval-every 100 --eval-seqs 256 --checkpoint-every 25 "${resume[@]}" "${targs[@]}"
"$bin" train multitask -m "$out/mlm" -o "$out/multitask" --steps 600 --batch 32 --lr 2e-4 \
  --max-len 128 --eval-every 200 "${targs[@]}"
"$bin" eval multitask -m "$out/multitask" --json "$out/multitask/eval.json" "${targs[@]}"
