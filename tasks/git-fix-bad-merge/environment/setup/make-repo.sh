#!/usr/bin/env bash
# Builds the task's repository: main and feature/cache both edit the same
# lines of settings.conf; the merge keeps main's file ("ours"), then one
# more commit on main.
set -euo pipefail
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$1
git init -q -b main "$repo"
cd "$repo"
git config user.name "Sam Ops"
git config user.email sam@example.com
n=0
commit() { n=$((n + 1)); GIT_AUTHOR_DATE="2024-05-1$n 09:00:00 +0000" GIT_COMMITTER_DATE="2024-05-1$n 09:00:00 +0000" git commit -q "$@"; }
cat > settings.conf <<'C'
# service settings
[server]
host = 0.0.0.0
port = 8080
workers = 2

[log]
level = info
C
echo "1.2" > VERSION
git add -A; commit -m "initial settings"
git checkout -q -b feature/cache
cat > settings.conf <<'C'
# service settings
[server]
host = 0.0.0.0
port = 8080
workers = 2
timeout = 30

[cache]
enabled = true
size_mb = 256

[log]
level = info
C
cat > cache.py <<'C'
CACHE = {}
C
git add -A; commit -m "add response cache"
git checkout -q main
cat > settings.conf <<'C'
# service settings
[server]
host = 127.0.0.1
port = 8080
workers = 4

[log]
level = warning
C
git add -A; commit -m "harden server defaults"
git merge -q --no-ff --no-commit feature/cache >/dev/null 2>&1 || true
git checkout --ours settings.conf
git add settings.conf
commit --no-edit -m "Merge branch 'feature/cache'"
echo "1.3" > VERSION
git add -A; commit -m "bump version to 1.3"
