#!/usr/bin/env bash
# Reference solution: per patch, strip CRs, find the -p level that
# applies (dry run), skip a patch that is already in (it applies reversed).
set -euo pipefail
cd /app/src
for p in /app/patches/*.patch; do
  tr -d '\r' <"$p" >/tmp/p.patch
  done_=0
  for lvl in 1 0; do
    if patch -p$lvl -R --dry-run -s -f </tmp/p.patch >/dev/null 2>&1; then
      echo "$(basename "$p"): already applied"; done_=1; break
    fi
    if patch -p$lvl --dry-run -s -f -N </tmp/p.patch >/dev/null 2>&1; then
      patch -p$lvl -s -f -N --no-backup-if-mismatch </tmp/p.patch
      echo "$(basename "$p"): applied with -p$lvl"; done_=1; break
    fi
  done
  [ $done_ = 1 ] || { echo "$(basename "$p") does not apply" >&2; exit 1; }
done
find . \( -name '*.orig' -o -name '*.rej' -o -name '*~' \) -delete
python3 stats_cli.py 1 2 3 10
