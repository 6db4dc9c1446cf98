#!/usr/bin/env bash
# Verifier: a clean build must succeed and the tool must print the right
# numbers for inputs it has not seen (odd and even counts, blank lines).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app || fail "no /app"
make clean >/dev/null 2>&1
make || fail "make failed"
[ -x /app/stats ] || fail "/app/stats not built"
file /app/stats | grep -q ELF || fail "/app/stats is not an ELF executable"
got=$(printf '4\n\n1.5\n10\n-2\n7.25\n' | /app/stats) || fail "stats exited non-zero on input 1"
want=$'count 5\nmean 4.1500\nstddev 4.2119\nmedian 4.0000'
[ "$got" = "$want" ] || fail "input 1: got [$got] want [$want]"
got=$(printf '3\n1\n2\n100\n' | /app/stats) || fail "stats exited non-zero on input 2"
want=$'count 4\nmean 26.5000\nstddev 42.4411\nmedian 2.5000'
[ "$got" = "$want" ] || fail "input 2: got [$got] want [$want]"
seq 1 1000 | /app/stats | grep -qx 'median 500.5000' || fail "median of 1..1000"
echo PASS
echo 1 >/logs/verifier/reward.txt
