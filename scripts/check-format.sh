#!/usr/bin/env bash
# Fails when a tracked C file differs from what clang-format makes of it with
# the repository's .clang-format. `scripts/check-format.sh --fix` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
fix=0
[ "${1:-}" = "--fix" ] && fix=1
bad=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  if [ $fix = 1 ]; then
    clang-format -i --style=file "$f"
  elif ! clang-format --style=file "$f" | cmp -s - "$f"; then
    bad+=("$f")
  fi
done < <(git ls-files --cached --others --exclude-standard '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} file(s) not formatted (run scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: every C file is formatted ($(clang-format --version | grep -o 'version [0-9.]*'))"
