#!/usr/bin/env bash
# Verifier: errors.json equals the report computed from the generator's
# own entries when the task was written (key order and spacing free).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
f=/app/report/errors.json
[ -f $f ] || fail "no $f"
jq -e 'type == "object"' $f >/dev/null 2>&1 || fail "$f is not a JSON object"
[ "$(jq -cS . $f)" = "$(jq -cS . /tests/expected.json)" ] || { diff <(jq -S . $f) <(jq -S . /tests/expected.json) | head; fail "report differs"; }
echo PASS
echo 1 >/logs/verifier/reward.txt
