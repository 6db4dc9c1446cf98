#!/usr/bin/env bash
# Reference solution: find with -newermt for the cut-off, note the parent
# folders of what was deleted, prune those that ended up empty.
set -euo pipefail
cd /app/storage
export TZ=UTC
find . -type f ! -newermt '2024-03-01 00:00:00' \( -name '*.tmp' -o -path '*/cache/*' \) -print0 >/tmp/old
# the file's own mtime must be strictly before the cut-off (-newermt is >)
: >/tmp/dirs
while IFS= read -r -d '' f; do
  if [ "$(stat -c %Y "$f")" -lt "$(date -d '2024-03-01 00:00:00' +%s)" ]; then
    dirname "$f" >>/tmp/dirs
    rm -f -- "$f"
  fi
done </tmp/old
# prune folders emptied by the deletions, deepest first, walking up
sort -u /tmp/dirs | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | while IFS= read -r d; do
  while [ "$d" != . ] && [ -d "$d" ] && [ -z "$(ls -A "$d")" ]; do
    rmdir -- "$d"
    d=$(dirname "$d")
  done
done
find . -type f -size +1048575c -printf '%s %P\n' | LC_ALL=C sort -k1,1nr -k2 >/app/large-files.txt
cat /app/large-files.txt
