# e2e_lib.bash - what every end-to-end script shares (sourced; the .bash
# name keeps CTest from running it as a test): the binary and data paths
# from CTest's environment, a temporary directory removed on exit, and
#   check NAME CMD...   runs CMD, prints "ok   NAME" or "FAIL NAME", counts
#   e2e_exit            exits non-zero when any check failed
#   close_to A B        A and B are numbers and |A - B| <= 2e-6 + 1e-4 |B|
#   below A B [F]       A and B are numbers and A < F * B (F: 1)
# Both refuse an empty or non-numeric value, which awk would read as 0 (an
# empty capture must fail a comparison, never pass it).
set -u
bin=${PREFT_BIN:?}
data=${PREFT_TEST_DATA:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
require_numbers() {
  local v
  for v in "$@"; do
    [[ $v =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] || { echo "  not a number: '$v'"; return 1; }
  done
}
close_to() {
  require_numbers "$1" "$2" &&
    awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; exit !(d <= 2e-6 + 1e-4 * b) }'
}
below() { require_numbers "$1" "$2" "${3:-1}" && awk -v a="$1" -v b="$2" -v f="${3:-1}" 'BEGIN { exit !(a < f * b) }'; }
e2e_exit() { exit $((fails > 0)); }
