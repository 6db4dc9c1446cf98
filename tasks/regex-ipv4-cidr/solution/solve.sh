#!/usr/bin/env bash
# Reference solution: an octet is 25[0-5] | 2[0-4]d | 1dd | [1-9]d | d.
set -euo pipefail
o='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])'
p='(3[0-2]|[12][0-9]|[0-9])'
printf '%s\n' "$o\\.$o\\.$o\\.$o(/$p)?" >/app/ipv4.regex
cat /app/ipv4.regex
