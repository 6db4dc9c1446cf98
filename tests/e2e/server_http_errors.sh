#!/usr/bin/env bash
# End-to-end: every HTTP-level error `preft serve` sends is an OpenAI error
# body (application/json, error.message/type/code) with the right status,
# also for requests libmicrohttpd would refuse with its own HTML page or by
# closing the connection: a garbage request line, an unknown HTTP version,
# a malformed, conflicting or oversized Content-Length, Transfer-Encoding, a
# missing Host, a header line without a colon, a head over 128 KiB, a head
# cut off by a half-close. Raw requests over loopback with bash's /dev/tcp;
# a normal request is still answered after each.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && tail -40 "$tmp/log"; rm -rf "$tmp"' EXIT
start_server "$tmp/log" -m "$data/models/llama-gqa-rope3" --threads 1 --max-body-mb 1 || exit 1
p=${SRV_URL##*:}

# raw FILE [half]: sends FILE's bytes on a new connection (then half-closes
# it with "half"), prints what the server answers until it closes
raw() {
  local fd out
  if [ "${2:-}" = half ]; then
    # (perl, part of every Debian system: bash cannot half-close /dev/tcp)
    out=$(timeout 20 perl -MIO::Socket::INET -e '
      my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or die;
      open(my $f, "<:raw", $ARGV[1]) or die; local $/; my $d = <$f>;
      print $s $d; $s->flush; shutdown($s, 1);
      binmode STDOUT; my $b; print $b while sysread($s, $b, 65536);' "$p" "$1")
    printf '%s' "$out"
    return
  fi
  exec {fd}<>"/dev/tcp/127.0.0.1/$p"
  cat "$1" >&"$fd" 2>/dev/null
  timeout 20 cat <&"$fd"
  exec {fd}<&-
}
# is_error STATUS CODE RESPONSE: the status line has STATUS, the body is
# JSON with an OpenAI error whose code is CODE
is_error() {
  local status=$1 code=$2 text=$3
  local line=${text%%$'\r'*}
  [ "$(printf '%s' "$line" | cut -d' ' -f2)" = "$status" ] || { echo "  status line: $line"; return 1; }
  printf '%s' "$text" | grep -qi '^content-type: application/json' || { echo "  not JSON: $text" | head -5; return 1; }
  printf '%s' "$text" | sed '1,/^\r*$/d' |
    jq -e --arg c "$code" '.error | (.message | length > 0) and (.type | length > 0) and .code == $c' >/dev/null ||
    { echo "  body: $(printf '%s' "$text" | sed '1,/^\r*$/d' | head -c 300)"; return 1; }
}
# case NAME STATUS CODE BYTES [half]
case_() {
  local name=$1 status=$2 code=$3
  printf '%b' "$4" >"$tmp/req"
  local out; out=$(raw "$tmp/req" "${5:-}")
  check "$name: $status $code" is_error "$status" "$code" "$out"
}
still_served() {
  [ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$SRV_URL/health")" = 200 ]
}

case_ "a garbage request line" 400 invalid_request_line 'GARBAGE\r\n\r\n'
case_ "a request line with no version" 400 invalid_request_line 'GET /health\r\nHost: x\r\n\r\n'
case_ "binary noise" 400 invalid_request_line '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n'
case_ "HTTP/2.0" 505 http_version_not_supported 'GET /health HTTP/2.0\r\nHost: x\r\n\r\n'
case_ "HTTP/1.2" 505 http_version_not_supported 'GET /health HTTP/1.2\r\nHost: x\r\n\r\n'
case_ "Content-Length: abc" 400 invalid_content_length 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'
case_ "Content-Length: -1" 400 invalid_content_length 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'
case_ "two different Content-Lengths" 400 invalid_content_length 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'
case_ "Content-Length over the body limit" 413 request_too_large 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n'
case_ "Content-Length past 2^64" 413 request_too_large 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n'
case_ "Transfer-Encoding: chunked" 411 length_required 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'
case_ "HTTP/1.1 without Host" 400 missing_host 'GET /health HTTP/1.1\r\n\r\n'
case_ "a header line without a colon" 400 invalid_header 'GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'
case_ "a space before a header's colon" 400 invalid_header 'GET /health HTTP/1.1\r\nHost : x\r\n\r\n'
case_ "a control byte in a header" 400 invalid_header 'GET /health HTTP/1.1\r\nHost: x\x01y\r\n\r\n'
case_ "a head cut off by a half-close" 400 incomplete_request 'GET /health HTTP/1.1\r\nHost: x\r\n' half
{ printf 'GET /health HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 1 40); do printf 'X-Pad-%d: %05000d\r\n' "$i" 0; done; printf '\r\n'; } >"$tmp/big"
out=$(raw "$tmp/big")
check "200 kB of headers (past libmicrohttpd's memory): 431 headers_too_large" is_error 431 headers_too_large "$out"
{ printf 'GET /'; head -c 140000 /dev/zero | tr '\0' a; printf ' HTTP/1.1\r\nHost: x\r\n\r\n'; } >"$tmp/long"
out=$(raw "$tmp/long")
check "a 140 kB URL: 414 uri_too_long" is_error 414 uri_too_long "$out"
check "the server still answers after all of them" still_served
printf 'GET /health HTTP/1.0\r\n\r\n' >"$tmp/ok"
out=$(raw "$tmp/ok")
check "HTTP/1.0 without Host is fine" bash -c "printf '%s' '$out' | grep -q '\"status\":\"ok\"'"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' >"$tmp/ok"
out=$(raw "$tmp/ok" half)
check "a complete request then a half-close is answered" bash -c "printf '%s' '$out' | grep -q '\"status\":\"ok\"'"
check "/metrics counts the 400s" test "$(metric 'preft_http_requests_total{code="400"}')" -ge 10
stop_server
check "SIGTERM: exit 0" test $? -eq 0
exit $((fails > 0))
