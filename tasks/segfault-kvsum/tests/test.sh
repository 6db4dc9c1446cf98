#!/usr/bin/env bash
# Verifier: builds the agent's kvsum.c hardened (FORTIFY_SOURCE, UBSan,
# glibc's heap checks) and, where the sandbox's address-space limit lets
# AddressSanitizer start, with ASan too; runs every build on inputs it has
# not seen: output must match, no sanitizer report, no abort.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
src=/app/src/kvsum.c
[ -f $src ] || fail "no $src"
w=$(mktemp -d)
gcc -O2 -std=c11 -o $w/kvsum_plain $src || fail "kvsum.c does not compile"
gcc -g -O2 -D_FORTIFY_SOURCE=2 -std=c11 -fsanitize=undefined -fno-sanitize-recover=all -o $w/kvsum_hard $src ||
  fail "kvsum.c does not compile with -D_FORTIFY_SOURCE=2 -fsanitize=undefined"
builds="kvsum_plain kvsum_hard"
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1
echo 'int main(void) { return 0; }' >$w/probe.c
if gcc -fsanitize=address -o $w/probe $w/probe.c 2>/dev/null && $w/probe 2>/dev/null; then
  gcc -g -O1 -std=c11 -fsanitize=address,undefined -fno-sanitize-recover=all -o $w/kvsum_asan $src ||
    fail "kvsum.c does not compile with -fsanitize=address"
  builds+=" kvsum_asan"
else
  echo "note: AddressSanitizer cannot start here (address-space limit?): hardened build only"
fi
run_case() { # name input expected
  printf '%s' "$2" >$w/in.txt
  for b in $builds; do
    out=$($w/$b $w/in.txt 2>$w/err) || { head -20 $w/err; fail "$1: $b exited with status $?"; }
    ! grep -q 'runtime error\|AddressSanitizer\|overflow detected' $w/err || { head -20 $w/err; fail "$1: $b reported an error"; }
    [ "$out" = "$3" ] || fail "$1: $b printed [$out], want [$3]"
  done
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
