#!/usr/bin/env bash
# End-to-end fault injection (issue 20, "Soak and faults"):
#   - a training run SIGKILLed at random points, then resumed (again and
#     again), ends with an adapter and checkpoint byte-identical to a run
#     never interrupted;
#   - a checkpoint write that hits the file-size limit (ulimit -f, the
#     disk-full path: write fails with EFBIG) exits 1 with an error naming
#     the file, leaves the previous checkpoint as it was, and a resume
#     without the limit still ends byte-identical to the reference;
#   - truncated and bit-flipped model and adapter files (safetensors and
#     configs) are refused with exit code 1 and an error naming the file, or
#     (a flip inside weight data, which no format can tell) load; never a
#     crash.
# The tiny reference model (grads/full-llama-tiny) with pre-tokenised data.
source "$(dirname "$0")/e2e_lib.bash"
model=$data/grads/full-llama-tiny/model
for i in 0 1 2 3 4 5; do
  p=$(seq -s, $((3 + i)) $((9 + i)))
  c=$(seq -s, $((20 + 3 * i)) $((24 + 3 * i)))
  echo "{\"prompt_ids\": [$p], \"completion_ids\": [$c]}"
done >"$tmp/train.jsonl"
# 24 steps, a checkpoint every 2: "$bin" "${train[@]}" -o DIR [args] (run
# directly, never through a function, so that $! of a background run is
# preft itself and a kill reaches it)
train=(train sft -m "$model" --method lora --rank 4 --data "$tmp/train.jsonl" --steps 24 --save-every 2 --batch 3
  --lr 1e-2 --threads 1 -q)
same_run() { cmp -s "$tmp/ref/$2" "$1/$2"; }
# ck_state FILE: what a checkpoint holds but the clock: the header's counters
# (step, epoch, cursor, Adam's t, tokens, seed) and the parameters, Adam's
# m and v (its header and log history also hold elapsed seconds and tokens/s)
ck_state() {
  local h n
  h=$(od -An -tu8 -j8 -N8 "$1" | tr -d ' ')
  head -c $((16 + h)) "$1" | tail -c "$h" | jq -c '{step, epoch, cursor, adam_t, tokens, seed, n_params}'
  n=$(head -c $((16 + h)) "$1" | tail -c "$h" | jq .n_params)
  head -c $((16 + h + 12 * n)) "$1" | tail -c $((12 * n)) | cksum
}
same_state() { [ "$(ck_state "$tmp/ref/checkpoint.bin")" = "$(ck_state "$1/checkpoint.bin")" ]; }

t0=$(date +%s%N)
"$bin" "${train[@]}" -o "$tmp/ref" >/dev/null 2>&1
ref_ns=$(($(date +%s%N) - t0)) # kill points are fractions of this, so they land mid-run on any machine
check "the reference run trains" test -s "$tmp/ref/checkpoint.bin" -a -s "$tmp/ref/adapter_model.safetensors"

# ---- SIGKILL at random points, then resume -------------------------------------------------------
RANDOM=20 # the same kill points (as fractions of the reference run) every run of the test
kills=0
for round in 1 2 3 4 5 6; do
  "$bin" "${train[@]}" -o "$tmp/killed" --resume >/dev/null 2>&1 &
  pid=$!
  if [ $round -eq 1 ]; then
    # the first kill once the first checkpoint is on disk: it lands mid-run
    # however the machine's load changed since the reference run was timed
    while kill -0 "$pid" 2>/dev/null && ! [ -s "$tmp/killed/checkpoint.bin" ]; do sleep 0.01; done
  else
    sleep "$(awk -v ns="$ref_ns" -v pct=$((5 + RANDOM % 55)) 'BEGIN { printf "%.4f", ns * pct / 100 / 1e9 }')"
  fi
  if kill -KILL "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
done
"$bin" "${train[@]}" -o "$tmp/killed" --resume >"$tmp/out" 2>&1
check "resumed after $kills SIGKILLs: exit 0" test $? -eq 0
check "... at least one kill landed mid-run" test "$kills" -ge 1
check "... the adapter is byte-identical to the uninterrupted run's" same_run "$tmp/killed" adapter_model.safetensors
check "... and so is the checkpoint's state (parameters, Adam's moments, counters)" same_state "$tmp/killed"

