#!/usr/bin/env bash
# End-to-end with a real client: the official OpenAI Node SDK (npm `openai`,
# pinned in scripts/fetch-test-data.sh) drives `preft serve`. Two servers run:
#   main: the embedded default model (a real trained model, its own BPE
#         tokenizer and chat template) with two adapters (a LoRA and a
#         DiReFT), an API key and one CORS origin;
#   qwen: a small random model with Qwen3's real tokenizer and chat template
#         (the template that renders `tools`), the same API key.
# Every tests/e2e/sdk/*.test.mjs then runs with node against them (each
# prints ok/FAIL lines and exits non-zero on a failure). Its environment:
#   PREFT_URL, PREFT_QWEN_URL   the servers' base URLs (http://127.0.0.1:PORT/v1)
#   PREFT_API_KEY               the key both servers want
#   PREFT_MODEL, PREFT_MODEL_DIR          the main server's model id and directory
#   PREFT_QWEN_MODEL, PREFT_QWEN_DIR      the qwen server's
#   PREFT_ADAPTERS              the main server's adapter ids, comma-separated;
#   PREFT_ADAPTER_DIR           their parent directory
#   PREFT_BIN                   preft, for references (`preft generate`, `preft logits`)
#   PREFT_CORS_ORIGIN           the origin the main server allows (--cors-origin)
#   PREFT_TEST_DATA             tests/data (goldens)
# A new test file needs nothing but its name: tests/e2e/sdk/NAME.test.mjs
# (helpers in tests/e2e/sdk/lib.mjs). OPENAI_SDK_TEST=NAME runs only that one.
source "$(dirname "$0")/server_lib.bash"
sdk_src=$(cd "$(dirname "$0")/sdk" && pwd)
command -v node >/dev/null || { echo "node is missing: run scripts/install-deps.sh"; exit 1; }
sdk=$data/.cache/node_modules/openai
[ -s "$sdk/package.json" ] || { echo "missing $sdk: run scripts/fetch-test-data.sh"; exit 1; }
tok=$data/.cache/qwen3
[ -s "$tok/tokenizer.json" ] || { echo "missing $tok/tokenizer.json: run scripts/fetch-test-data.sh"; exit 1; }
tmp=$(mktemp -d)
qwen_pid=
trap 'kill_server; [ -n "$qwen_pid" ] && kill -KILL "$qwen_pid" 2>/dev/null
      [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -30 "$l"; done; rm -rf "$tmp"' EXIT

m=$tmp/default-model
cp -r "$data/../../assets/default-model" "$m"
"$bin" make-adapter -m "$m" --kind lora --rank 4 --seed 3 -o "$tmp/adapters/lora-a" 2>/dev/null
"$bin" make-adapter -m "$m" --kind direft --rank 8 --seed 3 -o "$tmp/adapters/reft-b" 2>/dev/null
q=$tmp/qwen-tiny
"$bin" make-model --shape tiny --vocab 151936 --seed 2 -o "$q" 2>/dev/null
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$q/"
key=sdk-test-key
start_server "$tmp/log-qwen" -m "$q" --api-key "$key" --threads 1 || exit 1
qwen_pid=$SRV_PID qwen_url=$SRV_URL
origin=http://page.example
start_server "$tmp/log" -m "$m" --adapters "$tmp/adapters" --api-key "$key" --cors-origin "$origin" \
  --threads 1 || exit 1

# the test files run from a folder whose node_modules holds the SDK
mkdir -p "$tmp/run/node_modules"
ln -s "$(cd "$sdk" && pwd)" "$tmp/run/node_modules/openai"
cp "$sdk_src"/*.mjs "$tmp/run/"
export PREFT_URL=$SRV_URL/v1 PREFT_QWEN_URL=$qwen_url/v1 PREFT_API_KEY=$key \
  PREFT_MODEL=default-model PREFT_MODEL_DIR=$m PREFT_QWEN_MODEL=qwen-tiny PREFT_QWEN_DIR=$q \
  PREFT_ADAPTERS=lora-a,reft-b PREFT_ADAPTER_DIR=$tmp/adapters PREFT_BIN=$bin PREFT_CORS_ORIGIN=$origin
limit=$((120 * scale))
for f in "$sdk_src"/*.test.mjs; do
  name=$(basename "$f" .test.mjs)
  [ -n "${OPENAI_SDK_TEST:-}" ] && [ "$OPENAI_SDK_TEST" != "$name" ] && continue
  echo "== $name"
  check "sdk/$name.test.mjs passes" timeout "$limit" node "$tmp/run/$(basename "$f")"
done
stop_server
check "SIGTERM: exit 0" test $? -eq 0
SRV_PID=$qwen_pid
stop_server
check "SIGTERM: exit 0 (qwen server)" test $? -eq 0
exit $((fails > 0))
