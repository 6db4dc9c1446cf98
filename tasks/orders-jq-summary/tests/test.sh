#!/usr/bin/env bash
# Verifier: /app/out/customers.json equals the expected array (key order
# and whitespace free; array order and number types must match).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
f=/app/out/customers.json
[ -f $f ] || fail "no $f"
jq -e 'type == "array"' $f >/dev/null 2>&1 || fail "$f is not a JSON array"
jq -e 'all(.[]; (.total_cents | type) == "number" and .total_cents == (.total_cents | floor))' $f >/dev/null || fail "total_cents must be integers"
[ "$(jq -cS . $f)" = "$(jq -cS . /tests/expected.json)" ] || {
  diff <(jq -S . $f) <(jq -S . /tests/expected.json) | head -20
  fail "$f differs from the expected summary"
}
echo PASS
echo 1 >/logs/verifier/reward.txt
