#!/usr/bin/env bash
# End-to-end: a sharded task run (`preft tasks run --shard I/N` then `preft
# tasks merge`, docs/TASKS.md "Sharded runs") on the fixture tasks of
# tests/data/tasks with the oracle, 2 attempts each: 8 trials over 3 shards
# (3, 3, 2), every shard into one job folder; the merged result.json equals
# a single run's (trials in order, mean reward, errors, pass@k; pass@2 needs
# attempts that ran on different shards, so no shard alone has it); a
# missing shard, a bad --shard and a sharded run without --job-name are
# refused. Needs root and bubblewrap (the sandboxes).
source "$(dirname "$0")/e2e_lib.bash"
tasks=$data/tasks
cache=$tmp/cache
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
summary='{mean_reward, n_trials, n_errors, pass_at_k, trials}'

check "tasks merge --help exits 0" bash -c "'$bin' tasks merge --help | grep -q usage"
check "--shard 0/2 exits 2" test "$(rc "$bin" tasks run --path "$tasks" --agent nop -o "$tmp/j" --job-name x --shard 0/2)" -eq 2
check "  naming the rule" grep -q "I/N with 1 <= I <= N, got '0/2'" "$tmp/err"
check "--shard without --job-name exits 2" test "$(rc "$bin" tasks run --path "$tasks" --agent nop -o "$tmp/j" --shard 1/2)" -eq 2
check "merge of a folder without shards exits 1" test "$(rc "$bin" tasks merge "$tmp")" -eq 1
if [ "$(id -u)" != 0 ] || ! command -v bwrap >/dev/null; then
  echo "skip the sandbox checks: they need root and bubblewrap"
  e2e_exit
fi

run=(tasks run --path "$tasks" --agent oracle --n-attempts 2 -o "$tmp/jobs" --cache "$cache" --quiet)
check "single run exits 0" test "$(rc "$bin" "${run[@]}" --job-name single)" -eq 0
for i in 1 2; do
  check "shard $i/3 exits 0" test "$(rc "$bin" "${run[@]}" --job-name sharded --shard $i/3 --json "$tmp/shard$i.json")" -eq 0
done
check "merge with shard 3 missing exits 1" test "$(rc "$bin" tasks merge "$tmp/jobs/sharded")" -eq 1
check "  naming it" grep -q "shard 3 of 3 is missing" "$tmp/err"
check "  and writes no result.json" test ! -e "$tmp/jobs/sharded/result.json"
check "shard 3/3 exits 0" test "$(rc "$bin" "${run[@]}" --job-name sharded --shard 3/3)" -eq 0
check "shards ran 3, 3 and 2 trials" test "$(jq -c '[.trials | length]' "$tmp/shard1.json" "$tmp/shard2.json" \
  "$tmp/jobs/sharded/result-shard-3-of-3.json" | tr -d '\n')" = "[3][3][2]"
check "no shard alone has pass@2" test "$(jq -c '.pass_at_k["2"]' "$tmp/shard1.json")" = null
check "merge exits 0" test "$(rc "$bin" tasks merge "$tmp/jobs/sharded" --json "$tmp/merged.json")" -eq 0
check "merged result.json equals the single run's" \
  test "$(jq -cS "$summary" "$tmp/jobs/sharded/result.json")" = "$(jq -cS "$summary" "$tmp/jobs/single/result.json")"
check "  with pass@2 (0.5: hello and legacy pass, badreward and slow do not)" \
  test "$(jq -c '.pass_at_k["2"]' "$tmp/jobs/sharded/result.json")" = 0.5
check "  and 2 errors (slow timed out twice)" test "$(jq -c .n_errors "$tmp/jobs/sharded/result.json")" = 2
check "merge --json writes the same summary" \
  test "$(jq -cS "$summary" "$tmp/merged.json")" = "$(jq -cS "$summary" "$tmp/jobs/single/result.json")"
check "the job folder holds every trial's folder" \
  test "$(ls -d "$tmp/jobs/sharded"/*__* | wc -l)" -eq 8
check "result.json records 3 shards" test "$(jq -c .shards "$tmp/jobs/sharded/result.json")" = 3
e2e_exit
