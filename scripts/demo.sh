#!/usr/bin/env bash
# The README's main job: installs what is missing, builds preft, writes the
# small default model if it is not there yet, and generates text with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
model=models/demo-tiny
if [ ! -f "$model/config.json" ]; then
  ./build/preft make-model --shape tiny --seed 1 -o "$model"
fi
./build/preft generate -m "$model" --ids 1,2,3 -n 32 --temperature 0.8 --seed 7 "$@"
