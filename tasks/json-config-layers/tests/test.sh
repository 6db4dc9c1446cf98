#!/usr/bin/env bash
# Verifier: the merged JSON equals the expected object (checked by value),
# its keys are sorted as written, and the env file is exact.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
f=/app/effective.json
[ -f $f ] || fail "no $f"
[ "$(jq -cS . $f 2>/dev/null)" = "$(jq -cS . /tests/expected.json)" ] || { diff <(jq -S . $f) <(jq -S . /tests/expected.json); fail "effective.json differs"; }
[ "$(jq -c . $f)" = "$(jq -cS . $f)" ] || fail "keys of effective.json are not sorted"
[ -f /app/effective.env ] || fail "no /app/effective.env"
diff <(sed -e 's/[[:space:]]*$//' /app/effective.env | sed -e '$a\') /tests/expected.env || fail "effective.env differs"
echo PASS
echo 1 >/logs/verifier/reward.txt
