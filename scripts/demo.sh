#!/usr/bin/env bash
# The README's main job: installs what is missing, builds preft and generates
# text with the embedded default model (assets/default-model, trained by
# scripts/train-default-model.sh on the State of the Union addresses).
# Extra arguments go to `preft generate` (e.g. -p "..." -n 100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
model=assets/default-model
if [ ! -f "$model/model.safetensors" ]; then
  echo "demo: $model is missing; run scripts/train-default-model.sh" >&2
  exit 1
fi
prompt="Fellow-Citizens of the Senate and House of Representatives:"
if [ $# -gt 0 ]; then
  ./build/preft generate -m "$model" "$@"
else
  ./build/preft generate -m "$model" -p "$prompt" -n 80 --temperature 0.8 --top-p 0.95 --seed 7
fi
