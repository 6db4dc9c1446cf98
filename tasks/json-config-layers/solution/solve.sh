#!/usr/bin/env bash
# Reference solution: a recursive jq merge that honours null as delete.
set -euo pipefail
cd /app/config
jq -S -n '
  def merge($a; $b):
    if ($a | type) == "object" and ($b | type) == "object" then
      reduce ($b | keys_unsorted[]) as $k ($a;
        if $b[$k] == null then del(.[$k])
        else .[$k] = merge($a[$k]; $b[$k]) end)
    else $b end;
  reduce inputs as $layer ({}; merge(.; $layer))' $(ls *.json | LC_ALL=C sort) >/app/effective.json
jq -r '
  [paths(type != "object") as $p | select(getpath($p) | type != "object")
   | select(($p | map(type) | index("number")) == null)
   | {k: ($p | map(tostring) | join("_") | ascii_upcase), v: getpath($p)}]
  | sort_by(.k)[] | "\(.k)=\(if (.v | type) == "array" then (.v | tojson) else .v end)"' /app/effective.json >/app/effective.env
cat /app/effective.env
