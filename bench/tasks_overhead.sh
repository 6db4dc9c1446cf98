#!/usr/bin/env bash
# What `preft tasks` costs per trial beside the agent and the tests, with
# the environment layers cached: runs nop (which does nothing) on every task
# under TASKS, ATTEMPTS times each, after a first run that builds the
# layers, and prints the median and the maximum of each phase of the trials
# (from their result.json). Needs root and bubblewrap.
#
# Usage: bench/tasks_overhead.sh [TASKS] [ATTEMPTS] [N_CONCURRENT]
#   (default: tests/data/tasks, 5 attempts, 1 at a time; PREFT_BIN: build/preft)
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-tests/data/tasks}
attempts=${2:-5}
conc=${3:-1}
bin=${PREFT_BIN:-build/preft}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" tasks run --path "$tasks" --agent nop -o "$work/jobs" --job-name warm --cache "$work/cache" --quiet >/dev/null
"$bin" tasks run --path "$tasks" --agent nop --n-attempts "$attempts" --n-concurrent "$conc" -o "$work/jobs" \
  --job-name bench --cache "$work/cache" --quiet >/dev/null
n=$(ls "$work"/jobs/bench/*/result.json | wc -l)
cached=$(jq -s 'map(select(.env_cached)) | length' "$work"/jobs/bench/*/result.json)
echo "preft tasks: nop on $tasks, $n trials ($cached with the layer cached), $conc at a time"
printf '%-16s %10s %10s\n' phase "median ms" "max ms"
for p in env_build sandbox_start agent copy_tests verifier sandbox_stop overhead total; do
  jq -s -r --arg p "$p" 'map(.timings[$p] * 1000) | sort | [.[length / 2 | floor], .[-1]] | map(. * 10 | round / 10) | @tsv' \
    "$work"/jobs/bench/*/result.json | awk -v p="$p" '{ printf "%-16s %10s %10s\n", p, $1, $2 }'
done
echo "(overhead: everything but the agent and the verifier)"
