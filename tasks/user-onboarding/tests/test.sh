#!/usr/bin/env bash
# Verifier: the account databases (getent) and the folders say what the
# request asked for; a file made by ana in the shared folder belongs to
# the group.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
field() { getent "$1" "$2" | cut -d: -f"$3"; }
[ "$(field group analytics 3)" = 4200 ] || fail "group analytics with GID 4200"
[ "$(getent passwd ana | cut -d: -f3-7)" = "4201:4200:Ana Silva:/home/ana:/bin/bash" ] || fail "ana: $(getent passwd ana)"
id -nG ana | tr ' ' '\n' | grep -qx adm || fail "ana is not in adm"
[ "$(field shadow ana 2)" = '$6$Rk3Jp9Qe$5cxVn2T0rZ1y1O1nD2mF0bBq6JmQmVvS6y2qKXh4b8m2Qm0q3bTj7m5bS8y1L7i7U0eW4hFJp1Zq8mN2cY3aQ0' ] ||
  fail "ana's password hash is not the requested one"
[ "$(getent passwd ben | cut -d: -f3-7)" = "4202:4200:Ben Okafor:/home/ben:/bin/bash" ] || fail "ben: $(getent passwd ben)"
[[ $(field shadow ben 2) == '!'* ]] || fail "ben's password is not locked"
etl=$(getent passwd etl) || fail "no user etl"
IFS=: read -r _ _ uid gid _ home shell <<<"$etl"
[ "$uid" -lt 1000 ] && [ "$uid" -gt 0 ] || fail "etl's UID $uid is not a system UID"
[ "$gid" = 4200 ] && [ "$home" = /var/lib/etl ] && [ "$shell" = /usr/sbin/nologin ] || fail "etl: $etl"
own() { [ "$(stat -c '%U:%G %a' "$1" 2>/dev/null)" = "$2" ] || fail "$1 is '$(stat -c '%U:%G %a' "$1" 2>&1)', want '$2'"; }
own /home/ana "ana:analytics 750"
own /home/ben "ben:analytics 750"
own /var/lib/etl "etl:analytics 700"
own /srv/analytics "root:analytics 2770"
[ -f /home/ana/.profile ] && [ "$(stat -c %U /home/ana/.profile)" = ana ] || fail "/home/ana was not made from /etc/skel"
# setgid at work: a file made there by ana acting with primary group adm
# (analytics only as a supplementary group) still belongs to analytics
setpriv --reuid=4201 --regid=4 --groups=4200 touch /srv/analytics/probe 2>/dev/null || fail "ana cannot write in /srv/analytics"
[ "$(stat -c %G /srv/analytics/probe)" = analytics ] || fail "new files in /srv/analytics do not belong to analytics"
rm -f /srv/analytics/probe
echo PASS
echo 1 >/logs/verifier/reward.txt
