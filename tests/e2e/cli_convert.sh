#!/usr/bin/env bash
# End-to-end: `preft convert --to gguf` on real model and adapter
# directories. Good input writes a GGUF file and exits 0; bad input (ReFT
# adapters, missing or corrupt files, a tokenizer larger than the model's
# vocabulary) exits 1 with a one-line reason and leaves nothing behind; a bad
# command line exits 2. (The file contents are checked by test_gguf.)
source "$(dirname "$0")/e2e_lib.bash"
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
is_gguf() { test "$(head -c 4 "$1")" = GGUF; }

check "convert --help exits 0" bash -c "'$bin' convert --help | grep -q usage"

# models: every reference model, as stored and narrowed
for m in llama-gqa-rope3 llama-headdim-f16 mistral-long qwen2-bias-tied-bf16; do
  check "model $m exits 0" test "$(rc "$bin" convert -m "$data/models/$m" --to gguf -o "$tmp/$m.gguf")" -eq 0
  check "  and writes a GGUF file" is_gguf "$tmp/$m.gguf"
done
check "--outtype bf16 exits 0" test "$(rc "$bin" convert -m "$data/models/llama-gqa-rope3" --to gguf --outtype bf16 -o "$tmp/bf16.gguf")" -eq 0
check "  and is about half the F32 size" test "$(stat -c %s "$tmp/bf16.gguf")" -lt "$(($(stat -c %s "$tmp/llama-gqa-rope3.gguf") * 6 / 10))"

# LoRA adapters (the base model named with -m)
check "LoRA adapter exits 0" test "$(rc "$bin" convert -a "$data/adapters/lora-qv-r4" -m "$data/models/llama-gqa-rope3" --to gguf -o "$tmp/lora.gguf")" -eq 0
check "  and writes a GGUF file" is_gguf "$tmp/lora.gguf"
"$bin" make-adapter -m "$data/models/qwen2-bias-tied-bf16" --rank 4 -o "$tmp/rand-lora" 2>/dev/null
check "make-adapter LoRA converts" test "$(rc "$bin" convert -a "$tmp/rand-lora" -m "$data/models/qwen2-bias-tied-bf16" --to gguf -o "$tmp/rand.gguf")" -eq 0

# tokenizers: the trained one (1002 ids) beside a model with room for it
"$bin" make-model --shape tiny --vocab 1024 -o "$tmp/tm" 2>/dev/null
cp "$data/tokenizer/trained/tokenizer.json" "$tmp/tm/"
check "model with tokenizer exits 0" test "$(rc "$bin" convert -m "$tmp/tm" --to gguf -o "$tmp/tm.gguf")" -eq 0
check "  and says so" grep -q "with tokenizer" "$tmp/err"
check "--no-tokenizer exits 0" test "$(rc "$bin" convert -m "$tmp/tm" --no-tokenizer --to gguf -o "$tmp/tm2.gguf")" -eq 0
check "  and the file is smaller" test "$(stat -c %s "$tmp/tm2.gguf")" -lt "$(stat -c %s "$tmp/tm.gguf")"

# bad input: exit 1, a reason, nothing written
bad() { # bad NAME GREP ARGS...
  local name=$1 pat=$2; shift 2
  rm -f "$tmp/x.gguf"
  check "$name exits 1" test "$(rc "$bin" convert "$@" --to gguf -o "$tmp/x.gguf")" -eq 1
  check "  and says '$pat'" grep -q "$pat" "$tmp/err"
  check "  and writes nothing" test ! -e "$tmp/x.gguf"
}
bad "ReFT adapter" "llama.cpp has no ReFT" -a "$data/adapters/loreft-f3l3" -m "$data/models/llama-gqa-rope3"
bad "missing model directory" "not a directory" -m "$tmp/nope"
bad "tokenizer larger than the vocabulary" "vocabulary" -m "$data/models/llama-gqa-rope3" --tokenizer "$data/tokenizer/trained"
bad "missing tokenizer" "tokenizer" -m "$data/models/llama-gqa-rope3" --tokenizer "$tmp/nope"
mkdir -p "$tmp/corrupt"
cp "$data/models/llama-headdim-f16/config.json" "$tmp/corrupt/"
head -c 1000 "$data/models/llama-headdim-f16/model.safetensors" >"$tmp/corrupt/model.safetensors"
bad "truncated safetensors" "model.safetensors" -m "$tmp/corrupt"
bad "adapter for the wrong base" "lora-qwen2-bf16" -a "$data/adapters/lora-qwen2-bf16" -m "$data/models/llama-gqa-rope3"
check "unwritable output exits 1" test "$(rc "$bin" convert -m "$data/models/mistral-long" --to gguf -o "$tmp/no/such/dir/x.gguf")" -eq 1

# bad command lines: exit 2
usage() { local name=$1; shift; check "$name exits 2" test "$(rc "$bin" convert "$@")" -eq 2; }
usage "no arguments"
usage "--to safetensors" -m "$data/models/mistral-long" --to safetensors -o "$tmp/x"
usage "no -o" -m "$data/models/mistral-long" --to gguf
usage "bad --outtype" -m "$data/models/mistral-long" --to gguf --outtype q4 -o "$tmp/x"
usage "--tokenizer with --no-tokenizer" -m "$tmp/tm" --to gguf --tokenizer "$tmp/tm" --no-tokenizer -o "$tmp/x"
usage "adapter without a base" -a "$data/adapters/lora-qv-r4" --to gguf -o "$tmp/x"
usage "unknown option" -m "$data/models/mistral-long" --to gguf -o "$tmp/x" --frob

[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $((fails > 0))
