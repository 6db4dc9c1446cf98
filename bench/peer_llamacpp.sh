#!/usr/bin/env bash
# peer_llamacpp.sh - preft beside llama.cpp on this machine: the same model,
# dtype, threads, batch sizes and prompt/output lengths, one table of ratios.
#
#   bench/peer_llamacpp.sh LLAMA_CPP_SRC_DIR [options]
#
# LLAMA_CPP_SRC_DIR is a llama.cpp source checkout of your own (never
# vendored, never committed here). The script
#   1. builds llama.cpp's CPU tools with CMake into --llama-build (default
#      LLAMA_CPP_SRC_DIR/build-preft-peer) and bench/llamacpp_peer.c (a small
#      driver of llama.cpp's C API) against it;
#   2. checks the export: every reference model and LoRA adapter under
#      tests/data is converted with `preft convert --to gguf` and llama.cpp's
#      logits are compared with `preft logits` (F32 tensors and an F32 KV
#      cache: agreement to rounding; stored types with llama.cpp's defaults:
#      same greedy tokens); with the fetched tokenizers, llama.cpp's token
#      ids for a sample text are compared with `preft tokenize`;
#   3. benchmarks, for each dtype: a random-weight model of --shape made by
#      `preft make-model`, converted to GGUF (a quantized dtype, q8_0 q4_0
#      q4_k ...: the BF16 model converted with `preft convert --type`, and
#      preft runs that same GGUF file: `-m FILE.gguf`);
#        base prefill/decode at each batch size B: `preft bench model` vs
#          llama-batched-bench (B sequences, P cached prompt tokens, O steps);
#        batch-1 reference: llama-bench pp P / tg O;
#        N adapters: R requests round-robin over N random rank-R LoRAs
#          (`preft make-adapter`, converted): `preft bench adapters` (one
#          mixed batch) vs llamacpp_peer adapters (llama.cpp applies one
#          adapter set per batch, so each adapter's requests form a batch and
#          the adapters take turns);
#        read bandwidth: `preft bench model`'s probes just before and just
#          after its batch-1 decode (their mean; the row shows it), measured
#          in the same run; batch-1 decode of each as a fraction of it (bytes of
#          weights per token from preft's run, the same file for both);
#        perplexity (with --tokenizer and --ppl-text): `preft perplexity
#          --halves --ctx C` vs `llama-perplexity -c C -b C` on the same GGUF
#          and text (the same protocol: whole windows, second halves scored);
#          with --ppl-model DIR also a trained model converted to the dtype;
#   4. prints one table; preft / llama.cpp ratios above 1 favour preft.
#      Each cell is the median of its --reps runs with their range (min-max)
#      beside it, and the load average (1 minute) at the start of the runs;
#      every run's raw numbers stay in --out.
#
# Both sides are measured the same way: decode is tokens over the time of
# all steps (llama-batched-bench's S_TG; `preft bench model --stat mean`),
# each process first runs one untimed forward of 16 tokens (batched-bench's
# warm-up; `preft bench model --warmup 16`, and the same in llamacpp_peer
# and `preft bench adapters`), and a batch's prompt is one forward on both
# sides (llama.cpp's -b and -ub are set to the largest B x P); the adapter
# runs step 512 token rows at a time on both sides (llama.cpp's n_ubatch,
# preft's --step-tokens).
#
# Options (defaults in brackets):
#   --preft BIN          the preft binary [build/preft]
#   --shape NAME         model shape for make-model [qwen2.5-0.5b]
#   --layers L           fewer layers for a quick run [the shape's]
#   --dtypes LIST        space-separated [bf16 f32]; quantized: q8_0 q4_0 q4_k q5_0 q6_k
#   --tokenizer DIR      a tokenizer.json (+ tokenizer_config.json) whose vocabulary
#                        fits --shape (e.g. Qwen's for qwen2.5-0.5b): written into the
#                        GGUFs, needed for perplexity [none]
#   --ppl-text FILE      held-out text for the perplexity rows [none]
#   --ppl-ctx C          perplexity window [512]
#   --ppl-model DIR      also a trained HF model (with its tokenizer), converted to each
#                        dtype, for perplexity [none]
#   --threads N          [all cores]
#   --prompt P           prompt tokens [128]
#   --output O           output tokens [32]
#   --batches LIST       comma-separated batch sizes [1,16]
#   --adapters N         distinct adapters [16]
#   --requests R         requests in the adapter runs [16]
#   --rank R             LoRA rank [16]
#   --matmul-precision P preft's matmul precision [bf16]: bf16 is llama.cpp's
#                        own for BF16 weights (activations rounded to BF16
#                        in the dot products, FP32 sums); exact widens BF16
#                        weights to FP32 and keeps FP32 activations
#   --reps N             runs of every measurement, alternating preft and
#                        llama.cpp; the table shows each cell's median [3]
#   --out DIR            where every run's raw rows, the JSON of both sides and
#                        the table are kept [bench/results/peer-llamacpp-DATE]
#   --llama-build DIR    llama.cpp build directory [SRC/build-preft-peer]
#   --work DIR           scratch directory for models [a fresh temp dir]; models and
#                        GGUFs already there are used as they are (quantizing a 0.5B
#                        model to q4_k takes minutes)
#   --no-build           use an existing --llama-build as it is
#   --check-only / --no-check   only the export check / skip it
set -euo pipefail

