#!/usr/bin/env bash
# End-to-end: three `preft serve` replicas behind HAProxy, configured by
# `preft route`, on loopback. Affinity: every request for one adapter lands
# on one replica while all are healthy (each replica's /metrics counts what
# it served), the header names the adapter when the body does not, and
# adapters spread over more than one replica. Failover: one replica is
# killed (SIGKILL) with requests in flight and more arriving; every request
# still gets 200 (HAProxy retries what never reached a replica, and what a
# dying replica dropped without answering, on another one: 400-token
# answers are in flight when it dies), HAProxy takes
# the replica out, only its adapters move, and the others stay where they
# were (consistent hashing). Bad replica URLs are usage errors.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
command -v haproxy >/dev/null || { echo "haproxy is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
pids=()
hap=
cleanup() {
  [ -n "$hap" ] && kill -KILL "$hap" 2>/dev/null
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ $fails -gt 0 ] && for l in "$tmp"/*.log; do echo "== $l"; tail -30 "$l"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
model=$data/models/llama-gqa-rope3
names=(ada bob cyd dan eve fay gus hal)
for i in "${!names[@]}"; do
  "$bin" make-adapter -m "$model" -o "$tmp/adapters/${names[$i]}" --rank 4 --seed "$i" >/dev/null || exit 1
done

# ---- preft route: the configuration, and its errors ------------------------------------
"$bin" route --replicas https://127.0.0.1:1 2>"$tmp/err"
check "an https replica is a usage error (2)" test $? -eq 2
check "  naming the replica" grep -q "https://127.0.0.1:1" "$tmp/err"
"$bin" route --replicas http://127.0.0.1:1 http://127.0.0.1:1/ 2>/dev/null
check "a repeated replica is a usage error" test $? -eq 2
"$bin" route --replicas "http://127.0.0.1:1
frontend x" 2>/dev/null
check "a newline in a replica URL (config injection) is refused" test $? -eq 2

# ---- three replicas -------------------------------------------------------------------
urls=()
for r in 0 1 2; do
  start_server "$tmp/replica$r.log" -m "$model" --adapters "$tmp/adapters" --threads 1 || exit 1
  pids[r]=$SRV_PID
  urls[r]=$SRV_URL
  SRV_PID=
done
served() { # requests replica $1 finished ok (0 when it does not answer)
  local n
  n=$(curl -s "${urls[$1]}/metrics" | awk '$1 == "preft_requests_total{status=\"ok\"}" { print $2 }')
  echo "${n:-0}"
}

# HAProxy on a free port (a taken one: try another)
for try in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  sport=$((port + 1))
  "$bin" route --replicas "${urls[@]}" --bind 127.0.0.1 --port $port --check-ms 200 --fall 2 --rise 1 \
    --stats 127.0.0.1:$sport -o "$tmp/haproxy.cfg" || exit 1
  haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
  hap=$!
  sleep 0.3
  kill -0 $hap 2>/dev/null && break
  hap=
done
check "haproxy -c accepts the configuration" haproxy -c -q -f "$tmp/haproxy.cfg"
[ -n "$hap" ] || { echo "haproxy did not start"; cat "$tmp/haproxy.log"; exit 1; }
R=http://127.0.0.1:$port
up() { # number of replicas HAProxy sees UP
  curl -s "http://127.0.0.1:$sport/;csv" | awk -F, '$1 == "replicas" && $2 ~ /^replica/ && $18 == "UP"' | wc -l
}
wait_up() { local want=$1 d=$((SECONDS + 20 * scale)); while [ $SECONDS -lt $d ]; do [ "$(up)" = "$want" ] && return 0; sleep 0.1; done; return 1; }
check "HAProxy sees the three replicas UP (health checks on /health)" wait_up 3

ask() { # ask ADAPTER [curl args]: one completion through the router; prints the HTTP status
  curl -s -o /dev/null -w '%{http_code}\n' "$R/v1/completions" \
    -d "{\"model\":\"$1\",\"prompt\":[1,2,3],\"max_tokens\":2,\"temperature\":0}"
}
declare -A home
for a in "${names[@]}"; do
  before=($(served 0) $(served 1) $(served 2))
  codes=
  for k in 1 2 3 4; do codes="$codes$(ask "$a")"; done
  after=($(served 0) $(served 1) $(served 2))
  d=($((after[0] - before[0])) $((after[1] - before[1])) $((after[2] - before[2])))
  where=
  for r in 0 1 2; do [ "${d[r]}" -eq 4 ] && where=$r; done
  check "adapter $a: 4 requests, all 200, all on one replica (served ${d[*]})" \
    test "$codes" = 200200200200 -a -n "$where" -a $((d[0] + d[1] + d[2])) -eq 4
  home[$a]=$where
done
used=$(printf '%s\n' "${home[@]}" | sort -u | wc -l)
check "the 8 adapters spread over more than one replica ($used)" test "$used" -ge 2

# the header names the adapter when the body does not
h=${home[cyd]}
before=$(served "$h")
code=$(curl -s -o /dev/null -w '%{http_code}' "$R/v1/completions" -H "X-Preft-Adapter: cyd" \
  -d '{"prompt":[1,2,3],"max_tokens":2,"temperature":0}')
check "a body without \"model\" is routed by X-Preft-Adapter to cyd's replica" \
  test "$code" = 200 -a "$(served "$h")" -eq $((before + 1))

# ---- failover -------------------------------------------------------------------------
# the replica with the most adapters dies while requests are in flight
victim=$(printf '%s\n' "${home[@]}" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
jobs_=()
for i in $(seq 1 24); do
  a=${names[$((i % ${#names[@]}))]}
  curl -s -o /dev/null -w '%{http_code}\n' "$R/v1/completions" \
    -d "{\"model\":\"$a\",\"prompt\":[1,2,3],\"max_tokens\":400,\"temperature\":0,\"ignore_eos\":true}" \
    >"$tmp/code.$i" &
  jobs_+=($!)
done
running() { # sequences replica $1 is prefilling or decoding now (0 when it does not answer)
  local n
  n=$(curl -s "${urls[$1]}/metrics" | awk '$1 == "preft_running_sequences" { print $2 }')
  echo "${n:-0}"
}
# kill it while it is generating (on a fast machine 400 tokens take a fraction of a second,
# so a fixed delay could let every answer finish first)
for try in $(seq 1 200); do
  busy=$(running "$victim")
  [ "$busy" -ge 1 ] && break
  sleep 0.01
done
kill -KILL "${pids[$victim]}"
check "the victim replica was generating when it was killed ($busy sequences)" test "$busy" -ge 1
for i in $(seq 25 40); do # more arrive before HAProxy has noticed
  a=${names[$((i % ${#names[@]}))]}
  ask "$a" >"$tmp/code.$i" &
  jobs_+=($!)
done
wait_jobs "${jobs_[@]}"
bad=$(cat "$tmp"/code.* | grep -vc '^200$')
check "every request around the kill got 200 ($bad did not: $(cat "$tmp"/code.* | sort | uniq -c | tr -s ' \n' ' '))" test "$bad" -eq 0
check "HAProxy took the dead replica out" wait_up 2
# HAProxy's log marks a request it sent again to another replica with '+'
retried=$(grep -c ' [0-9]*/[0-9]*/[0-9]*/[0-9]*/+[0-9]* ' "$tmp/haproxy.log")
check "some requests were retried on another replica ($retried)" test "$retried" -ge 1
moved_ok=1 stayed_ok=1
for a in "${names[@]}"; do
  before=($(served 0) $(served 1) $(served 2))
  [ "$(ask "$a")" = 200 ] || moved_ok=0
  for r in 0 1 2; do
    [ "$r" = "$victim" ] && continue
    now=$(served $r)
    if [ "$now" -gt "${before[r]:-0}" ]; then
      if [ "${home[$a]}" = "$victim" ]; then home[$a]=$r; elif [ "${home[$a]}" != "$r" ]; then stayed_ok=0; fi
    fi
  done
done
check "after the kill, every adapter is answered by a live replica" test $moved_ok -eq 1
check "adapters of the live replicas stayed where they were (consistent hashing)" test $stayed_ok -eq 1
exit $((fails > 0))
