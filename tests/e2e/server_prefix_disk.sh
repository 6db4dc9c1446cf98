#!/usr/bin/env bash
# End-to-end: the prefix cache's disk tier (`preft serve --prefix-cache-dir
# DIR --prefix-cache-disk-gb G`). Greedy completions of 70-token prompts for
# the base model, an all-token and a prefill-only LoRA user and a
# prefill-only ReFT user are the same cold, from memory, and from disk after
# a restart (the cached blocks are written at shutdown and restored, counted
# in /metrics); damaged spill files are misses (removed, recomputed, same
# text), never a crash; a bound smaller than one entry keeps the directory
# empty; writes that fail (ulimit -f below one entry) drop the entries and
# the server goes on and exits 0.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
model=$data/models/llama-gqa-rope3
ad=$data/adapters
pc=$tmp/pc
args=(-m "$model" --threads 1 --adapter "lora=$ad/lora-qv-r4" --adapter "reft=$ad/loreft-f3l3")
ids=$(seq 0 69 | awk '{ printf "%s%d", (NR > 1 ? "," : ""), (7 + 31 * $1) % 250 + 3 }')
users=("base-model all" "lora all" "lora prefill" "reft prefill")
complete() { # MODEL MODE: the completion's text
  local mode=
  [ "$2" = all ] || mode=",\"adapter_mode\":\"$2\""
  curl -s "$SRV_URL/v1/completions" -d "{\"model\":\"$1\",\"prompt\":[$ids],\"max_tokens\":8,\"temperature\":0,\"ignore_eos\":true$mode}" |
    jq -c '.choices[0].text'
}
run_all() { for u in "${users[@]}"; do complete $u; done; }

start_server "$tmp/log1" "${args[@]}" --served-model-name base-model --prefix-cache-dir "$pc" || exit 1
cold=$(run_all)
check "every user got a completion" test "$(echo "$cold" | grep -c '^"')" -eq 4
check "memory hits = cold" test "$(run_all)" = "$cold"
check "memory hits counted (4 users x 4 blocks of 16)" test "$(metric preft_prefix_cache_hit_tokens_total)" -eq 256
check "no disk hits yet" test "$(metric preft_prefix_disk_hits_total)" -eq 0
check "/metrics shows the disk bound" test "$(metric 'preft_prefix_disk_bytes{state="limit"}')" -eq $((10 << 30))
check "server 1 exits 0" stop_server
check "cached blocks written to disk at shutdown" test "$(ls "$pc" | grep -c '\.kvb$')" -eq 16

start_server "$tmp/log2" "${args[@]}" --served-model-name base-model --prefix-cache-dir "$pc" || exit 1
check "disk hits after a restart = cold" test "$(run_all)" = "$cold"
check "every prompt block came from disk" test "$(metric preft_prefix_disk_hit_tokens_total)" -eq 256
check "disk hits counted" test "$(metric preft_prefix_disk_hits_total)" -eq 16
check "disk bytes read counted" test "$(metric 'preft_prefix_disk_io_bytes_total{direction="read"}')" -gt 0
check "restore time counted" awk -v t="$(metric preft_prefix_disk_restore_seconds_total)" 'BEGIN { exit !(t > 0) }'
check "server 2 exits 0" stop_server

# damaged files: every payload flipped at byte 200, one file truncated
for f in "$pc"/*.kvb; do printf 'Z' | dd of="$f" bs=1 seek=200 conv=notrunc status=none; done
f=$(ls "$pc"/*.kvb | head -1)
truncate -s 100 "$f"
start_server "$tmp/log3" "${args[@]}" --served-model-name base-model --prefix-cache-dir "$pc" || exit 1
check "damaged spill files: recomputed, same text" test "$(run_all)" = "$cold"
check "no block came from a damaged file" test "$(metric preft_prefix_disk_hit_tokens_total)" -eq 0
check "damaged files counted" test "$(metric preft_prefix_disk_corrupt_total)" -ge 3
check "damage logged" grep -q 'checksum mismatch; removed' "$tmp/log3"
check "server 3 exits 0" stop_server

# a bound below one entry (8 KiB + header): nothing stays on disk
start_server "$tmp/log4" "${args[@]}" --served-model-name base-model --prefix-cache-dir "$pc" \
  --prefix-cache-disk-gb 0.000001 || exit 1
check "tiny bound: same text" test "$(run_all)" = "$cold"
check "tiny bound: no entries" test "$(metric preft_prefix_disk_entries)" -eq 0
check "server 4 exits 0" stop_server
check "tiny bound: directory emptied" test "$(ls -A "$pc" | wc -l)" -eq 0

# writes that fail: files are limited to 8 KiB (ulimit -f), an entry takes more
(ulimit -f 8 && exec "$bin" serve --port 0 "${args[@]}" --served-model-name base-model --prefix-cache-dir "$pc" \
  >"$tmp/log5" 2>&1) &
SRV_PID=$!
wait_for grep -q 'listening on' "$tmp/log5"
SRV_URL=http://127.0.0.1:$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\) (.*/\1/p' "$tmp/log5")
check "failing writes: same text" test "$(run_all)" = "$cold"
check "failing writes: server exits 0" stop_server
check "failing writes logged" grep -q 'cannot write an entry' "$tmp/log5"
check "failing writes: no half entry left" test "$(ls -A "$pc" | wc -l)" -eq 0

[ $fails -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
