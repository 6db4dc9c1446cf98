#!/usr/bin/env bash
# Reference solution: git bisect run, then revert.
set -euo pipefail
cd /app/repo
git checkout -q main
first=$(git rev-list --max-parents=0 HEAD)
git bisect start main "$first" >/dev/null
git bisect run ./check.sh >/tmp/bisect.log 2>&1
bad=$(git rev-parse refs/bisect/bad)
git bisect reset >/dev/null 2>&1
echo "$bad" >/app/first-bad-commit.txt
git -c user.name=Oracle -c user.email=oracle@example.com revert --no-edit "$bad" >/dev/null
./check.sh
