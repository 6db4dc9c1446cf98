#!/usr/bin/env bash
# A release layout that was moved from /opt/shop to /srv/shop: absolute
# links still point into /opt/shop (now gone), one link points at a
# release that was deleted, and one chain loops.
set -euo pipefail
r=/srv/shop
mkdir -p $r/releases/2024.05.1/bin $r/releases/2024.06.0/bin $r/releases/2024.06.2/bin $r/common/config $r/common/uploads
for v in 2024.05.1 2024.06.0 2024.06.2; do
  printf '#!/bin/sh\necho "shop %s"\n' $v >$r/releases/$v/bin/shop
  chmod 755 $r/releases/$v/bin/shop
  echo "$v" >$r/releases/$v/VERSION
done
echo "db=shop" >$r/common/config/app.ini
echo "img" >$r/common/uploads/a.png
for v in 2024.05.1 2024.06.0 2024.06.2; do
  ln -s /opt/shop/common/config $r/releases/$v/config
  ln -s /opt/shop/common/uploads $r/releases/$v/uploads
done
ln -s /opt/shop/releases/2024.06.0 $r/current
ln -s releases/2024.06.1 $r/previous
ln -s loop-b $r/loop-a
ln -s loop-a $r/loop-b
ln -s current/bin/shop $r/shop
