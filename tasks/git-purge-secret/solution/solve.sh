#!/usr/bin/env bash
# Reference solution: filter-branch with an index filter over all refs,
# then drop the backup refs, expire reflogs and prune.
set -euo pipefail
cd /app/repo
git checkout -q main
export FILTER_BRANCH_SQUELCH_WARNING=1
git filter-branch -f --tree-filter '
  if [ -f config/prod.env ]; then
    grep -v "^API_KEY=" config/prod.env > config/prod.env.new || true
    mv config/prod.env.new config/prod.env
  fi' --tag-name-filter cat -- --all >/dev/null
git for-each-ref --format='%(refname)' refs/original/ | xargs -r -n1 git update-ref -d
git reflog expire --expire=now --all
git gc -q --prune=now --aggressive
git status --short
