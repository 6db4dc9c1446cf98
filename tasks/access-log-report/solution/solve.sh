#!/usr/bin/env bash
# Reference solution: one regex for a valid line, then sort/uniq/awk.
set -euo pipefail
cd /app
mkdir -p report
re='^[0-9]+(\.[0-9]+){3} [^ ]+ [^ ]+ \[[^]]+\] "[A-Z]+ [^ ]+ [^"]+" [0-9]{3} [0-9]+ "[^"]*" "[^"]*"$'
grep -E "$re" logs/access.log >/tmp/valid.log
awk '{print $9}' /tmp/valid.log | sort | uniq -c | awk '{print $2, $1}' | sort -k2,2nr -k1,1n >report/status_counts.txt
awk '{print $1}' /tmp/valid.log | sort | uniq -c | awk '{print $1, $2}' | sort -k1,1nr -k2,2 | head -5 >report/top_ips.txt
awk '{s += $10} END {print s}' /tmp/valid.log >report/bytes_total.txt
