#!/usr/bin/env bash
# Verifier: the recovered ledger is the real one (checksum of the file the
# setup buried), and the total is its exact sum.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
f=/app/recovered/ledger-2023-q3.csv
[ -f $f ] || fail "no $f"
[ "$(sha256sum <$f | cut -c1-64)" = c9b9ca59337f66fdeeae6d78143a12994ffc2153afd749b359eb554b05c7a529 ] || fail "$f is not the q3 ledger (byte for byte)"
[ -f /app/recovered/total.txt ] || fail "no total.txt"
[ "$(tr -d ' \n' </app/recovered/total.txt)" = 58688.37 ] || fail "total.txt: '$(cat /app/recovered/total.txt)'"
echo PASS
echo 1 >/logs/verifier/reward.txt
