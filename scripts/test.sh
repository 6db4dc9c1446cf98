#!/usr/bin/env bash
# The README's test command: installs what is missing, builds preft three
# times and runs the CTest suite on each: Release (every test), Debug with
# AddressSanitizer + UndefinedBehaviorSanitizer at -O1 (every test that
# runs preft's code: all but label `nocode`, see tests/CMakeLists.txt), and Debug with
# ThreadSanitizer (the concurrency tests only: scripts/test-tsan.sh); and
# each libFuzzer target for a short fixed time (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# phase NAME CMD...: runs CMD and logs how long it took (CI's time budget)
phase() {
  local name=$1 t0=$SECONDS
  shift
  "$@"
  echo "test.sh: $name took $((SECONDS - t0)) s"
}
phase "install-deps" bash scripts/install-deps.sh
phase "check-format" bash scripts/check-format.sh # every C file as clang-format makes it
phase "fetch-test-data" bash scripts/fetch-test-data.sh # real tokenizer files the tokenizer tests compare against
phase "Release build" bash scripts/build.sh build
phase "Release tests" ctest --test-dir build --output-on-failure -j2
phase "ASan+UBSan build" bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DPREFT_SANITIZE=ON
phase "ASan+UBSan tests" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 -LE nocode
# every libFuzzer target for a few seconds each (about 80 s in all once
# build-fuzz/ is built; hours: scripts/fuzz.sh 3600, docs/RELIABILITY.md)
phase "fuzz (build and run)" bash scripts/fuzz.sh "${PREFT_FUZZ_SECONDS:-4}"
phase "TSan (build and tests)" bash scripts/test-tsan.sh build-tsan
echo "test.sh: all passed in $SECONDS s"
