#!/usr/bin/env bash
# End-to-end: the chat page `preft serve` answers at GET /, in headless
# Chromium (Debian's `chromium`, driven over the DevTools protocol by
# chat_page_cdp.mjs with node's built-in WebSocket). The page lists the base
# model and the adapter, sends the message of its ?q= link with the adapter
# and mode of its ?model= and ?adapter_mode=, streams the reply (equal to
# `preft generate --chat -a ... --adapter-mode all`), shows tokens/s; a
# second message typed into its text box gets a reply too; in completion
# mode the reply equals `preft generate -p`; a screenshot is
# taken (a PNG; kept in $PREFT_SCREENSHOT_DIR when set). The page itself is
# one self-contained HTML file: no external scripts, styles or images.
# With --cors-origin '*' a preflight from any origin is answered.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
command -v node >/dev/null || { echo "node is missing: run scripts/install-deps.sh"; exit 1; }
command -v chromium >/dev/null || { echo "chromium is missing: run scripts/install-deps.sh"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && tail -30 "$tmp/log"; rm -rf "$tmp"' EXIT
dm=$data/../../assets/default-model
"$bin" make-adapter -m "$dm" --kind direft --rank 8 --seed 3 -o "$tmp/adapters/reft-b" 2>/dev/null
start_server "$tmp/log" -m "$dm" --adapters "$tmp/adapters" --threads 1 --cors-origin '*' || exit 1
h=$(curl -s -D - -o /dev/null -X OPTIONS "$SRV_URL/v1/chat/completions" -H 'Origin: http://any.example' \
  -H 'Access-Control-Request-Method: POST' | tr -d '\r')
check "--cors-origin '*': a preflight from any origin gets 204 and its origin back" \
  bash -c "grep -q '^HTTP/1.1 204' <<<'$h' && grep -qi '^Access-Control-Allow-Origin: http://any.example$' <<<'$h'"

ct=$(curl -s -o "$tmp/page.html" -w '%{http_code} %{content_type}' "$SRV_URL/")
check "GET /: 200 text/html" test "$ct" = "200 text/html; charset=utf-8"
check "the page loads nothing from elsewhere" bash -c "! grep -Eiq '(src|href)=\"(https?:)?//|@import|url\\(' '$tmp/page.html'"

want=$("$bin" generate -m "$dm" --chat -p "Taxes" -n 8 --temperature 0 --threads 1 -a "$tmp/adapters/reft-b" \
  --adapter-mode all)
CDP_TIMEOUT_MS=$((30000 * scale)) node --experimental-websocket "$here/chat_page_cdp.mjs" \
  "$SRV_URL/?model=reft-b&adapter_mode=all&q=Taxes&max_tokens=8&temperature=0" "$tmp/shot.png" >"$tmp/out.json"
check "headless Chromium ran the page" test $? -eq 0
out=$(cat "$tmp/out.json")
check "the model list: base model and adapter" test "$(echo "$out" | jq -c .models)" = '["default-model","reft-b"]'
check "the ?q= message's reply = preft generate --chat -a reft-b" test "$(echo "$out" | jq -j '.replies[0].text')" = "$want"
check "the reply shows its tokens/s" bash -c "echo '$out' | jq -r '.replies[0].meta' | grep -Eq '^8 tokens, [0-9.]+ tokens/s'"
check "a message typed into the page gets a reply" \
  test "$(echo "$out" | jq -r '[.users[1], .replies[1].cls, (.replies[1].text | length > 0)] | join(" ")')" = \
  "And the army? msg assistant true"
# completion mode (api=completion): the page posts to /v1/completions with the base model
want2=$("$bin" generate -m "$dm" -p "The Congress" -n 6 --temperature 0 --threads 1)
CDP_SECOND= CDP_TIMEOUT_MS=$((30000 * scale)) node --experimental-websocket "$here/chat_page_cdp.mjs" \
  "$SRV_URL/?api=completion&q=The%20Congress&max_tokens=6&temperature=0" "$tmp/shot2.png" >"$tmp/out2.json"
check "completion mode: reply = preft generate -p" test "$(jq -j '.replies[0].text' "$tmp/out2.json")" = "$want2"
check "a screenshot was taken (PNG)" bash -c "[ \$(head -c 8 '$tmp/shot.png' | od -An -tx1 | tr -d ' ') = 89504e470d0a1a0a ] && [ \$(stat -c %s '$tmp/shot.png') -gt 10000 ]"
if [ -n "${PREFT_SCREENSHOT_DIR:-}" ]; then mkdir -p "$PREFT_SCREENSHOT_DIR" && cp "$tmp/shot.png" "$PREFT_SCREENSHOT_DIR/chat_page.png"; fi
stop_server
check "SIGTERM: exit 0" test $? -eq 0
exit $((fails > 0))
