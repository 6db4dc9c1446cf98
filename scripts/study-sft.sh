#!/usr/bin/env bash
# The PreFT SFT study (issue 13): for each method (LoRA, LoRA-P, DiReFT,
# DiReFT-P, LoReFT-P; -P = prefill-only) and rank (4, 16, 64), trains the 43
# presidents' adapters (scripts/train-presidents.sh: training speeches only)
# and evaluates each on its president's held-out speech, beside the base
# model's loss on the same examples; then measures each method's serving
# throughput with `preft bench adapters` on the same model with 43 adapters.
# Writes OUT/results.tsv (one row per method and rank: mean held-out loss over
# presidents, its standard deviation, min and max, the base model's mean, the
# mean change), OUT/results.json (the same, with the per-president losses
# and the throughput), OUT/throughput.tsv, and the plots OUT/gain-vs-rank.svg (the
# base model's loss less the adapters') and OUT/throughput-vs-rank.svg. A run that is cut resumes: finished
# (method, rank) cells are kept (delete OUT to start again).
# The full study takes hours on a 2-core machine (15 cells x 43 adapters);
# --quick (minutes) trains 3 presidents at rank 16 for 8 steps and runs a
# short throughput benchmark: a check that the pipeline works, not a result.
# --cells "LoRA-P,DiReFT" trains only those methods' cells (two runs with
# disjoint cells and --threads 1 can share one OUT, one core each); the
# tables and plots are written once every cell of --ranks is done (not with
# --train-only, which stops after training: the throughput benchmark then
# waits for a run on a quiet machine). A finished cell keeps its results.tsv
# and train.json, not the adapters.
# Usage: scripts/study-sft.sh [--quick] [-m MODEL] [--out DIR] [--steps N]
#          [--ranks "4 16 64"] [--cells LABELS] [--train-only] [--build DIR]
#          [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
quick=0 model=assets/default-model out= steps= ranks= build=build threads= only_cells= train_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    -m) model=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --cells) only_cells=$2; shift 2 ;;
    --train-only) train_only=1; shift ;;
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "study-sft: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
only= bench=(--requests 86 --prompt-len 96 --output-len 32 --reps 2)
if [ $quick = 1 ]; then
  out=${out:-study-sft-quick}
  steps=${steps:-8} ranks=${ranks:-16}
  only="George Washington,Abraham Lincoln,Barack Obama"
  bench=(--requests 43 --prompt-len 64 --output-len 16 --reps 1)
else
  out=${out:-study-sft}
  steps=${steps:-40} ranks=${ranks:-4 16 64}
