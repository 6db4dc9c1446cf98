#!/usr/bin/env bash
# Verifier: exactly the expected files and folders remain (with their
# mtimes), and the large-file list is exact.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app/storage || fail "no /app/storage"
diff <(find . -mindepth 1 \( -type f -printf 'f %P %s %T@\n' \) -o \( -type d -printf 'd %P\n' \) | sed 's/\.0000000000$//' | LC_ALL=C sort) /tests/remaining.txt ||
  fail "the files and folders left are not the expected ones"
[ -f /app/large-files.txt ] || fail "no /app/large-files.txt"
diff <(sed -e 's/[[:space:]]*$//' /app/large-files.txt | sed -e '$a\') /tests/large-files.txt || fail "large-files.txt differs"
echo PASS
echo 1 >/logs/verifier/reward.txt
