#!/usr/bin/env bash
# Verifier: builds the agent's kvsum.c with AddressSanitizer and UBSan and
# runs it on inputs it has not seen; output must match, no sanitizer report.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
src=/app/src/kvsum.c
[ -f $src ] || fail "no $src"
w=$(mktemp -d)
gcc -g -O1 -std=c11 -fsanitize=address,undefined -fno-sanitize-recover=all -o $w/kvsum $src || fail "kvsum.c does not compile"
gcc -O2 -std=c11 -o $w/kvsum_plain $src || fail "kvsum.c does not compile without sanitizers"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1
run_case() { # name input expected
  printf '%s' "$2" >$w/in.txt
  out=$($w/kvsum $w/in.txt 2>$w/err) || { cat $w/err | head -20; fail "$1: exit status $? under sanitizers"; }
  [ "$out" = "$3" ] || fail "$1: got [$out] want [$3]"
  out=$($w/kvsum_plain $w/in.txt) || fail "$1: plain build failed"
  [ "$out" = "$3" ] || fail "$1: plain build got [$out]"
}
run_case given "$(cat /tests/sales.txt)" "$(cat /tests/sales.expected)"
long=$(printf 'k%.0s' $(seq 3000))
run_case long-key "$long=5
short=1
$long = 6
" "$long 11
short 1"
run_case no-equals "alpha
beta=2
# gamma=100
   
gamma=-3
" "beta 2
gamma -3"
many=""; for i in $(seq 1 300); do many+="key$((i % 97))=$i"$'\n'; done
want=$(printf '%s' "$many" | awk -F= '{s[$1] += $2} END {for (k in s) print k, s[k]}' | LC_ALL=C sort)
run_case many-keys "$many" "$want"
run_case empty-file "" ""
run_case blank-only "

" ""
echo PASS
echo 1 >/logs/verifier/reward.txt
