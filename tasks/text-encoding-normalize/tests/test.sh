#!/usr/bin/env bash
# Verifier: each /app/clean file equals the expected UTF-8 text byte for
# byte (no BOM, LF only, one final newline); no extra or missing files.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
[ -d /app/clean ] || fail "no /app/clean"
[ "$(cd /app/clean && ls *.txt 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')" = "$(cd /tests/expected && ls | LC_ALL=C sort | tr '\n' ' ')" ] ||
  fail "/app/clean does not hold exactly the inbox's .txt files"
for f in /tests/expected/*.txt; do
  n=$(basename "$f")
  cmp -s "$f" "/app/clean/$n" || { od -c "/app/clean/$n" | head -3; fail "$n differs from the expected UTF-8 text"; }
done
[ "$(cat /app/inbox/*.txt | md5sum | cut -c1-32)" = "$(cut -c1-32 /tests/inbox.md5)" ] || fail "/app/inbox was changed"
echo PASS
echo 1 >/logs/verifier/reward.txt
