#!/usr/bin/env bash
# The README's test command: installs what is missing, builds preft three
# times and runs the CTest suite on each: Release (every test), Debug with
# AddressSanitizer + UndefinedBehaviorSanitizer at -O1 (every test that
# runs preft's code: all but label `nocode`, see tests/CMakeLists.txt), and Debug with
# ThreadSanitizer (the concurrency tests only: scripts/test-tsan.sh); and
# each libFuzzer target for a short fixed time (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/check-format.sh      # every C file as clang-format makes it
bash scripts/fetch-test-data.sh  # real tokenizer files the tokenizer tests compare against
bash scripts/build.sh build
ctest --test-dir build --output-on-failure -j2
bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DPREFT_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 -LE nocode
# every libFuzzer target for a few seconds each (about 80 s in all once
# build-fuzz/ is built; hours: scripts/fuzz.sh 3600, docs/RELIABILITY.md)
bash scripts/fuzz.sh "${PREFT_FUZZ_SECONDS:-4}"
bash scripts/test-tsan.sh build-tsan
