#!/usr/bin/env bash
# Verifier: link targets (relative, resolving to the right places), no
# broken or absolute link left, real files untouched, the entry point works.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /srv/shop || fail "no /srv/shop"
link_to() { # link_to LINK WANT_RESOLVED
  [ -L "$1" ] || fail "$1 is not a symlink"
  t=$(readlink "$1")
  [[ $t != /* ]] || fail "$1 -> $t is absolute"
  [ "$(readlink -f "$1")" = "$2" ] || fail "$1 resolves to $(readlink -f "$1"), want $2"
}
for v in 2024.05.1 2024.06.0 2024.06.2; do
  link_to releases/$v/config /srv/shop/common/config
  link_to releases/$v/uploads /srv/shop/common/uploads
done
link_to current /srv/shop/releases/2024.06.2
link_to previous /srv/shop/releases/2024.06.0
[ ! -e loop-a ] && [ ! -L loop-a ] && [ ! -L loop-b ] || fail "loop links still there"
[ "$(./shop 2>&1)" = "shop 2024.06.2" ] || fail "./shop prints '$(./shop 2>&1)'"
broken=$(find . -type l ! -exec test -e {} \; -print | head -3)
[ -z "$broken" ] || fail "broken links: $broken"
abs=$(find . -type l -lname '/*' -print | head -3)
[ -z "$abs" ] || fail "absolute links: $abs"
[ "$(find . -type f | LC_ALL=C sort | xargs cat | md5sum | cut -c1-32)" = "$(cut -c1-32 /tests/files.md5)" ] || fail "real files changed"
[ "$(find . -type d | wc -l)" = 11 ] || fail "folders were added or removed"
# moving the tree keeps it working (relative links)
w=$(mktemp -d); cp -a /srv/shop "$w/moved"
[ "$("$w/moved/shop")" = "shop 2024.06.2" ] && [ -f "$w/moved/releases/2024.05.1/config/app.ini" ] || fail "the tree does not survive a move"
echo PASS
echo 1 >/logs/verifier/reward.txt
