# e2e_lib.bash - what every end-to-end script shares (sourced; the .bash
# name keeps CTest from running it as a test): the binary and data paths
# from CTest's environment, a temporary directory removed on exit, and
#   check NAME CMD...   runs CMD, prints "ok   NAME" or "FAIL NAME", counts
#   e2e_exit            exits non-zero when any check failed
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
e2e_exit() { exit $((fails > 0)); }
