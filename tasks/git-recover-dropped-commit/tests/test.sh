#!/usr/bin/env bash
# Verifier: main holds the retry commit and the usage commit, the files
# have the lost commit's exact content, nothing is left uncommitted.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cd /app/repo || fail "no /app/repo"
[ "$(git symbolic-ref --short HEAD 2>/dev/null)" = main ] || fail "main is not checked out"
[ -z "$(git status --porcelain)" ] || fail "working tree not clean: $(git status --porcelain)"
subjects=$(git log --format=%s main)
grep -qx 'add retry logic to fetch' <<<"$subjects" || fail "no commit 'add retry logic to fetch' on main"
grep -qx 'document usage in README' <<<"$subjects" || fail "the usage commit is gone from main"
grep -qx 'add config loader' <<<"$subjects" || fail "history before the reset is gone"
[ "$(git show main:retry.py 2>/dev/null | sha256sum | cut -c1-16)" = "$(sha256sum /tests/retry.py | cut -c1-16)" ] || fail "retry.py on main differs from the lost commit's"
git show main:fetch.py | grep -q 'with_retry(lambda: "GET " + url)' || fail "fetch.py does not use with_retry"
git show main:README.md | grep -q '## Usage' || fail "README lost its usage section"
echo PASS
echo 1 >/logs/verifier/reward.txt
