#!/usr/bin/env bash
# Reference solution: concatenate oldest first, fold entries with awk,
# count, build the JSON with jq.
set -euo pipefail
mkdir -p /app/report
cd /app/logs
{ zcat app.log.2.gz; cat app.log.1 app.log; } | awk '
  # an entry starts with a timestamp (written without {n}: mawk lacks intervals)
  /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T/ { if (lvl == "ERROR") print ts "\t" comp "\t" exc
    ts = $1; lvl = $2; comp = $3; gsub(/[\[\]]/, "", comp); exc = ""; first = 1; next }
  first { first = 0; if ($0 !~ /^\t/ && $0 !~ /^Caused by:/) { exc = $0; sub(/:.*/, "", exc) } }
  END { if (lvl == "ERROR") print ts "\t" comp "\t" exc }' >/tmp/errors.tsv
jq -R -s '
  [split("\n")[] | select(length > 0) | split("\t") | {ts: .[0], comp: .[1], exc: .[2]}] as $e
  | {total_errors: ($e | length),
     by_component: ($e | group_by(.comp) | map({key: .[0].comp, value: length}) | from_entries),
     exceptions: ($e | map(select(.exc != "")) | group_by(.exc) | map({key: .[0].exc, value: length}) | from_entries),
     first_error: $e[0].ts, last_error: $e[-1].ts,
     busiest_minute: ($e | group_by(.ts[0:16]) | map({m: .[0].ts[0:16], n: length}) | sort_by(-.n, .m) | .[0].m)}' \
  /tmp/errors.tsv >/app/report/errors.json
cat /app/report/errors.json
