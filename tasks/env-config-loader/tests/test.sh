#!/usr/bin/env bash
# Verifier: sources the agent's service.env the way the launcher does, in
# clean environments (env -i), with and without APP_PORT/APP_DEBUG set.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
f=/app/service.env
[ -f $f ] || fail "no $f"
view() { # view [NAME=VALUE...]: what a service started that way sees
  env -i HOME=/root PATH=/opt/other/bin:/usr/bin:/bin "$@" bash -c '
    set -a; . /app/service.env; set +a
    for v in APP_ENV APP_PORT DB_URL APP_LOG_DIR APP_FEATURES APP_DEBUG; do
      if [ -n "${!v+x}" ]; then printf "%s=%s\n" "$v" "${!v}"; else printf "%s unset\n" "$v"; fi
    done
    printf "PATH=%s\n" "$PATH"; printf "greet=%s\n" "$(greet)"
    env | grep -c "^DB_URL=" | sed "s/^/exported_db=/"' 2>&1
}
want='APP_ENV=staging
APP_PORT=9090
DB_URL=postgres://svc:p@ss word!@db.internal:5432/app?sslmode=require
APP_LOG_DIR=/var/log/app/staging
APP_FEATURES=search,export
APP_DEBUG unset
PATH=/app/tools:/opt/other/bin:/usr/bin:/bin
greet=hello from /app/tools
exported_db=1'
got=$(view); [ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got"); fail "plain environment"; }
got=$(view APP_PORT=7000 APP_DEBUG=1); [ "$got" = "${want/APP_PORT=9090/APP_PORT=7000}" ] || { diff <(echo "${want/APP_PORT=9090/APP_PORT=7000}") <(echo "$got"); fail "with APP_PORT and APP_DEBUG set"; }
# APP_LOG_DIR follows APP_ENV
sed -E 's/^([[:space:]]*(export[[:space:]]+)?APP_ENV=).*/\1prod/' $f >/tmp/env2
grep -q 'APP_ENV=prod' /tmp/env2 || fail "no APP_ENV= line"
[ "$(env -i PATH=/usr/bin:/bin bash -c 'set -a; . /tmp/env2; echo "$APP_LOG_DIR"')" = /var/log/app/prod ] || fail "APP_LOG_DIR is not derived from APP_ENV"
echo PASS
echo 1 >/logs/verifier/reward.txt
