#!/bin/bash
# backup.sh SOURCE_DIR DEST_DIR: numbered tar.gz backups, keeps the last 3.
src=$1
dest=$2
mkdir -p $dest
last=$(ls $dest | grep backup- | sort | tail -1 | sed 's/backup-//; s/.tar.gz//')
n=$((last + 1))
out=$dest/backup-$n.tar.gz
cd $src
tar -czf $out .
echo $out
# rotate: keep 3
count=$(ls $dest | wc -l)
if [ $count -gt 3 ]; then
  ls $dest | head -n $((count - 3)) | while read f; do rm $dest/$f; done
fi
