#!/usr/bin/env bash
# Reference solution: find the dropped commit in the reflog, cherry-pick it.
set -euo pipefail
cd /app/repo
lost=$(git reflog --format='%H %gs %s' | awk '/add retry logic to fetch/ {print $1; exit}')
[ -n "$lost" ]
git checkout -q main
git -c user.name=Oracle -c user.email=oracle@example.com cherry-pick "$lost"