# shellcheck source=bench/peer_lib.bash
. "$(dirname "$0")/peer_lib.bash"
usage() { peer_usage "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
src=$(peer_src "$0" "$1")
shift

repo=$(cd "$(dirname "$0")/.." && pwd)
preft=$repo/build/preft
shape=qwen2.5-0.5b layers="" dtypes="bf16 f32" threads=$(nproc) P=128 O=32 batches=1,16
n_adapters=16 requests=16 rank=16 lbuild=$src/build-preft-peer work="" build=1 check=1 bench=1 reps=3 out=""
precision=bf16 tokdir="" ppl_text="" ppl_ctx=512 ppl_model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --preft) preft=$2; shift ;;
    --shape) shape=$2; shift ;;
    --layers) layers=$2; shift ;;
    --dtypes) dtypes=$2; shift ;;
    --threads) threads=$2; shift ;;
    --prompt) P=$2; shift ;;
    --output) O=$2; shift ;;
    --batches) batches=$2; shift ;;
    --adapters) n_adapters=$2; shift ;;
    --requests) requests=$2; shift ;;
    --rank) rank=$2; shift ;;
    --reps) reps=$2; shift ;;
    --matmul-precision) precision=$2; shift ;;
    --llama-build) lbuild=$2; shift ;;
    --work) work=$2; shift ;;
    --out) out=$2; shift ;;
    --tokenizer) tokdir=$2; shift ;;
    --ppl-text) ppl_text=$2; shift ;;
    --ppl-ctx) ppl_ctx=$2; shift ;;
    --ppl-model) ppl_model=$2; shift ;;
    --no-build) build=0 ;;
    --check-only) bench=0 ;;
    --no-check) check=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "peer_llamacpp: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$preft" ] || { echo "peer_llamacpp: no preft binary at $preft (build preft first, or --preft BIN)" >&2; exit 2; }
preft=$(cd "$(dirname "$preft")" && pwd)/$(basename "$preft")
if [ -z "$work" ]; then work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"
out=${out:-$repo/bench/results/peer-llamacpp-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
log() { echo "== $*" >&2; }

# ---- 1. build ---------------------------------------------------------------
if [ "$build" = 1 ]; then
  log "building llama.cpp (CPU) in $lbuild"
  peer_build "$src" "$lbuild" "$work" OFF llama llama-bench llama-batched-bench llama-perplexity || exit 1
fi
lbin=$lbuild/bin
[ -x "$lbin/llama-bench" ] && [ -x "$lbin/llama-batched-bench" ] || { echo "peer_llamacpp: no llama-bench in $lbin" >&2; exit 1; }
libdir=$(dirname "$(find "$lbuild" -name 'libllama.so' -print -quit)")
driver=$lbuild/llamacpp_peer
api=""
grep -q llama_set_adapters_lora "$src/include/llama.h" || api=-DPEER_ONE_ADAPTER_API
cc -std=c11 -O2 $api "$repo/bench/llamacpp_peer.c" -I"$src/include" -I"$src/ggml/include" -L"$libdir" -lllama -lggml \
  -lggml-base -lm -Wl,-rpath,"$libdir" -o "$driver"
commit=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)

