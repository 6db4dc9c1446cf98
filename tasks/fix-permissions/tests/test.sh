#!/usr/bin/env bash
# Verifier: every path's mode (with special bits) is what the policy says,
# and the tree is otherwise unchanged (same paths, same contents).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /srv/webapp || fail "no /srv/webapp"
while IFS=' ' read -r want path; do
  [ -e "$path" ] || fail "$path is missing"
  got=$(stat -c %a "$path")
  [ "$got" = "$want" ] || fail "$path has mode $got, want $want"
done <<'M'
755 .
755 public
755 public/css
755 public/img
755 public/old files
755 bin
755 config
700 secrets
1733 logs
644 POLICY.txt
644 public/index.html
644 public/css/site.css
644 public/img/logo.gif
644 public/old files/page one.html
755 bin/serve
755 bin/migrate.sh
640 config/app.conf
640 config/logging.conf
644 config/README
600 secrets/api.key
600 secrets/db.password
644 logs/app.log
M
[ "$(find . | LC_ALL=C sort | md5sum | cut -c1-32)" = "$(cut -c1-32 /tests/paths.md5)" ] || fail "paths were added or removed"
[ "$(find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | md5sum | cut -c1-32)" = "$(cut -c1-32 /tests/contents.md5)" ] || fail "file contents changed"
[ -z "$(find . -perm -o+w ! -path ./logs)" ] || fail "world-writable paths remain"
echo PASS
echo 1 >/logs/verifier/reward.txt
