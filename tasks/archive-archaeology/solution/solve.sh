#!/usr/bin/env bash
# Reference solution: peel each layer by what `file` says it is.
set -euo pipefail
w=$(mktemp -d)
cd "$w"
tar -xzf /app/incoming/backup-2023.bin
mkdir b && xz -dc parts/part-b.dat | tar -C b -xf -
file b/vault.dat | grep -q 'Zip archive'
unzip -q b/vault.dat -d v
file v/q3.pack | grep -q 'Zstandard'
mkdir q && zstd -dc v/q3.pack | tar -C q -xf -
mkdir -p /app/recovered
cp q/2023/ledger-2023-q3.csv /app/recovered/ledger-2023-q3.csv
awk -F, 'NR > 1 {s += $3} END {printf "%.2f\n", s}' /app/recovered/ledger-2023-q3.csv >/app/recovered/total.txt
cat /app/recovered/total.txt