# ---- 2. export check ------------------------------------------------------------
fails=0
result() { # result NAME OK? DETAIL
  if [ "$2" = 0 ]; then printf 'ok   %-52s %s\n' "$1" "$3"; else printf 'FAIL %-52s %s\n' "$1" "$3"; fails=$((fails + 1)); fi
}
json_int() { sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" "$1" | head -1; }
json_ids() { tr -d ' \n' <"$1" | sed -n 's/.*"ids":\[\([0-9,]*\)\].*/\1/p'; }

if [ "$check" = 1 ]; then
  log "checking the export against llama.cpp $commit"
  data=$repo/tests/data
  for dir in "$data"/models/*/; do
    m=$(basename "$dir")
    V=$(json_int "$dir/config.json" vocab_size)
    ids=$(cat "$dir/golden_ids.txt")
    "$preft" logits -m "$dir" --ids "$ids" -o "$work/p.f32" 2>/dev/null
    # F32 everywhere: the two implementations must agree to float rounding
    "$preft" convert -m "$dir" --to gguf --outtype f32 -o "$work/$m-f32.gguf" 2>/dev/null
    "$driver" logits "$work/$m-f32.gguf" "$ids" "$work/l.f32" --f32-kv --threads "$threads"
    out=$("$driver" compare "$work/l.f32" "$work/p.f32" "$V" 1e-5) && r=0 || r=1
    result "logits $m (F32 export, F32 KV)" $r "$out"
    # as stored, llama.cpp's defaults (F16 KV cache, F16/BF16 activations)
    "$preft" convert -m "$dir" --to gguf -o "$work/$m.gguf" 2>/dev/null
    "$driver" logits "$work/$m.gguf" "$ids" "$work/l.f32" --threads "$threads"
    out=$("$driver" compare "$work/l.f32" "$work/p.f32" "$V" 1e-2) && r=0 || r=1
    result "logits $m (stored types, llama.cpp defaults)" $r "$out"
    prompt=$(echo "$ids" | cut -d, -f1-8)
    a=$("$preft" generate -m "$dir" --ids "$prompt" -n 24 --temperature 0 --ignore-eos --print-ids 2>/dev/null | tr ' ' ',')
    b=$("$driver" generate "$work/$m.gguf" "$prompt" 24 --threads "$threads")
    [ "$a" = "$b" ] && r=0 || r=1
    result "greedy 24 tokens $m" $r "$b"
  done
  for dir in "$data"/adapters/lora-*/; do
    a=$(basename "$dir")
    base=$(sed -n 's/.*"base": *"\([^"]*\)".*/\1/p' "$dir/golden.json")
    ids=$(json_ids "$dir/golden.json")
    V=$(json_int "$data/models/$base/config.json" vocab_size)
    "$preft" convert -a "$dir" -m "$data/models/$base" --to gguf --outtype f32 -o "$work/$a.gguf" 2>/dev/null
    "$preft" logits -m "$data/models/$base" -a "$dir" --adapter-mode all --ids "$ids" -o "$work/p.f32" 2>/dev/null
    "$driver" logits "$work/$base-f32.gguf" "$ids" "$work/l.f32" --lora "$work/$a.gguf" --f32-kv --threads "$threads"
    out=$("$driver" compare "$work/l.f32" "$work/p.f32" "$V" 1e-5) && r=0 || r=1
    result "logits LoRA $a on $base" $r "$out"
  done
  text="Hello world! It's 2026: naïve café, 12345 tokens...  <|im_start|>user
Ünïcödé 你好 🦙"
  for t in qwen3:151936 llama3_1:128256; do
    name=${t%%:*}
    [ -s "$data/.cache/$name/tokenizer.json" ] || { echo "skip tokenizer $name (run scripts/fetch-test-data.sh)"; continue; }
    rm -rf "$work/tok-$name"
    "$preft" make-model --shape tiny --vocab "${t##*:}" -o "$work/tok-$name" 2>/dev/null
    cp "$data/.cache/$name/tokenizer.json" "$data/.cache/$name/tokenizer_config.json" "$work/tok-$name/"
    "$preft" convert -m "$work/tok-$name" --to gguf -o "$work/tok-$name.gguf" 2>/dev/null
    a=$("$preft" tokenize --tokenizer "$work/tok-$name" --text "$text" | tr -d '[] ')
    b=$("$driver" tokenize "$work/tok-$name.gguf" "$text")
    [ "$a" = "$b" ] && r=0 || r=1
    result "token ids of a sample text, $name tokenizer" $r "$(echo "$b" | tr ',' '\n' | wc -l) ids"
  done
  [ "$fails" = 0 ] && log "export check: all passed" || log "export check: $fails FAILED"
fi
[ "$bench" = 1 ] || exit $((fails > 0))

# ---- 3. benchmarks ----------------------------------------------------------------
# preft's JSON (cJSON_Print: one key per line) -> "batch value" pairs
preft_model_field() { awk -v f="\"$2\":" '$1 == "\"batch\":" {b=$2+0} $1 == f {v=$2; sub(/,/, "", v); print b, v}' "$1"; }
preft_adapter_tps() { # FILE METHOD N
  awk -v m="\"$2\"," -v n="$3" '$1 == "\"method\":" {meth=$2} $1 == "\"n_adapters\":" {na=$2+0}
    $1 == "\"tokens_per_s\":" && meth == m && na == n {v=$2; sub(/,/, "", v); print v}' "$1"
}
# llama-batched-bench JSONL: the last line for a batch size (the first run warms up)
lcpp_bb() { grep "\"pl\": $3," "$1" | tail -1 | sed -n "s/.*\"$2\": *\([0-9.]*\).*/\1/p"; }
lcpp_bench() { # FILE n_prompt n_gen -> avg_ts
  tr -d '\n ' <"$1" | sed 's/},{/}\n{/g' | grep "\"n_prompt\":$2,\"n_gen\":$3," | sed -n 's/.*"avg_ts":\([0-9.]*\).*/\1/p' | head -1
}
rows=$work/rows.txt
: >"$rows"
load1() { cut -d' ' -f1 /proc/loadavg; }
# row DTYPE MEASUREMENT PREFT LLAMA [LOAD_PREFT LOAD_LLAMA]
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-$lp}" "${6:-$ll}" >>"$rows"; }
lp="" ll=""
layer_opt=${layers:+--layers $layers}
max_b=$(echo "$batches" | tr ',' '\n' | sort -n | tail -1)
is_quant() { case "$1" in q8_0 | q4_0 | q5_0 | q4_k | q6_k) return 0 ;; *) return 1 ;; esac; }
json_num() { tr -d "\n\t " <"$1" | grep -o "\"$2\":[0-9.e+-]*" | head -1 | cut -d: -f2; }
# the batch-1 row of preft bench model's JSON: FIELD
preft_b1() { preft_model_field "$1" "$2" | awk '$1 == 1 {print $2}'; }
# a failed perplexity run leaves its cell empty, not the script stopped
ppl_preft() {
  { "$preft" perplexity -m "$1" -f "$ppl_text" --ctx "$ppl_ctx" --halves --threads "$threads" 2>/dev/null || true; } |
    sed -n 's/^perplexity //p'
}
ppl_lcpp() {
  { "$lbin/llama-perplexity" -m "$1" -f "$ppl_text" -c "$ppl_ctx" -b "$ppl_ctx" -t "$threads" 2>&1 || true; } |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}
