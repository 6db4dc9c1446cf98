#!/usr/bin/env bash
# Verifier: /app/top25.txt equals the expected list (computed with an
# independent regex tokenizer when the task was written).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
[ -f /app/top25.txt ] || fail "no /app/top25.txt"
diff <(sed -e 's/[[:space:]]*$//' /app/top25.txt | sed -e '$a\') /tests/top25.txt || fail "top25.txt differs"
echo PASS
echo 1 >/logs/verifier/reward.txt
