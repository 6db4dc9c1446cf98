#!/usr/bin/env bash
# Verifier: grep -Ex -f /app/ipv4.regex accepts every line of ok.txt and
# no line of bad.txt (hundreds of each, edge cases included).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
re=/app/ipv4.regex
[ -s $re ] || fail "no $re"
[ "$(grep -c '' $re)" = 1 ] || fail "$re must hold exactly one line"
grep -Ex -f $re /dev/null; [ $? -le 1 ] || fail "grep rejects the expression"
missed=$(grep -Evx -f $re /tests/ok.txt | head -5)
[ -z "$missed" ] || fail "valid lines not matched: $missed"
wrong=$(grep -Ex -f $re /tests/bad.txt | head -5)
[ -z "$wrong" ] || fail "invalid lines matched: $wrong"
echo PASS
echo 1 >/logs/verifier/reward.txt
