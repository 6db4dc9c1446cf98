#!/usr/bin/env bash
# Verifier: the three reports equal the expected ones (computed from the
# log with a strict parser when the task was written).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
for f in status_counts.txt top_ips.txt bytes_total.txt; do
  [ -f "/app/report/$f" ] || fail "missing /app/report/$f"
  # tolerate a missing final newline and trailing blanks, nothing else
  if ! diff <(sed -e 's/[[:space:]]*$//' "/app/report/$f" | sed -e '$a\') "/tests/$f"; then fail "$f differs"; fi
done
echo PASS
echo 1 >/logs/verifier/reward.txt
