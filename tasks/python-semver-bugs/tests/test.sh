#!/usr/bin/env bash
# Verifier: the task's own tests (a pristine copy, in case they were
# edited) and the hidden ones, against the agent's semver.py.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app || fail "no /app"
python3 /tests/test_semver_orig.py >/dev/null 2>&1 || fail "the task's own tests fail"
python3 /tests/test_semver_hidden.py || fail "hidden tests fail"
echo PASS
echo 1 >/logs/verifier/reward.txt
