#!/usr/bin/env bash
# Trains one adapter per president (43) with `preft train sft --adapters-from`
# on the data of scripts/make-president-data.sh (training speeches only), and
# evaluates each on its president's held-out speech beside the base model.
# Usage: scripts/train-presidents.sh METHOD MODE RANK OUT [options]
#   METHOD   lora | direft | loreft
#   MODE     all | prefill
#   RANK     adapter rank
#   OUT      receives OUT/<name>/ (the adapter, train_log.csv, loss.svg),
#            OUT/results.tsv (name, train loss, held-out loss, the base
#            model's held-out loss, steps, tokens, seconds) and OUT/train.json
# Options:
#   -m DIR          base model (default assets/default-model)
#   --data DIR      president data (default: made by make-president-data.sh)
#   --only "A,B"    these presidents only (names as in data/sotu/split.tsv)
#   --steps N       optimizer steps per adapter (default 40)
#   --batch B       examples per step (default 4)
#   --lr X          peak learning rate (default 4e-3)
#   --base-losses F reuse the base model's held-out losses from F (name<TAB>loss;
#                   written there when F does not exist yet; while F.pending
#                   exists, another job is writing F: waits for it)
#   --threads N     worker threads (default: all cores)
#   --build DIR     where preft was built (default build)
# Adapters are kept small: LoRA on q_proj and v_proj of every layer, ReFT one
# intervention per layer at every position (the mode decides whether
# generated tokens are among them); FP32 weights. Deterministic for a given thread count (seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 4 ] || { usage >&2; exit 2; }
method=$1 mode=$2 rank=$3 out=$4
shift 4
model=assets/default-model data= only= steps=40 batch=4 lr= base_losses= threads= build=build
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --base-losses) base_losses=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "train-presidents: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$method" in
  lora) margs=(--method lora --targets q,v) ;;
  # every position (one intervention): in mode all the prompt's and every
  # generated token's, in mode prefill the prompt's (fA+lB positions would
  # be prompt-only in both modes, making all and prefill the same adapter)
  direft | loreft) margs=(--method "$method" --positions all) ;;
  *) echo "train-presidents: METHOD is lora, direft or loreft, not '$method'" >&2; exit 2 ;;
esac
# 4e-3: on the old 4.2M default model, 40 steps, two presidents, LoRA-P's
# held-out loss fell 0.033 below the base's at 4e-3 and 0.016 at 1e-3
lr=${lr:-4e-3}
case "$mode" in all | prefill) ;; *) echo "train-presidents: MODE is all or prefill, not '$mode'" >&2; exit 2 ;; esac
[[ $rank =~ ^[1-9][0-9]*$ ]] || { echo "train-presidents: RANK '$rank' is not a positive integer" >&2; exit 2; }
preft=$build/preft
[ -x "$preft" ] || { echo "train-presidents: $preft is missing: run scripts/build.sh $build" >&2; exit 1; }
[ -f "$model/config.json" ] || { echo "train-presidents: no model at $model" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$data" ]; then
  data=$work/data
  bash scripts/make-president-data.sh "$data" ${only:+--only "$only"}
elif [ -n "$only" ]; then # the named presidents' folders of DATA
  mkdir -p "$work/data"
  while IFS= read -r who; do
    slug=$(tr 'A-Z' 'a-z' <<<"$who" | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
    [ -d "$data/$slug" ] || { echo "train-presidents: no $data/$slug" >&2; exit 1; }
    ln -s "$(cd "$data/$slug" && pwd)" "$work/data/$slug"
  done < <(tr ',' '\n' <<<"$only")
  data=$work/data
fi
names=$(cd "$data" && ls)
n=$(wc -w <<<"$names")
echo "train-presidents: $n adapters, $method rank $rank mode $mode, $steps steps of $batch, lr $lr, base $model" >&2
mkdir -p "$out"
"$preft" train sft -m "$model" "${margs[@]}" --mode "$mode" --rank "$rank" --adapters-from "$data" \
  -o "$work/out" --steps "$steps" --batch "$batch" --lr "$lr" --warmup $((steps / 10)) --seed 1 ${threads:+--threads "$threads"} \
  --json "$work/train.json" -q
# the base model's held-out loss, once per president (forward passes only)
[ -n "$base_losses" ] || base_losses=$work/base.tsv
# another job is writing it (train-president-assets.sh): wait for it
for _ in $(seq 1800); do [ -f "$base_losses.pending" ] && [ ! -f "$base_losses" ] || break; sleep 1; done
if [ ! -f "$base_losses" ]; then
  for name in $names; do
    "$preft" eval-loss -m "$model" --data "$data/$name/eval.jsonl" ${threads:+--threads "$threads"} --json "$work/base.json" >/dev/null
    printf '%s\t%s\n' "$name" "$(jq .eval_loss "$work/base.json")"
  done >"$work/base.tsv.tmp"
  mv "$work/base.tsv.tmp" "$base_losses"
fi
for name in $names; do
  rm -f "$work/out/$name/checkpoint.bin" # optimizer state: 7x the adapter, not needed to serve
  rm -rf "${out:?}/$name"
  mv "$work/out/$name" "$out/$name"
done
cp "$work/train.json" "$out/train.json.tmp" && mv "$out/train.json.tmp" "$out/train.json"
{
  printf 'name\ttrain_loss\teval_loss\tbase_eval_loss\tsteps\ttrain_tokens\tseconds\n'
  jq -r '.adapters[] | [.name, .train_loss, .eval_loss, .steps, .train_tokens, .seconds] | @tsv' "$work/train.json" |
    awk -F'\t' -v OFS='\t' 'NR == FNR { base[$1] = $2; next }
      { if (!($1 in base)) { print "train-presidents: no base loss for " $1 > "/dev/stderr"; exit 1 }
        printf "%s\t%.4f\t%.4f\t%.4f\t%d\t%d\t%.1f\n", $1, $2, $3, base[$1], $4, $5, $6 }' "$base_losses" -
} >"$out/results.tsv.tmp"
mv "$out/results.tsv.tmp" "$out/results.tsv"
awk -F'\t' 'NR > 1 { a += $3; b += $4; k++ } END { if (k) printf "train-presidents: mean held-out loss %.4f (base %.4f) over %d presidents\n", a / k, b / k, k }' \
  "$out/results.tsv" >&2
