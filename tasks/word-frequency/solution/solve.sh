#!/usr/bin/env bash
# Reference solution: tr to one word per line, filter, count, sort.
set -euo pipefail
cd /app
cat corpus/*.txt | tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -E '^[a-z]{2,}$' |
  grep -vxF -f stopwords.txt | LC_ALL=C sort | uniq -c |
  awk '{print $1, $2}' | LC_ALL=C sort -k1,1nr -k2,2 | head -25 >top25.txt
cat top25.txt
