#!/usr/bin/env bash
# Reference solution: settings.conf with both sides, committed on top.
set -euo pipefail
cd /app/repo
git checkout -q main
cat > settings.conf <<'C'
# service settings
[server]
host = 127.0.0.1
port = 8080
workers = 4
timeout = 30

[cache]
enabled = true
size_mb = 256

[log]
level = warning
C
git add settings.conf
git -c user.name=Oracle -c user.email=oracle@example.com commit -q -m "restore feature/cache settings lost in the merge"
