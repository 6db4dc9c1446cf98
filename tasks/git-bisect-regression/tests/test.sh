#!/usr/bin/env bash
# Verifier: the hash names the commit whose subject is "reword docstring
# (37)" (the setup's 37th commit), a revert of it is on main, the check
# passes on main, history kept, no bisect in progress, tree clean.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cd /app/repo || fail "no /app/repo"
h=$(tr -d ' \n' </app/first-bad-commit.txt 2>/dev/null)
[[ $h =~ ^[0-9a-f]{40}$ ]] || fail "first-bad-commit.txt does not hold a 40-character hash"
[ "$(git log -1 --format=%s "$h" 2>/dev/null)" = "format README (37)" ] || fail "$h is not the first bad commit"
[ "$(git symbolic-ref --short HEAD 2>/dev/null)" = main ] || fail "main is not checked out"
[ -z "$(git status --porcelain)" ] || fail "working tree not clean"
[ ! -e .git/BISECT_LOG ] && [ ! -e .git/BISECT_START ] || fail "a bisect is still in progress"
git merge-base --is-ancestor "$h" main || fail "history was rewritten: the bad commit is gone from main"
[ "$(git rev-list --count main)" -ge 61 ] || fail "commits were dropped from main"
git log --format=%B main | grep -q "This reverts commit $h" || fail "no revert of $h on main"
git log -1 --format=%s "$(git rev-list --max-parents=0 main)" | grep -q 'calculator with VAT' || fail "root commit changed"
sh /tests/check.sh || fail "the totals on main are still wrong"
python3 calc.py 7:0.07 | grep -qx '0.59' || fail "calc.py 7:0.07 is not 0.59"
echo PASS
echo 1 >/logs/verifier/reward.txt
