#!/usr/bin/env bash
# Verifier: (re)starts the service with the agent's start.sh and probes it
# on loopback: health, a note with the token, refusal without it, the token
# read from the file at request time, the pid file, the log.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f /app/service/server.log ] && tail -5 /app/service/server.log; exit 0; }
S=/app/service
[ -f $S/start.sh ] || fail "no $S/start.sh"
# a fresh start: stop an instance the agent may have left running
if [ -f $S/server.pid ]; then
  old=$(cat $S/server.pid); kill "$old" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
rm -f $S/server.pid
start=$(date +%s)
timeout 15 bash $S/start.sh || fail "start.sh failed"
[ $(($(date +%s) - start)) -le 12 ] || fail "start.sh took too long"
[ -s $S/server.pid ] || fail "no pid in $S/server.pid"
pid=$(cat $S/server.pid)
kill -0 "$pid" 2>/dev/null || fail "pid $pid is not running after start.sh returned"
tr '\0' ' ' </proc/"$pid"/cmdline | grep -q notes_server.py || fail "pid $pid is not notes_server.py"
# start.sh returned: the service must already answer
[ "$(curl -s --max-time 3 http://127.0.0.1:8357/health)" = ok ] || fail "/health did not answer ok on 127.0.0.1:8357"
tok=$(cat $S/token.txt)
body=$(curl -s --max-time 3 -H "X-Token: $tok" http://127.0.0.1:8357/notes/todo)
[ "$body" = "$(cat /app/data/notes/todo.txt)" ] || fail "/notes/todo returned [$body]"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:8357/notes/todo)
[ "$code" = 401 ] || fail "a request without the token got $code, not 401"
# the token is read from token_file on each request: rotate it
echo "rotated-$RANDOM" >$S/token.txt
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 -H "X-Token: $tok" http://127.0.0.1:8357/notes/work)
[ "$code" = 401 ] || fail "the old token still works after token.txt changed (got $code)"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 -H "X-Token: $(cat $S/token.txt)" http://127.0.0.1:8357/notes/work)
[ "$code" = 200 ] || fail "the new token is refused (got $code)"
# loopback only: the socket must be bound to 127.0.0.1
grep -q ':20A5 ' /proc/net/tcp && awk 'NR > 1 && $2 ~ /:20A5$/ && $4 == "0A" {print $2}' /proc/net/tcp | grep -qv '^0100007F:' && fail "listening on a non-loopback address"
grep -q 'GET /health' $S/server.log || fail "requests are not logged to $S/server.log"
echo PASS
echo 1 >/logs/verifier/reward.txt
