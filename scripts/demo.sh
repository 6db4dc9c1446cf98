#!/usr/bin/env bash
# The README's main job: installs what is missing, builds preft, starts
# `preft serve` with the embedded default model (assets/default-model,
# trained by scripts/train-default-model.sh on the State of the Union
# addresses) and the 43 presidents' rank-16 prefill-only adapters
# (assets/presidents/lora-p, scripts/train-presidents.sh), sends the same
# opening words in several presidents' voices at once over the HTTP API,
# prints the generations side by side, then tokens/s for the same requests
# served by the base model, all-token and prefill-only, and stops the server
# (scripts/demo-serve.sh; its options after --serve, e.g.
# `demo.sh --serve --prompt "Our economy"`).
# Other arguments go to `preft generate` instead (e.g. -p "..." -n 100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
model=assets/default-model
if [ ! -f "$model/model.safetensors" ]; then
  echo "demo: $model is missing; run scripts/train-default-model.sh" >&2
  exit 1
fi
if [ $# -gt 0 ] && [ "$1" != --serve ]; then
  exec ./build/preft generate -m "$model" "$@"
fi
[ $# -gt 0 ] && shift
adapters=assets/presidents/lora-p
if [ ! -d "$adapters" ]; then
  echo "demo: $adapters is missing (scripts/train-presidents.sh lora prefill 16 $adapters makes it);" >&2
  echo "demo: generating with the base model alone instead" >&2
  exec ./build/preft generate -m "$model" -p "Fellow-Citizens of the Senate and House of Representatives:" \
    -n 80 --temperature 0.8 --top-p 0.95 --seed 7
fi
exec bash scripts/demo-serve.sh --preft build/preft -m "$model" --adapters "$adapters" "$@"
