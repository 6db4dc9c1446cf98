#!/usr/bin/env bash
# Verifier: /app/src holds exactly the expected files, byte for byte, and
# the new command works.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app/src || fail "no /app/src"
find . -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null
[ "$(find . -type f | LC_ALL=C sort | tr '\n' ' ')" = "./VERSION ./greet.py ./mathx.py ./stats_cli.py " ] ||
  fail "files in /app/src: $(find . -type f | LC_ALL=C sort | tr '\n' ' ')"
for f in VERSION greet.py mathx.py stats_cli.py; do
  cmp -s "$f" "/tests/expected/$f" || { diff "$f" "/tests/expected/$f" | head -8; fail "$f is not as the series makes it"; }
done
[ "$(python3 stats_cli.py 1 2 3 10)" = "mean=4 median=2.5" ] || fail "stats_cli.py output"
[ "$(python3 greet.py Ann)" = "Hello, Ann!" ] || fail "greet.py output"
echo PASS
echo 1 >/logs/verifier/reward.txt