fi
preft=$build/preft
[ -x "$preft" ] || { echo "study-sft: $preft is missing: run scripts/build.sh $build" >&2; exit 1; }
# METHOD:MODE:LABEL
cells=(lora:all:LoRA lora:prefill:LoRA-P direft:all:DiReFT direft:prefill:DiReFT-P loreft:prefill:LoReFT-P)
for c in ${only_cells//,/ }; do
  printf '%s\n' "${cells[@]}" | cut -d: -f3 | grep -qx "$c" ||
    { echo "study-sft: no cell '$c' (LoRA, LoRA-P, DiReFT, DiReFT-P, LoReFT-P)" >&2; exit 2; }
done
mkdir -p "$out/runs"
[ -d "$out/data" ] || {
  rm -rf "$out/data.tmp.$$"
  bash scripts/make-president-data.sh "$out/data.tmp.$$" ${only:+--only "$only"}
  mv -T "$out/data.tmp.$$" "$out/data" 2>/dev/null || rm -rf "$out/data.tmp.$$" # a parallel run made it first
}
n_pres=$(ls "$out/data" | wc -l)
echo "study-sft: $n_pres presidents, ranks $ranks, $steps steps, model $model -> $out" >&2
for rank in $ranks; do
  for cell in "${cells[@]}"; do
    IFS=: read -r method mode label <<<"$cell"
    if [ -n "$only_cells" ] && ! tr ',' '\n' <<<"$only_cells" | grep -qx "$label"; then continue; fi
    dir=$out/runs/$label-r$rank
    if [ -f "$dir/results.tsv" ]; then echo "study-sft: $label rank $rank: done before, kept" >&2; continue; fi
    echo "study-sft: $label rank $rank ($(date -u +%H:%M:%S))" >&2
    bash scripts/train-presidents.sh "$method" "$mode" "$rank" "$dir.tmp" -m "$model" --data "$out/data" \
      --base-losses "$out/base.tsv" --steps "$steps" --build "$build" ${threads:+--threads "$threads"}
    # the study keeps the numbers, not the adapters or their logs
    find "$dir.tmp" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  done
done
[ $train_only = 0 ] || exit 0
for rank in $ranks; do
  for cell in "${cells[@]}"; do
    [ -f "$out/runs/$(cut -d: -f3 <<<"$cell")-r$rank/results.tsv" ] ||
      { echo "study-sft: cells remain (another run, or run again): tables later" >&2; exit 0; }
  done
done

# ---- throughput: preft bench adapters with 43 adapters, each method, each rank ----------------------
for rank in $ranks; do
  j=$out/bench-r$rank.json
  [ -f "$j" ] && continue
  echo "study-sft: throughput at rank $rank ($(date -u +%H:%M:%S))" >&2
  "$preft" bench adapters -m "$model" --methods base,lora,lora-p,direft,direft-p,loreft-p --adapters 43 \
    --rank "$rank" "${bench[@]}" ${threads:+--threads "$threads"} --json "$j.tmp" >"$out/bench-r$rank.txt"
  mv "$j.tmp" "$j"
done
# METHOD RANK TOKENS_PER_S (the bench's method names: lora-p, direft-p, ...)
for rank in $ranks; do
  jq -r --arg r "$rank" '.[] | [.method, $r, .tokens_per_s] | @tsv' \
    "$out/bench-r$rank.json"
done >"$out/throughput.tsv"

# ---- tables and plots ---------------------------------------------------------------------------
{
  printf 'method\trank\tpresidents\tmean_eval_loss\tsd\tmin\tmax\tmean_base_loss\tmean_change\n'
  for rank in $ranks; do
    for cell in "${cells[@]}"; do
      IFS=: read -r _ _ label <<<"$cell"
      awk -F'\t' -v l="$label" -v r="$rank" 'NR > 1 { x = $3; s += x; ss += x * x; b += $4; n++
          if (n == 1 || x < lo) lo = x; if (n == 1 || x > hi) hi = x }
        END { m = s / n; v = ss / n - m * m; if (v < 0) v = 0
              printf "%s\t%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%+.4f\n", l, r, n, m, sqrt(v), lo, hi, b / n, m - b / n }' \
        "$out/runs/$label-r$rank/results.tsv"
    done
  done
} >"$out/results.tsv"
jq -Rn '
  [inputs | split("\t")] as $rows | $rows[0] as $h |
  [$rows[1:][] | [$h, .] | transpose | map({(.[0]): (.[1] | tonumber? // .)}) | add]' "$out/results.tsv" >"$out/summary.json.tmp"
per=$(for d in "$out"/runs/*/; do
  jq -Rn --arg cell "$(basename "$d")" '[inputs | split("\t")] as $r |
    {($cell): [$r[1:][] | {name: .[0], eval_loss: (.[2] | tonumber), base_eval_loss: (.[3] | tonumber)}]}' "$d/results.tsv"
done | jq -s add)
thr=$(jq -Rn '[inputs | split("\t") | {method: .[0], rank: (.[1] | tonumber), tokens_per_s: (.[2] | tonumber? // null)}]' "$out/throughput.tsv")
jq --argjson per "$per" --argjson thr "$thr" --arg model "$model" --argjson steps "$steps" --argjson quick $quick \
  '{model: $model, steps: $steps, quick: ($quick == 1), cells: ., per_president: $per, throughput: $thr,
    loss: "mean cross-entropy per held-out completion token, natural log"}' "$out/summary.json.tmp" >"$out/results.json.tmp"
rm -f "$out/summary.json.tmp"
mv "$out/results.json.tmp" "$out/results.json"
# the gain over the base model (its mean loss less the adapters'), one line per method
awk -F'\t' 'NR > 1 { print $1, $2, -$9 }' "$out/results.tsv" |
  awk -v title="Held-out loss gained over the base model (mean over presidents)" -v xlab="rank" -v ylab="base loss - adapter loss (nats)" \
    -f scripts/plot-lines.awk >"$out/gain-vs-rank.svg"
awk -F'\t' '{ print $1, $2, $3 }' "$out/throughput.tsv" |
  awk -v title="Serving throughput, 43 adapters (preft bench adapters)" -v xlab="rank" -v ylab="tokens/s" \
    -f scripts/plot-lines.awk >"$out/throughput-vs-rank.svg"
column -t -s $'\t' "$out/results.tsv"
echo
column -t -s $'\t' "$out/throughput.tsv"
echo "study-sft: wrote $out/results.tsv, $out/results.json, $out/throughput.tsv and two plots" >&2
