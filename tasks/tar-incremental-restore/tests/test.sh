#!/usr/bin/env bash
# Verifier: /app/restore/data holds exactly Tuesday's files and contents.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app/restore/data 2>/dev/null || fail "no /app/restore/data"
got=$(find . -type f -printf '%P\n' | LC_ALL=C sort | while read -r f; do printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -c1-16)"; done)
want=$(cat /tests/tuesday.txt)
[ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got"); fail "the restored files are not Tuesday's"; }
echo PASS
echo 1 >/logs/verifier/reward.txt
