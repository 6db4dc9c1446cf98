#!/usr/bin/env bash
# llamacpp_vocab_check.sh - preft's tokenizers read from llama.cpp's own
# vocabulary-only GGUF files, against the token ids stored beside them.
#
#   bench/llamacpp_vocab_check.sh LLAMA_CPP_SRC_DIR [VOCAB ...]
#
# LLAMA_CPP_SRC_DIR is a llama.cpp source checkout of your own (never
# vendored, never committed here). Its models/ggml-vocab-NAME.gguf files
# were written by llama.cpp's converter from the real Hugging Face
# tokenizers, and models/ggml-vocab-NAME.gguf.inp / .out hold test texts
# (separated by "__ggml_vocab_test__" lines) and the ids Hugging Face gives
# them without special tokens. For each NAME (default: every one with an
# .out file) this runs `preft tokenize --tokenizer ggml-vocab-NAME.gguf
# --no-special` over the texts and prints one line per vocabulary: cases,
# mismatches, or the error preft gives (an unsupported pre-tokenizer, a
# vocabulary type preft does not read). Exit 0 when no vocabulary that loads
# has a mismatch. Needs python3 (to write the texts as JSON lines).
#
# Measured (llama.cpp of September 2025, 46 texts each): llama-spm, phi-3
# (SentencePiece with scores), bert-bge (WordPiece), gpt-2, deepseek-coder,
# falcon, mpt, refact, starcoder (byte-level BPE): 0 mismatches;
# deepseek-llm: pre-tokenizer not supported.
set -u
src=${1:?usage: bench/llamacpp_vocab_check.sh LLAMA_CPP_SRC_DIR [VOCAB ...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PREFT_BIN:-$here/build/preft}
[ -x "$bin" ] || { echo "build preft first ($bin)" >&2; exit 2; }
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$src"/models/ggml-vocab-*.gguf.out; do
    n=${f##*/ggml-vocab-}
    names+=("${n%.gguf.out}")
  done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0
for n in "${names[@]}"; do
  g=$src/models/ggml-vocab-$n.gguf
  if [ ! -s "$g" ] || [ "$(head -c 4 "$g")" != GGUF ]; then
    printf '%-18s missing (a Git LFS pointer?)\n' "$n"
    continue
  fi
  python3 - "$g.inp" >"$tmp/in.jsonl" <<'EOF'
import json, sys
texts = open(sys.argv[1], encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
if texts and texts[-1] == "":
    texts = texts[:-1]
for t in texts:
    print(json.dumps(t))
EOF
  if ! "$bin" tokenize --tokenizer "$g" --no-special --jsonl "$tmp/in.jsonl" >"$tmp/got" 2>"$tmp/err"; then
    printf '%-18s not loaded: %s\n' "$n" "$(head -c 160 "$tmp/err")"
    continue
  fi
  tr -d '[]' <"$tmp/got" | tr ',' ' ' >"$tmp/got.txt"
  sed 's/^ *//; s/ *$//' "$g.out" >"$tmp/want.txt"
  cases=$(wc -l <"$tmp/in.jsonl")
  miss=$(paste -d'|' "$tmp/want.txt" "$tmp/got.txt" | awk -F'|' '{ a = $1; b = $2; gsub(/ +/, " ", a); gsub(/ +/, " ", b); if (a != b) m++ } END { print m + 0 }')
  printf '%-18s %3d texts, %d mismatches\n' "$n" "$cases" "$miss"
  [ "$miss" -eq 0 ] || bad=1
done
exit $bad
