#!/usr/bin/env bash
# Reference solution: relative links with ln -sfn, newest by sort -V.
set -euo pipefail
cd /srv/shop
for rel in releases/*/; do
  rel=${rel%/}
  ln -sfn ../../common/config "$rel/config"
  ln -sfn ../../common/uploads "$rel/uploads"
done
newest=$(ls releases | sort -V | tail -1)
prev=$(ls releases | sort -V | tail -2 | head -1)
# atomic switch: a new link renamed over the old one
ln -sfn "releases/$newest" current.tmp && mv -T current.tmp current
ln -sfn "releases/$prev" previous
rm -f loop-a loop-b
./shop
