#!/usr/bin/env bash
# Verifier: on a copy of /app with pristine sources: clean parallel builds
# (5 times), then incremental builds after each kind of edit, then a no-op.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
[ -f /app/Makefile ] || fail "no /app/Makefile"
w=$(mktemp -d)
cp -a /app/. "$w/"
cd "$w"
# the sources and VERSION as shipped (the task forbids editing them)
for f in main.c util.c util.h VERSION table.c.in; do cp "/tests/src/$f" "$f"; done
for i in 1 2 3 4 5; do
  make clean >/dev/null 2>&1
  make -j8 >build.log 2>&1 || { tail -5 build.log; fail "clean make -j8 failed (round $i)"; }
  [ "$(./app --version)" = "app 2.4.1" ] || fail "--version prints '$(./app --version)'"
  [ "$(./app)" = "hello 55" ] || fail "./app prints '$(./app)'"
done
make -q || fail "make -q says something is out of date right after a build"
bump() { sleep 0.3; "$@"; make >build.log 2>&1 || { tail -5 build.log; fail "make after an edit failed"; }; }
bump sh -c 'echo 2.5.0 > VERSION'
[ "$(./app --version)" = "app 2.5.0" ] || fail "VERSION change not picked up"
bump sed -i 's/"hello"/"howdy"/' util.h
[ "$(./app)" = "howdy 55" ] || fail "util.h change not picked up"
bump sed -i 's/return a + b;/return a + 2 * b;/' util.c
[ "$(./app)" = "howdy 110" ] || fail "util.c change not picked up"
bump sed -i 's/table\[\] = {@VALUES@}/table[] = {@VALUES@, 45}/' table.c.in
[ "$(./app)" = "howdy 200" ] || fail "table.c.in change not picked up"
bump sed -i 's/"app %s\\n"/"app version %s\\n"/' main.c
[ "$(./app --version)" = "app version 2.5.0" ] || fail "main.c change not picked up"
make -q || fail "make -q says something is out of date after the incremental builds"
echo PASS
echo 1 >/logs/verifier/reward.txt
