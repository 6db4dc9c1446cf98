#!/usr/bin/env bash
# End-to-end: a GGUF file as the model (-m) and as the tokenizer
# (--tokenizer) of the commands that run one. A model with the trained
# tokenizer is converted to GGUF; tokenize, generate, logits and perplexity
# on the GGUF must give what they give on the Hugging Face directory (the
# logits bit for bit: test_model_gguf checks every reference model), and
# bench model must run on it. Quantized GGUFs (convert --type) give the
# logits of the same quantization at load (--quantize). A GGUF without a
# vocabulary still serves as a model with --tokenizer; a corrupt one fails
# with exit 1 and a reason. perplexity --halves scores llama-perplexity's
# way (whole windows, their second halves).
source "$(dirname "$0")/e2e_lib.bash"
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }

"$bin" make-model --shape tiny --vocab 1024 -o "$tmp/m" 2>/dev/null
cp "$data/tokenizer/trained/tokenizer.json" "$tmp/m/"
"$bin" convert -m "$tmp/m" --to gguf -o "$tmp/m.gguf" 2>/dev/null
"$bin" convert -m "$tmp/m" --to gguf -o "$tmp/novocab.gguf" --no-tokenizer 2>/dev/null
check "converted with and without a vocabulary" test -s "$tmp/m.gguf" -a -s "$tmp/novocab.gguf"

text="The quick brown fox, 12345 times: it's done."
"$bin" tokenize --tokenizer "$tmp/m" --text "$text" >"$tmp/t1"
"$bin" tokenize --tokenizer "$tmp/m.gguf" --text "$text" >"$tmp/t2"
check "tokenize: the GGUF's tokenizer gives the tokenizer.json's ids" cmp -s "$tmp/t1" "$tmp/t2"
check "  (and some ids)" grep -q '\[[0-9]' "$tmp/t1"

gen() { "$bin" generate "$@" -p "$text" -n 8 --temperature 0.8 --seed 3 --ignore-eos --print-ids --threads 2 2>/dev/null; }
gen -m "$tmp/m" >"$tmp/g1"
gen -m "$tmp/m.gguf" >"$tmp/g2"
gen -m "$tmp/novocab.gguf" --tokenizer "$tmp/m.gguf" >"$tmp/g3"
check "generate -m GGUF: the same tokens" cmp -s "$tmp/g1" "$tmp/g2"
check "  and a vocabulary-less GGUF with --tokenizer GGUF too" cmp -s "$tmp/g1" "$tmp/g3"
check "  (8 ids)" test "$(tr -cs '0-9' '\n' <"$tmp/g1" | grep -c .)" -ge 8

"$bin" logits -m "$tmp/m" --ids 1,2,3,4,5 -o "$tmp/l1" --threads 2 2>/dev/null
"$bin" logits -m "$tmp/m.gguf" --ids 1,2,3,4,5 -o "$tmp/l2" --threads 2 2>/dev/null
check "logits -m GGUF: bit for bit" cmp -s "$tmp/l1" "$tmp/l2"

head -c 3000 "$data/tokenizer/train_text.txt" >"$tmp/text.txt"
p1=$("$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" --ctx 64 --threads 2 2>/dev/null | grep -o 'perplexity [0-9.e+]*' | cut -d' ' -f2)
p2=$("$bin" perplexity -m "$tmp/m.gguf" -f "$tmp/text.txt" --ctx 64 --threads 2 2>/dev/null | grep -o 'perplexity [0-9.e+]*' | cut -d' ' -f2)
check "perplexity -m GGUF: the same ($p1, $p2)" test -n "$p1" -a "$p1" = "$p2"
# --halves (llama-perplexity's protocol): whole windows of 64, 31 tokens scored in each
n=$("$bin" tokenize --tokenizer "$tmp/m.gguf" --text "$(cat "$tmp/text.txt")" 2>/dev/null | tr -cs '0-9' '\n' | grep -c .)
h=$("$bin" perplexity -m "$tmp/m.gguf" -f "$tmp/text.txt" --ctx 64 --halves --threads 2 2>/dev/null | sed -n 's/^tokens //p')
check "perplexity --halves scores 31 of each of the $((n / 64)) whole windows ($h)" test -n "$h" -a "$h" = "$((n / 64 * 31))"
check "perplexity --halves --stride exits 2" test "$(rc "$bin" perplexity -m "$tmp/m.gguf" -f "$tmp/text.txt" --ctx 64 --halves --stride 8)" -eq 2

check "bench model -m GGUF runs" test "$(rc "$bin" bench model -m "$tmp/m.gguf" --batch 1,2 --prompt-len 8 --decode-steps 2 --threads 2 --probe-seconds 0.05)" -eq 0
check "  and reports decode" grep -qi "decode" "$tmp/out"
# the decode statistic: --stat mean divides by every step's time (as
# llama-batched-bench), --stat median by the middle step; all steps are kept
"$bin" bench model -m "$tmp/m" --batch 2 --prompt-len 8 --decode-steps 5 --threads 1 --probe-seconds 0.05 --json "$tmp/bm.json" >/dev/null 2>&1
check "bench model --stat mean (default): step time is the mean of the 5 kept steps" jq -e '.results[0] |
  (.decode_step_ms_all | length) == 5 and ((.decode_step_ms_all | add / 5) - .decode_step_ms | fabs) < 1e-9 * .decode_step_ms' "$tmp/bm.json"