with_tok() { # DIR: copies --tokenizer into DIR; prints the convert flag
  if [ -n "$tokdir" ]; then
    cp "$tokdir/tokenizer.json" "$1/"
    [ -f "$tokdir/tokenizer_config.json" ] && cp "$tokdir/tokenizer_config.json" "$1/"
    echo ""
  else
    echo --no-tokenizer
  fi
}
for dt in $dtypes; do
  if is_quant "$dt"; then src_dt=bf16 type_opt="--type $dt" ad_dt=f32; else src_dt=$dt type_opt="" ad_dt=$dt; fi
  mdir=$work/model-$src_dt
  gguf=$work/model-$dt.gguf
  if [ ! -s "$mdir/model.safetensors" ]; then
    log "$dt: making $shape ${layers:+($layers layers) }($src_dt)"
    "$preft" make-model --shape "$shape" --dtype "$src_dt" $layer_opt -o "$mdir" 2>/dev/null
  fi
  tokflag=$(with_tok "$mdir")
  if [ ! -s "$gguf" ]; then
    log "$dt: converting to GGUF${type_opt:+ ($type_opt)}"
    "$preft" convert -m "$mdir" $tokflag $type_opt --to gguf -o "$gguf" 2>/dev/null
  fi
  # preft runs the HF directory for float types (as before) and the very
  # same GGUF file for quantized ones
  pm=$mdir
  is_quant "$dt" && pm=$gguf
  loras=()
  log "$dt: $n_adapters rank-$rank LoRAs ($ad_dt)"
  for i in $(seq 1 "$n_adapters"); do
    [ -s "$work/lora-$ad_dt-$i.gguf" ] || {
      "$preft" make-adapter -m "$mdir" --rank "$rank" --dtype "$ad_dt" --seed "$i" -o "$work/lora-$ad_dt-$i" 2>/dev/null
      "$preft" convert -a "$work/lora-$ad_dt-$i" -m "$mdir" --to gguf -o "$work/lora-$ad_dt-$i.gguf" 2>/dev/null
    }
    loras+=(--lora "$work/lora-$ad_dt-$i.gguf")
  done

  for rep in $(seq 1 "$reps"); do
    log "$dt: base model, batches $batches, prompt $P, output $O, $threads threads (run $rep of $reps, load $(load1))"
    lp=$(load1)
    "$preft" bench model -m "$pm" --batch "$batches" --prompt-len "$P" --decode-steps "$O" --threads "$threads" \
      --stat mean --warmup 16 --matmul-precision "$precision" --json "$work/preft-model-$dt.json" >/dev/null
    cp "$work/preft-model-$dt.json" "$out/preft-model-$dt-run$rep.json"
    ll=$(load1)
    "$lbin/llama-batched-bench" -m "$gguf" -npp "$P" -ntg "$O" -npl "$batches" -t "$threads" \
      -c $((max_b * (P + O) + 64)) -b $((max_b * P)) -ub $((max_b * P)) --output-format jsonl \
      >"$work/lcpp-bb-$dt.jsonl" 2>/dev/null
    cp "$work/lcpp-bb-$dt.jsonl" "$out/llamacpp-batched-$dt-run$rep.jsonl"

    lb1=$(load1)
    "$lbin/llama-bench" -m "$gguf" -p "$P" -n "$O" -t "$threads" -r 3 -o json \
      >"$work/lcpp-bench-$dt.json" 2>/dev/null
    for B in $(echo "$batches" | tr ',' ' '); do
      pd=$(preft_model_field "$work/preft-model-$dt.json" decode_tokens_per_s | awk -v b="$B" '$1 == b {print $2}')
      pp=$(preft_model_field "$work/preft-model-$dt.json" prefill_tokens_per_s | awk -v b="$B" '$1 == b {print $2}')
      row "$dt" "decode tok/s, batch $B (context $P)" "$pd" "$(lcpp_bb "$work/lcpp-bb-$dt.jsonl" speed_tg "$B")"
      row "$dt" "prefill tok/s, batch $B x $P" "$pp" "$(lcpp_bb "$work/lcpp-bb-$dt.jsonl" speed_pp "$B")"
    done
    ltg=$(lcpp_bench "$work/lcpp-bench-$dt.json" 0 "$O")
    row "$dt" "llama-bench pp$P tok/s (batch 1)" "-" "$(lcpp_bench "$work/lcpp-bench-$dt.json" "$P" 0)" "-" "$lb1"
    row "$dt" "llama-bench tg$O tok/s (batch 1, empty context)" "-" "$ltg" "-" "$lb1"
    # read bandwidth (the mean of preft's probes just before and after its
    # batch-1 decode; bandwidth_gbs from a preft that predates them) and
    # batch-1 decode against it: bytes per token = preft's decode GB/s / its
    # tok/s (the same weights)
    bw=$(preft_b1 "$work/preft-model-$dt.json" bandwidth_gbs_row)
    [ -n "$bw" ] || bw=$(json_num "$work/preft-model-$dt.json" bandwidth_gbs)
    pgbs=$(preft_b1 "$work/preft-model-$dt.json" decode_gbs)
    ptps=$(preft_b1 "$work/preft-model-$dt.json" decode_tokens_per_s)
    ltps=$(lcpp_bb "$work/lcpp-bb-$dt.jsonl" speed_tg 1)
    row "$dt" "read bandwidth GB/s (preft's probes around its decode)" "$bw" "-" "$lp" "-"
    row "$dt" "batch-1 decode, % of read bandwidth" "$(awk -v g="$pgbs" -v b="$bw" 'BEGIN { if (b > 0) printf "%.1f", 100 * g / b }')" \
      "$(awk -v g="$pgbs" -v t="$ptps" -v l="$ltps" -v b="$bw" 'BEGIN { if (b > 0 && t > 0 && l > 0) printf "%.1f", 100 * g / t * l / b }')"

    log "$dt: $requests requests over $n_adapters adapters (load $(load1))"
    lp=$(load1)
    "$preft" bench adapters -m "$pm" --methods base,lora,lora-p --adapters "$n_adapters" --requests "$requests" \
      --prompt-len "$P" --output-len "$O" --rank "$rank" --threads "$threads" --matmul-precision "$precision" \
      --json "$work/preft-ad-$dt.json" >/dev/null
    cp "$work/preft-ad-$dt.json" "$out/preft-adapters-$dt-run$rep.json"
    ll=$(load1)
    lb=$("$driver" adapters "$gguf" -p "$P" -n "$O" -r "$requests" --threads "$threads")
    la=$("$driver" adapters "$gguf" -p "$P" -n "$O" -r "$requests" --threads "$threads" "${loras[@]}")
    lb=$(echo "$lb" | sed -n 's/.*out tok\/s \([0-9.]*\).*/\1/p')
    la=$(echo "$la" | sed -n 's/.*out tok\/s \([0-9.]*\).*/\1/p')
    row "$dt" "$requests requests, base model: out tok/s" "$(preft_adapter_tps "$work/preft-ad-$dt.json" base 0)" "$lb"
    row "$dt" "$requests requests, $n_adapters LoRAs (all-token): out tok/s" \
      "$(preft_adapter_tps "$work/preft-ad-$dt.json" lora "$n_adapters")" "$la"
    row "$dt" "$requests requests, $n_adapters LoRAs, preft prefill-only" \
      "$(preft_adapter_tps "$work/preft-ad-$dt.json" lora-p "$n_adapters")" "$la"
  done

  # perplexity: the same GGUF, the same text, the same protocol (once: it is
  # deterministic)
  if [ -n "$ppl_text" ] && [ -n "$tokdir" ]; then
    log "$dt: perplexity of the random model on $(basename "$ppl_text"), ctx $ppl_ctx (load $(load1))"
    lp=$(load1)
    a=$(ppl_preft "$gguf")
    ll=$(load1)
    row "$dt" "perplexity, random $shape (ctx $ppl_ctx)" "$a" "$(ppl_lcpp "$gguf")"
  fi
  if [ -n "$ppl_text" ] && [ -n "$ppl_model" ]; then
    pg=$work/ppl-$(basename "$ppl_model")-$dt.gguf
    [ -s "$pg" ] || "$preft" convert -m "$ppl_model" $type_opt --to gguf -o "$pg" 2>/dev/null
    log "$dt: perplexity of $(basename "$ppl_model") (load $(load1))"
    lp=$(load1)
    a=$(ppl_preft "$pg")
    ll=$(load1)
    row "$dt" "perplexity, $(basename "$ppl_model") (ctx $ppl_ctx)" "$a" "$(ppl_lcpp "$pg")"
  fi
