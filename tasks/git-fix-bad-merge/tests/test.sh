#!/usr/bin/env bash
# Verifier: main's settings.conf has both sides, the merge and the commit
# after it are still ancestors of main, a new commit is on top, tree clean.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cd /app/repo || fail "no /app/repo"
[ "$(git symbolic-ref --short HEAD 2>/dev/null)" = main ] || fail "main is not checked out"
[ -z "$(git status --porcelain)" ] || fail "working tree not clean"
merge=$(git rev-list --all --merges --grep="^Merge branch 'feature/cache'" | head -1)
bump=$(git rev-list --all --grep='^bump version to 1.3$' | head -1)
[ -n "$merge" ] && [ -n "$bump" ] || fail "the original commits are gone from the repository"
git merge-base --is-ancestor "$merge" main || fail "the merge commit is no longer in main's history"
git merge-base --is-ancestor "$bump" main || fail "'bump version to 1.3' is no longer in main's history"
[ "$(git rev-parse main)" != "$bump" ] || fail "no new commit on main"
git show main:settings.conf | python3 /tests/check_conf.py || fail "settings.conf on main is wrong"
[ "$(git show main:VERSION)" = 1.3 ] || fail "VERSION changed"
git cat-file -e main:cache.py || fail "cache.py missing"
echo PASS
echo 1 >/logs/verifier/reward.txt