# ---- a checkpoint write that fails (file-size limit) ------------------------------------------------
# a run killed once it has written a checkpoint
"$bin" "${train[@]}" -o "$tmp/full" >/dev/null 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! [ -s "$tmp/full/checkpoint.bin" ]; do sleep 0.01; done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
cp "$tmp/full/checkpoint.bin" "$tmp/ck-before.bin"
ck_kb=$(($(stat -c %s "$tmp/full/checkpoint.bin") / 1024))
# the limit lets small files through but not a checkpoint; SIGXFSZ ignored, so
# the write fails with EFBIG as on a full disk instead of killing the process
(trap '' XFSZ; ulimit -f $((ck_kb / 2)); exec "$bin" "${train[@]}" -o "$tmp/full" --resume) >"$tmp/out" 2>&1
rc=$?
check "a checkpoint write past the limit: exit 1" test "$rc" -eq 1
check "... with an error naming the file" grep -q "checkpoint" "$tmp/out"
check "... and the reason" grep -q -i "too large\|no space\|write" "$tmp/out"
check "... the previous checkpoint is intact" cmp -s "$tmp/ck-before.bin" "$tmp/full/checkpoint.bin"
"$bin" "${train[@]}" -o "$tmp/full" --resume >/dev/null 2>&1
check "resumed without the limit: exit 0" test $? -eq 0
check "... the adapter is byte-identical to the uninterrupted run's" same_run "$tmp/full" adapter_model.safetensors
check "... and so is the checkpoint's state" same_state "$tmp/full"

# ---- truncated and bit-flipped model and adapter files ----------------------------------------------
# try DIR FILE: generate with the copy in DIR; exit 0, or 1 naming FILE; never a signal
try_model() { "$bin" generate -m "$1" --ids 3,4,5 -n 2 --print-ids >/dev/null 2>"$tmp/err"; }
try_adapter() { "$bin" generate -m "$model" -a "$1" --ids 3,4,5 -n 2 --print-ids >/dev/null 2>"$tmp/err"; }
# sweep KIND SRC FILE: truncations and flips of SRC/FILE, each run through try_KIND
sweep() {
  local kind=$1 src=$2 file=$3 size cuts=() flips=() bad=0 refused=0 loaded=0 rc at
  size=$(stat -c %s "$src/$file")
  cuts=(0 1 7 8 9 $((size / 4)) $((size / 2)) $((size - 2)))
  local hdr=$size
  if [[ $file == *.safetensors ]]; then
    hdr=$(($(od -An -tu8 -N8 "$src/$file") + 8))
    cuts+=($((hdr - 1)) $hdr $((hdr + 1)))
  fi
  for ((at = 0; at < hdr; at += hdr / 23 + 1)); do flips+=("$at"); done
  flips+=($((size - 1)) $(((size + hdr) / 2)))
  for at in "${cuts[@]}"; do
    rm -rf "$tmp/c" && cp -r "$src" "$tmp/c"
    truncate -s "$at" "$tmp/c/$file"
    "try_$kind" "$tmp/c"
    rc=$?
    if [ $rc -ne 1 ] || ! grep -q "$file" "$tmp/err"; then
      echo "  $file cut at $at: exit $rc: $(head -c 300 "$tmp/err")"
      bad=$((bad + 1))
    fi
  done
  for at in "${flips[@]}"; do
    rm -rf "$tmp/c" && cp -r "$src" "$tmp/c"
    # flip the byte's top bit
    b=$(od -An -tu1 -j "$at" -N1 "$tmp/c/$file" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 128)))" | dd of="$tmp/c/$file" bs=1 seek="$at" conv=notrunc 2>/dev/null
    "try_$kind" "$tmp/c"
    rc=$?
    if [ $rc -eq 0 ]; then
      loaded=$((loaded + 1))
    elif [ $rc -eq 1 ] && grep -q "$file" "$tmp/err"; then
      refused=$((refused + 1))
    else
      echo "  $file flipped at $at: exit $rc: $(head -c 300 "$tmp/err")"
      bad=$((bad + 1))
    fi
  done
  echo "  $file: ${#cuts[@]} truncations refused; ${#flips[@]} flips: $refused refused naming it, $loaded loaded"
  [ $bad -eq 0 ] && [ $refused -gt 0 ]
}
check "truncated or flipped model.safetensors: refused naming it, never a crash" sweep model "$model" model.safetensors
check "truncated or flipped config.json: refused naming it, never a crash" sweep model "$model" config.json
check "truncated or flipped adapter_model.safetensors: refused naming it, never a crash" \
  sweep adapter "$tmp/ref" adapter_model.safetensors
check "truncated or flipped adapter_config.json: refused naming it, never a crash" \
  sweep adapter "$tmp/ref" adapter_config.json
e2e_exit