"$bin" bench model -m "$tmp/m" --batch 2 --prompt-len 8 --decode-steps 5 --threads 1 --probe-seconds 0.05 --stat median --json "$tmp/bmm.json" >/dev/null 2>&1
check "bench model --stat median: step time is the middle step" jq -e '.results[0] |
  (.decode_step_ms_all | sort | .[2]) == .decode_step_ms' "$tmp/bmm.json"
# decode against bandwidth probes on either side of each batch size's run:
# the first row's probe before is the run's start probe, a row's after is
# the next row's before, and the fraction is against their mean
"$bin" bench model -m "$tmp/m" --batch 1,2 --prompt-len 8 --decode-steps 3 --threads 1 --probe-seconds 0.05 --json "$tmp/bw.json" >/dev/null 2>&1
check "bench model: decode against the mean of the probes around it" jq -e '
  .results as $r | $r[0].bandwidth_gbs_before == .bandwidth_gbs and
  $r[1].bandwidth_gbs_before == $r[0].bandwidth_gbs_after and
  all($r[]; ((.bandwidth_gbs_before + .bandwidth_gbs_after) / 2 - .bandwidth_gbs_row | fabs) < 1e-9 * .bandwidth_gbs_row
    and (.decode_gbs / .bandwidth_gbs_row - .decode_fraction_of_bandwidth | fabs) < 1e-9)' "$tmp/bw.json"
check "bench model --stat other exits 2" test "$(rc "$bin" bench model -m "$tmp/m" --stat mode)" -eq 2
check "bench model --probe-seconds 0 exits 2" test "$(rc "$bin" bench model -m "$tmp/m" --probe-seconds 0)" -eq 2

# quantized: convert --type T and --quantize T at load give the same logits
"$bin" make-model --shape smollm-135m --layers 1 --vocab 1024 -o "$tmp/s" 2>/dev/null
cp "$data/tokenizer/trained/tokenizer.json" "$tmp/s/"
for t in q8_0 q4_0 q4_k; do
  check "convert --type $t exits 0" test "$(rc "$bin" convert -m "$tmp/s" --to gguf --type $t -o "$tmp/s_$t.gguf")" -eq 0
  "$bin" logits -m "$tmp/s_$t.gguf" --ids 1,2,3,4,5 -o "$tmp/q1" --threads 2 2>/dev/null
  "$bin" logits -m "$tmp/s" --quantize $t --ids 1,2,3,4,5 -o "$tmp/q2" --threads 2 2>/dev/null
  check "  logits of the $t GGUF = logits with --quantize $t" cmp -s "$tmp/q1" "$tmp/q2"
done
"$bin" convert -m "$tmp/s" --to gguf -o "$tmp/s.gguf" 2>/dev/null
check "convert -m GGUF --type q8_0 (re-typing a GGUF) exits 0" test "$(rc "$bin" convert -m "$tmp/s.gguf" --to gguf --type q8_0 --name s -o "$tmp/s_re.gguf")" -eq 0
check "  and writes the bytes converting the directory does" cmp -s "$tmp/s_re.gguf" "$tmp/s_q8_0.gguf"
check "  and q4_0 is under a third of the F32 size" test "$(stat -c %s "$tmp/s_q4_0.gguf")" -lt "$(($(du -b "$tmp/s/model.safetensors" | cut -f1) / 3))"
check "generate --quantize q8_0 runs" test "$(rc "$bin" generate -m "$tmp/s" --quantize q8_0 -p "$text" -n 4 --threads 2)" -eq 0
check "bench model --quantize q4_0 runs" test "$(rc "$bin" bench model -m "$tmp/s" --quantize q4_0 --batch 1 --prompt-len 8 --decode-steps 2 --threads 2 --probe-seconds 0.05)" -eq 0
check "  and reports Q4_0 weights" grep -q "Q4_0" "$tmp/out"
check "--quantize f16 exits 2" test "$(rc "$bin" logits -m "$tmp/s" --quantize f16 --ids 1 -o "$tmp/x")" -eq 2
check "--quantize q8_0 of rows that are not whole blocks exits 1" test "$(rc "$bin" logits -m "$tmp/m" --quantize q8_0 --ids 1 -o "$tmp/x")" -eq 1
check "  naming the matrix" grep -q "down_proj" "$tmp/err"

check "generate -p on a vocabulary-less GGUF exits 1" test "$(rc "$bin" generate -m "$tmp/novocab.gguf" -p hi -n 1)" -eq 1
head -c 5000 "$tmp/m.gguf" >"$tmp/cut.gguf"
check "a truncated GGUF exits 1" test "$(rc "$bin" logits -m "$tmp/cut.gguf" --ids 1,2 -o "$tmp/x")" -eq 1
check "  naming the file" grep -q "cut.gguf" "$tmp/err"
e2e_exit
