#!/usr/bin/env bash
# libpreft.so exports exactly the public API: every defined dynamic symbol
# carries the preft_ prefix and is a function declared with PREFT_API in
# include/preft/*.h, and every such function is exported. Also: every
# top-level function declaration of the public headers is marked PREFT_API,
# and each header compiles on its own against include/ alone.
# usage: check_exports.sh LIBPREFT_SO INCLUDE_DIR CC
set -euo pipefail
lib=$1 inc=$2 cc=$3
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u >"$tmp/exported"
grep -h 'PREFT_API' "$inc"/preft/*.h | grep -v '#define' | grep -o 'preft_[a-z0-9_]*(' | tr -d '(' |
  sort -u >"$tmp/declared"

if [[ ! -s "$tmp/declared" ]]; then
  echo "FAIL: found no PREFT_API declarations in $inc/preft"
  exit 1
fi
if grep -v '^preft_' "$tmp/exported" >"$tmp/foreign"; then
  echo "FAIL: libpreft.so exports symbols without the preft_ prefix:"
  cat "$tmp/foreign"
  fail=1
fi
if comm -23 "$tmp/exported" "$tmp/declared" | grep -q .; then
  echo "FAIL: exported but not declared PREFT_API in include/preft:"
  comm -23 "$tmp/exported" "$tmp/declared"
  fail=1
fi
if comm -13 "$tmp/exported" "$tmp/declared" | grep -q .; then
  echo "FAIL: declared in include/preft but not exported by libpreft.so:"
  comm -13 "$tmp/exported" "$tmp/declared"
  fail=1
fi

# A top-level declaration of a preft_ function without PREFT_API would be
# hidden in the shared library.
if grep -nE '^(const |unsigned )?[a-z_0-9]+ \**preft_[a-z0-9_]+\(' "$inc"/preft/*.h; then
  echo "FAIL: the declarations above lack PREFT_API"
  fail=1
fi

for h in "$inc"/preft/*.h; do
  if ! echo "#include <preft/$(basename "$h")>" | "$cc" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I "$inc" -x c - 2>"$tmp/err"; then
    echo "FAIL: preft/$(basename "$h") does not compile alone against include/:"
    cat "$tmp/err"
    fail=1
  fi
done

[[ $fail -eq 0 ]] && echo "ok: $(wc -l <"$tmp/declared") public functions, all exported, nothing else"
exit $fail
