#!/usr/bin/env bash
# Reference solution: quoting, numeric max of N, rotation by number,
# errors checked.
set -euo pipefail
cat >/app/backup.sh <<'SH'
#!/bin/bash
# backup.sh SOURCE_DIR DEST_DIR: numbered tar.gz backups, keeps the last 3.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: backup.sh SOURCE_DIR DEST_DIR" >&2
  exit 2
fi
src=$1
dest=$2
if [ ! -d "$src" ]; then
  echo "backup.sh: $src is not a directory" >&2
  exit 1
fi
mkdir -p "$dest"
last=0
for f in "$dest"/backup-*.tar.gz; do
  [ -e "$f" ] || continue
  n=${f##*/backup-}
  n=${n%.tar.gz}
  [[ $n =~ ^[0-9]+$ ]] || continue
  if ((10#$n > last)); then last=$((10#$n)); fi
done
out="$dest/backup-$((last + 1)).tar.gz"
tar -C "$src" -czf "$out" .
echo "$out"
# rotate: keep the 3 highest numbers
find "$dest" -maxdepth 1 -name 'backup-*.tar.gz' -printf '%f\n' |
  sed -n 's/^backup-\([0-9][0-9]*\)\.tar\.gz$/\1/p' | sort -n | head -n -3 |
  while read -r k; do rm -f -- "$dest/backup-$k.tar.gz"; done
SH
chmod +x /app/backup.sh
