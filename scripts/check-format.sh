#!/usr/bin/env bash
# Fails when a tracked C file differs from what clang-format makes of it with
# the repository's .clang-format. `scripts/check-format.sh --fix` rewrites them.
# The files go to clang-format in batches, one batch per core at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
fix=0
[ "${1:-}" = "--fix" ] && fix=1
files=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] && files+=("$f") # tracked but deleted in the work tree: nothing to check
done < <(git ls-files -z --cached --others --exclude-standard '*.c' '*.h')
batches() { printf '%s\0' "${files[@]}" | xargs -0 -r -n 32 -P "$(nproc)" clang-format --style=file "$@"; }
if [ $fix = 1 ]; then
  batches -i
  exit 0
fi
# --dry-run --Werror names each file it would change: "FILE:LINE:COL: error: code should be clang-formatted"
rc=0
out=$(batches --dry-run --Werror 2>&1) || rc=$?
mapfile -t bad < <(sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' <<<"$out" | sort -u)
if [ $rc -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
  echo "check-format: clang-format failed:" >&2
  printf '%s\n' "$out" | head -20 >&2
  exit 1
fi
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} file(s) not formatted (run scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: every C file is formatted ($(clang-format --version | grep -o 'version [0-9.]*'))"