done

# ---- 4. the table --------------------------------------------------------------------
cp "$rows" "$out/rows.tsv"
{
echo
echo "preft vs llama.cpp $commit on $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
echo "$threads threads; shape $shape${layers:+ ($layers layers)}; prompt $P, output $O; LoRA rank $rank (q,k,v,o,gate,up,down)"
echo "preft matmul precision $precision, kernels ${PREFT_CPU:-the best the CPU has}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); 'load' below: the 1-minute load average"
echo "at the start of each cell's first run (preft / llama.cpp)"
echo
printf '%-6s %-50s %22s %22s %8s %9s\n' dtype measurement "preft (range)" "llama.cpp (range)" ratio load
# each cell: the median of its runs (an even count: the mean of the middle
# two) and the range; the ratio of the medians
awk -F'\t' 'function num(x) { return x ~ /^[0-9.]+$/ }
  function med(list, n,   v, k, i, j, t) { k = split(list, v, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    lo = v[1]; hi = v[k]; return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  function cell(list,   m) { if (list == "") return "-"; m = med(list)
    return lo == hi ? sprintf("%.2f", m) : sprintf("%.2f (%.2f-%.2f)", m, lo, hi) }
  { k = $1 "\t" $2; if (!(k in seen)) { seen[k] = 1; order[n++] = k }
    if (num($3)) a[k] = a[k] " " $3; if (num($4)) b[k] = b[k] " " $4
    if (!(k in la)) { la[k] = $5; lb[k] = $6 } }
  END { for (i = 0; i < n; i++) { k = order[i]; split(k, f, "\t")
    ca = cell(a[k]); ma = a[k] == "" ? 0 : med(a[k]); cb = cell(b[k]); mb = b[k] == "" ? 0 : med(b[k])
    r = (ma > 0 && mb > 0) ? sprintf("%.3fx", ma / mb) : "-"
    printf "%-6s %-50s %22s %22s %8s %9s\n", f[1], f[2], ca, cb, r, la[k] "/" lb[k] } }' "$rows"
} | tee "$out/table.txt"
log "raw rows, both sides' JSON and the table: $out"
exit $((fails > 0))
