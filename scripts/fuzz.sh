#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.c) with clang, ASan and UBSan
# into build-fuzz/, replays every kept crash input (fuzz/regressions/<target>/),
# then fuzzes each target for SECONDS (default 10) from its committed seed
# corpus (fuzz/corpus/<target>/) plus what earlier runs found
# (build-fuzz/corpus/<target>/). Fails on any crash, leak, timeout (> 5 s
# for one input) or memory blow-up (> 2048 MB), leaving the input in
# build-fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh 8              # the short run of the test command
#   scripts/fuzz.sh 3600           # long mode: an hour per target
#   scripts/fuzz.sh 600 jinja gguf # some targets only
# See docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
dir=build-fuzz
# -max_len per target: a little above the largest seed, so mutations can
# grow an input without drowning the run in huge ones.
declare -A max_len=([gguf]=4096 [hf_config]=4096 [jinja]=8192 [jsonl]=4096 [peft_config]=2048
                    [reft_config]=1024 [request]=4096 [safetensors]=16384 [tokenizer_json]=32768
                    [terminus_reply]=4096 [http_head]=12288 [toml]=2048 [yaml]=2048 [dockerfile]=2048 [apt_sources]=1024 [bert_config]=4096
                    [grammar]=2048)
targets=("$@")
# every fuzz/fuzz_<name>.c is a target; each needs its -max_len above
all=($(ls fuzz/fuzz_*.c | sed -n 's|^fuzz/fuzz_\(.*\)\.c$|\1|p' | grep -v '^util$' | sort))
for t in "${all[@]}"; do
  [ -f "fuzz/fuzz_$t.h" ] && ! grep -q LLVMFuzzerTestOneInput "fuzz/fuzz_$t.c" && continue
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: fuzz/fuzz_$t.c has no -max_len in scripts/fuzz.sh" >&2; exit 2; }
done
[ ${#targets[@]} -gt 0 ] || targets=($(for t in "${all[@]}"; do [ -n "${max_len[$t]:-}" ] && echo "$t"; done))

cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPREFT_FUZZ=ON \
  -DPREFT_WERROR=ON >/dev/null
cmake --build "$dir" --target fuzz_all -j"$(nproc)" >/dev/null

# Targets whose parser reads a file write each input to $TMPDIR: a tmpfs is
# 4-20x faster than a disk there.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
common=(-timeout=5 -rss_limit_mb=2048 -print_final_stats=1)
failed=0
printf '%-16s %10s %8s %8s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t'" >&2; exit 2; }
  bin=$dir/fuzz/fuzz_$t
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t" "$dir/logs"
  log=$dir/logs/$t.log
  # 1. the kept crash inputs must all pass
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    if ! "$bin" "${common[@]}" fuzz/regressions/"$t"/* >"$dir/logs/$t.regressions.log" 2>&1; then
      printf '%-16s %10s %8s %8s  %s\n' "$t" - - - "FAILED replaying fuzz/regressions/$t (see $dir/logs/$t.regressions.log)"
      failed=1
      continue
    fi
  fi
  # 2. fuzz for secs seconds
  rc=0
  "$bin" "$dir/corpus/$t" "fuzz/corpus/$t" "${common[@]}" -max_len="${max_len[$t]}" -max_total_time="$secs" \
    -artifact_prefix="$dir/artifacts/$t/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$dir/corpus/$t" | wc -l)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (rc $rc): $(grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" || true) -- see $log"
    failed=1
  fi
  printf '%-16s %10s %8s %8s  %s\n' "$t" "${execs:--}" "${rate:--}" "$corpus" "$result"
done
exit $failed
