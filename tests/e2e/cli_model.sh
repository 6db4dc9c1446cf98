#!/usr/bin/env bash
# End-to-end: the preft binary on real files. `preft logits` reproduces the
# PyTorch reference for a model given only on the command line; `generate`
# streams tokens and is reproducible under a seed; make-model writes a
# directory that loads again; every command answers --help; bad input gives
# a one-line error and exit code 1, a bad command line exit code 2.
source "$(dirname "$0")/e2e_lib.bash"

for cmd in generate logits bench make-model; do
  check "$cmd --help exits 0" bash -c "'$bin' $cmd --help | grep -q usage"
done
check "no command is a usage error" bash -c "'$bin' 2>/dev/null; test \$? -eq 2"
check "unknown command is a usage error" bash -c "'$bin' frobnicate 2>/dev/null; test \$? -eq 2"

# logits against the float64 reference:
# od prints the float32s, the golden file holds float64s.
model=$data/models/qwen2-bias-tied-bf16
ids=$(cat "$model/golden_ids.txt")
"$bin" logits -m "$model" --ids "$ids" -o "$tmp/logits.f32" 2>"$tmp/err"
check "logits exits 0" test $? -eq 0
check "logits file has T*V float32" test "$(stat -c %s "$tmp/logits.f32")" -eq $((20 * 320 * 4))
rel=$(paste <(od -An -v -t f4 -w4 "$tmp/logits.f32") <(od -An -v -t f8 -w8 "$model/golden_logits.f64") |
  awk '{d=$1-$2; n+=d*d; s+=$2*$2} END {printf "%.3g", sqrt(n/s)}')
check "logits match the PyTorch reference (rel L2 $rel < 1e-4)" below "$rel" 1e-4

# bf16 matmul precision: BF16 weights times BF16-rounded activations (FP32
# sums). Within BF16 rounding of the reference; on a CPU with AVX512_BF16 it
# really is a different product (else the exact path runs unchanged).
"$bin" logits -m "$model" --ids "$ids" --matmul-precision bf16 -o "$tmp/logits-bf16.f32" 2>"$tmp/err"
check "logits --matmul-precision bf16 exits 0" test $? -eq 0
rel=$(paste <(od -An -v -t f4 -w4 "$tmp/logits-bf16.f32") <(od -An -v -t f8 -w8 "$model/golden_logits.f64") |
  awk '{d=$1-$2; n+=d*d; s+=$2*$2} END {printf "%.3g", sqrt(n/s)}')
check "bf16-precision logits near the reference (rel L2 $rel < 2e-2)" below "$rel" 2e-2
if grep -q avx512_bf16 /proc/cpuinfo && [ "${PREFT_CPU:-avx512}" = avx512 ]; then
  check "  and not the exact product on this AVX512_BF16 CPU (rel L2 $rel > 1e-6)" below 1e-6 "$rel"
fi
PREFT_MATMUL_PRECISION=bf16 "$bin" logits -m "$model" --ids "$ids" -o "$tmp/logits-env.f32" 2>/dev/null
check "PREFT_MATMUL_PRECISION=bf16 is the same as the option" cmp -s "$tmp/logits-env.f32" "$tmp/logits-bf16.f32"
"$bin" logits -m "$model" --ids "$ids" --matmul-precision fp8 -o "$tmp/x" 2>"$tmp/err"
check "unknown --matmul-precision exits 2" test $? -eq 2
check "  naming the option" grep -q -- "--matmul-precision" "$tmp/err"
PREFT_MATMUL_PRECISION=fp8 "$bin" logits -m "$model" --ids "$ids" -o "$tmp/x" 2>"$tmp/err"
check "unknown PREFT_MATMUL_PRECISION exits 2" test $? -eq 2

"$bin" logits -m "$model" --ids 1,2,99999 -o "$tmp/x" 2>"$tmp/err"
check "id outside the vocabulary exits 1" test $? -eq 1
check "  and says so" grep -q "outside the vocabulary" "$tmp/err"
check "  and writes nothing" test ! -e "$tmp/x"
"$bin" logits -m "$model" --ids 1,x,3 -o "$tmp/x" 2>/dev/null
check "malformed --ids exits 2" test $? -eq 2
"$bin" logits -m "$tmp/nowhere" --ids 1 -o "$tmp/x" 2>"$tmp/err"
check "missing model dir exits 1 naming it" bash -c "grep -q '$tmp/nowhere' '$tmp/err'"

"$bin" make-model --shape tiny --seed 3 -o "$tmp/tiny" 2>/dev/null
check "make-model writes a loadable directory" test -f "$tmp/tiny/model.safetensors" -a -f "$tmp/tiny/config.json"
out1=$("$bin" generate -m "$tmp/tiny" --ids 1,2,3 -n 12 --temperature 0.9 --seed 5 --ignore-eos)
out2=$("$bin" generate -m "$tmp/tiny" --ids 1,2,3 -n 12 --temperature 0.9 --seed 5 --ignore-eos)
check "generate emits 12 tokens" test "$(echo "$out1" | wc -w)" -eq 12
check "same seed, same tokens" test "$out1" = "$out2"
g1=$("$bin" generate -m "$model" --ids "$ids" -n 1 --temperature 0)
best=$(od -An -v -t f4 -w$((320 * 4)) "$tmp/logits.f32" | tail -n 1 |
  awk '{b=1; for (i=2;i<=NF;i++) if ($i > $b) b=i; print b-1}')
check "greedy token = argmax of the last logits row ($g1 vs $best)" test "$g1" = "$best"
"$bin" generate -m "$model" --ids 1 --top-p 2 2>/dev/null
check "top-p out of range exits 2" test $? -eq 2

