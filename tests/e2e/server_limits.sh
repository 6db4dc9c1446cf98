#!/usr/bin/env bash
# End-to-end: `preft serve` against slow, idle and hostile clients, over
# loopback with bash's /dev/tcp and curl. A client that does not finish its
# headers (or body) in time gets a 408 JSON error and is disconnected; an
# idle keep-alive connection is closed; with more slow connections than
# --max-connections a normal request is still answered (the slowest reader
# is evicted); heads too large for the server get JSON 414 / 431; a second
# SIGTERM ends a drain at once; runtime adapter loading is off unless
# allowed and stays inside --adapter-root.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
ad=$data/adapters
port_of() { echo "${SRV_URL##*:}"; }
# read_all FD SECONDS: what the server sends on FD until it closes (or the bound passes)
read_all() { timeout "$2" cat <&"$1"; }
# json_error_of TEXT STATUS: the raw response has STATUS and an OpenAI error body
json_error_of() {
  local status=$1 text=$2
  [ "$(printf '%s' "$text" | head -1 | cut -d' ' -f2)" = "$status" ] &&
    printf '%s' "$text" | sed '1,/^\r*$/d' | jq -e '.error | has("message") and has("type") and has("code")' >/dev/null
}

start_server "$tmp/log" -m "$model" --threads 1 --max-connections 8 --header-timeout 2 --body-timeout 2 \
  --idle-timeout 2 || exit 1
p=$(port_of)

# ---- deadlines -------------------------------------------------------------------------------
exec {fd}<>"/dev/tcp/127.0.0.1/$p"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&"$fd" # never finishes its headers
out=$(read_all "$fd" 20)
exec {fd}<&-
check "headers not finished in time: 408 with an OpenAI error, then closed" json_error_of 408 "$out"
exec {fd}<>"/dev/tcp/127.0.0.1/$p"
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt":' >&"$fd"
out=$(read_all "$fd" 20)
exec {fd}<&-
check "body not finished in time: 408 with an OpenAI error" json_error_of 408 "$out"
exec {fd}<>"/dev/tcp/127.0.0.1/$p"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
out=$(read_all "$fd" 20)
rc=$?
exec {fd}<&-
check "an idle keep-alive connection is closed by the server (not the 20 s bound)" test "$rc" -eq 0
check "... after answering its request" bash -c "printf '%s' '$out' | grep -q '\"status\":\"ok\"'"

# ---- more slow connections than --max-connections ---------------------------------------------
slow=()
for i in $(seq 1 20); do
  exec {s}<>"/dev/tcp/127.0.0.1/$p"
  printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\n' >&"$s"
  slow+=("$s")
done
code=$(curl -s -m 10 -o "$tmp/r" -w '%{http_code}' "$SRV_URL/v1/completions" -d '{"prompt":[1,2,3],"max_tokens":2}')
check "20 slow connections over a budget of 8: a normal request is answered" test "$code" = 200
for s in "${slow[@]}"; do exec {s}<&-; done
check "/metrics counts the 408s" test "$(metric 'preft_http_requests_total{code="408"}')" -ge 10

# ---- request heads too large -------------------------------------------------------------------
long=$(head -c 9000 /dev/zero | tr '\0' a)
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "$SRV_URL/v1/$long")
check "a 9000-byte URL: 414 with an OpenAI error" test "$code:$(jq -r .error.code "$tmp/e")" = "414:uri_too_long"
hdrs=()
for i in $(seq 1 5); do hdrs+=(-H "X-Pad-$i: $long"); done
code=$(curl -s -o "$tmp/e" -w '%{http_code}' "${hdrs[@]}" "$SRV_URL/health")
check "45 kB of headers: 431 with an OpenAI error" test "$code:$(jq -r .error.code "$tmp/e")" = "431:headers_too_large"

# ---- runtime adapters are off by default --------------------------------------------------------
r=$(post /v1/load_lora_adapter "{\"lora_name\":\"x\",\"lora_path\":\"$ad/lora-qv-r4\"}")
check "load_lora_adapter without --allow-runtime-adapters: 404" test "${r##*$'\n'}" = 404
r=$(post /v1/unload_lora_adapter '{"lora_name":"x"}')
check "unload_lora_adapter without --allow-runtime-adapters: 404" test "${r##*$'\n'}" = 404

stop_server
check "SIGTERM: exit 0" test $? -eq 0

# ---- a second SIGTERM ends the drain at once ---------------------------------------------------
start_server "$tmp/log2" -m "$model" --threads 1 --drain-timeout 600 --body-timeout 600 || exit 1
exec {fd}<>"/dev/tcp/127.0.0.1/$(port_of)"
# a request whose body never finishes keeps the drain waiting
printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{' >&"$fd"
check "the slow request is in" wait_for metric_is preft_http_requests_in_flight 2
kill -TERM "$SRV_PID"
check "first SIGTERM: draining" wait_for grep -q draining "$tmp/log2"
kill -TERM "$SRV_PID"
exited() { ! kill -0 "$SRV_PID" 2>/dev/null; }
check "second SIGTERM: the server exits without waiting for the drain" wait_for exited
rc=0
wait "$SRV_PID" || rc=$?
SRV_PID=
check "... with status 128 + SIGTERM" test "$rc" -eq 143
exec {fd}<&-

# ---- runtime adapters, allowed inside a root ------------------------------------------------------
root=$tmp/root
mkdir -p "$root/sub"
cp -r "$ad/lora-qv-r4" "$root/good"
cp -r "$ad/bad/lora-wrong-shape" "$root/broken"
ln -s "$ad/loreft-f3l3" "$root/escape"
check "--allow-runtime-adapters without a root: usage error" bash -c "! '$bin' serve -m '$model' --allow-runtime-adapters 2>/dev/null"
start_server "$tmp/log3" -m "$model" --threads 1 --allow-runtime-adapters --adapter-root "$root" || exit 1
r=$(post /v1/load_lora_adapter '{"lora_name":"g","lora_path":"good"}')
check "a path relative to the root loads: 200" test "${r##*$'\n'}" = 200
r=$(post /v1/load_lora_adapter "{\"lora_name\":\"g2\",\"lora_path\":\"$root/good\"}")
check "an absolute path inside the root loads: 200" test "${r##*$'\n'}" = 200
refused() { # refused NAME LORA_PATH: 400 naming lora_path, and the message does not show the root
  local r; r=$(post /v1/load_lora_adapter "{\"lora_name\":\"$1\",\"lora_path\":\"$2\"}")
  local b=${r%$'\n'*}
  [ "${r##*$'\n'}" = 400 ] && [ "$(echo "$b" | jq -r .error.param)" = lora_path ] &&
    ! echo "$b" | grep -q "$root"
}
check "a path outside the root: 400, no host path in the error" refused x1 "$ad/lora-qv-r4"
check "'..' out of the root: 400" refused x2 "../root/good"
check "a symbolic link out of the root: 400" refused x3 escape
check "a missing directory: 400 (the same answer as outside)" refused x4 nothing
check "/etc/passwd: 400" refused x5 /etc/passwd
check "broken adapter files: 400 without the root's path" refused x6 broken
stop_server
check "SIGTERM: exit 0 (runtime adapters)" test $? -eq 0

exit $((fails > 0))
