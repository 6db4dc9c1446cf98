#!/usr/bin/env bash
# Pretrains preft's own small BERT (issue 16; assets/bert-small-sotu) as a
# masked language model on the training side of the State of the Union
# split and Moby-Dick: 4 layers of width 256, 2600 steps of 32 sequences of
# at most 128 tokens (about 5 passes over the text), which took 96
# minutes on the 2-core machine with light other load (the model card gives the measured
# time). A cut run continues where its last checkpoint left it: run the
# script again. The fine-tuning study on the result is
# scripts/bert-results.sh OUT/mlm (docs/RESULTS.md).
#
#   scripts/train-small-bert.sh [OUT]        (default out/bert-small-sotu)
#
# Environment: THREADS (default: all cores), STEPS (MLM steps, default 2600).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/bert-small-sotu}
bin=${PREFT_BIN:-build/preft}
threads=${THREADS:-0}
steps=${STEPS:-2600}
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
echo "pretrained: $out/mlm (the study: scripts/bert-results.sh $out/mlm)"
