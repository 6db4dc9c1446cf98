#!/usr/bin/env bash
# Reference solution.
set -euo pipefail
cat >/app/service.env <<'ENV'
# Environment of the service, sourced by /app/bin/launch with set -a.
APP_ENV=staging
APP_PORT=${APP_PORT:-9090}
DB_URL='postgres://svc:p@ss word!@db.internal:5432/app?sslmode=require'
APP_LOG_DIR=/var/log/app/$APP_ENV
PATH=/app/tools:$PATH
APP_FEATURES=search,export
unset APP_DEBUG
ENV
/app/bin/launch --print-env
