#!/usr/bin/env bash
# Builds the concurrency tests under ThreadSanitizer into build-tsan/ (only
# the targets they need: target concurrency_tests, see tests/CMakeLists.txt)
# and runs them (CTest label `concurrency`): the thread pool, the engine,
# the HTTP server and the tokenizer cache. The first data race stops the
# test with TSan's report (halt_on_error=1). No suppressions: a race is a
# bug to fix.
# Usage: scripts/test-tsan.sh [BUILD_DIR]   (called by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DPREFT_WERROR=ON -DPREFT_TSAN=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" --target concurrency_tests

# TSan maps its shadow memory at fixed addresses. On kernels that randomise
# mmap with more bits (vm.mmap_rnd_bits > 28, e.g. Ubuntu's 6.x kernels) the
# TSan of GCC 12 stops every program at start with "FATAL: ThreadSanitizer:
# unexpected memory mapping". Probe with the built preft; if it fails so,
# run the tests with address randomisation off (setarch -R, inherited by
# every process CTest starts).
run=()
probe() { "$@" "$dir/preft" --help >/dev/null 2>"$dir/tsan-probe.log"; }
if ! probe; then
  if grep -q "unexpected memory mapping" "$dir/tsan-probe.log" && probe setarch "$(uname -m)" -R; then
    echo "test-tsan: this kernel's address randomisation breaks TSan; running under setarch -R"
    run=(setarch "$(uname -m)" -R)
  else
    echo "test-tsan: a ThreadSanitizer program cannot start here:"
    cat "$dir/tsan-probe.log"
    echo "(if it names the memory mapping: sysctl vm.mmap_rnd_bits=28, then rerun)"
    exit 1
  fi
fi

TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  "${run[@]}" ctest --test-dir "$dir" -L concurrency --output-on-failure -j2
