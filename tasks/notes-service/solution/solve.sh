#!/usr/bin/env bash
# Reference solution: correct notes.ini, a start script that daemonizes
# the server with setsid/nohup and waits for /health.
set -euo pipefail
cd /app/service
cat > notes.ini <<'INI'
; settings of notes_server.py
[server]
bind = 127.0.0.1
port = 8357
data_dir = /app/data/notes
token_file = /app/service/token.txt
log_file = /app/service/server.log
INI
cat > start.sh <<'SH'
#!/usr/bin/env bash
# Starts notes_server.py in the background; waits until it answers.
cd /app/service
setsid nohup python3 /app/service/notes_server.py --config /app/service/notes.ini \
  >>/app/service/server.log 2>&1 </dev/null &
echo $! >/app/service/server.pid
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8357/health >/dev/null 2>&1 && exit 0
  kill -0 "$(cat /app/service/server.pid)" 2>/dev/null || break
  sleep 0.1
done
echo "notes_server did not come up; see /app/service/server.log" >&2
exit 1
SH
chmod +x start.sh
bash start.sh
curl -sf http://127.0.0.1:8357/health
# stop it again: the verifier starts the service itself with start.sh, and
# nothing of the oracle should outlive its run
kill "$(cat /app/service/server.pid)"