# adapters from the command line: the prefill-only golden of a LoRA adapter
case=$data/adapters/lora-qwen2-bf16
ids=$(tr -d ' \n' <"$case/golden.json" | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/')
plen=$(tr -d ' \n' <"$case/golden.json" | sed 's/.*"prompt_len":\([0-9]*\).*/\1/')
"$bin" logits -m "$data/models/qwen2-bias-tied-bf16" --ids "$ids" -a "$case" --prompt-len "$plen" -o "$tmp/ad.f32" 2>"$tmp/err"
check "logits -a exits 0" test $? -eq 0
rel=$(paste <(od -An -v -t f4 -w4 "$tmp/ad.f32") <(od -An -v -t f8 -w8 "$case/golden_prefill.f64") |
  awk '{d=$1-$2; n+=d*d; s+=$2*$2} END {printf "%.3g", sqrt(n/s)}')
check "adapter's default (prefill) mode matches its reference (rel L2 $rel)" below "$rel" 1e-4
"$bin" logits -m "$data/models/llama-gqa-rope3" --ids 1,2 -a "$data/adapters/bad/lora-dora" -o "$tmp/y" 2>"$tmp/err"
check "unsupported adapter exits 1" test $? -eq 1
check "  naming the adapter and the field" grep -q 'lora-dora.*use_dora' "$tmp/err"
"$bin" generate -m "$data/models/llama-gqa-rope3" --ids 1,2 -a "$data/adapters/lora-qv-r4" --adapter-mode sideways 2>/dev/null
check "bad --adapter-mode exits 2" test $? -eq 2
out=$("$bin" generate -m "$data/models/llama-gqa-rope3" --ids 1,2,3 -n 4 -a "$data/adapters/direft-f5l5-shared" --ignore-eos)
check "generate with a ReFT adapter emits 4 tokens" test "$(echo "$out" | wc -w)" -eq 4

# the adapter throughput benchmark runs end to end on a tiny shape
"$bin" bench adapters --shape tiny --requests 4 --prompt-len 8 --output-len 4 --adapters 1,2 --threads 2 \
  --json "$tmp/ba.json" --plot "$tmp/ba.svg" >"$tmp/ba.out" 2>&1
check "bench adapters exits 0" test $? -eq 0
check "  one JSON record per method and count (1 base + 5 x 2)" test "$(grep -c '"method"' "$tmp/ba.json")" -eq 11
check "  and an SVG plot" grep -q "<polyline" "$tmp/ba.svg"
"$bin" bench adapters --shape tiny --methods lora,bogus 2>/dev/null
check "bench adapters with an unknown method exits 2" test $? -eq 2
# more adapters than the requests' KV blocks could hold: the cache is sized
# for them (they used to be evicted: "in-memory adapter was evicted", exit 1)
"$bin" bench adapters --shape tiny --requests 4 --prompt-len 8 --output-len 4 --adapters 16 --rank 64 \
  --methods lora,direft-p --threads 1 --json "$tmp/ba2.json" >"$tmp/ba2.out" 2>&1
check "bench adapters, 16 rank-64 adapters beside 4 short requests: exit 0, two records" \
  test "$?:$(grep -c '"method"' "$tmp/ba2.json")" = "0:2"

# one decode step with a LoRA per sequence, F32 and BF16 adapters: BF16 reads half the bytes
"$bin" bench adapter-step --shape tiny --batch 2 --steps 1 --threads 1 --probe-seconds 0.05 --json "$tmp/as32.json" >/dev/null 2>&1
check "bench adapter-step exits 0" test $? -eq 0
"$bin" bench adapter-step --shape tiny --batch 2 --steps 1 --threads 1 --probe-seconds 0.05 --adapter-dtype bf16 \
  --json "$tmp/as16.json" >/dev/null 2>&1
check "  --adapter-dtype bf16: exit 0, recorded, half the adapter bytes per step" jq -e --slurpfile f "$tmp/as32.json" \
  '.adapter_dtype == "BF16" and (.results[0].adapter_mb_per_step * 2 - $f[0].results[0].adapter_mb_per_step | fabs) < 1e-6' \
  "$tmp/as16.json"
"$bin" bench adapter-step --shape tiny --batch 2 --steps 1 --threads 1 --probe-seconds 0.05 --reps 3 --json "$tmp/as3.json" >/dev/null 2>&1
# (the JSON's rounds are in ms and printed to 15 digits: compared within 1e-9)
check "  --reps 3: the overhead is the median of the rounds' own, inside their range" jq -e \
  '.results[0] | (.rounds_ms | map(.[1] / .[0] - 1) | sort) as $o
   | (.lora_overhead - $o[1] | fabs) < 1e-9 and (.lora_overhead_min - $o[0] | fabs) < 1e-9
     and (.lora_overhead_max - $o[2] | fabs) < 1e-9' \
  "$tmp/as3.json"
"$bin" bench adapter-step --shape tiny --adapter-dtype q8 2>"$tmp/asbad"
check "  --adapter-dtype q8 exits 2 and names the option" \
  bash -c "test $? -eq 2 && grep -q -- '--adapter-dtype expects f32, f16 or bf16' '$tmp/asbad'"

# the embedded default model loads and writes text with its own tokenizer
dm=$data/../../assets/default-model
out=$("$bin" generate -m "$dm" -p "Fellow-Citizens of the Senate" -n 12 --temperature 0 --ignore-eos)
check "the default model generates text" test "$(echo "$out" | wc -w)" -ge 3

exit $((fails > 0))
