#!/usr/bin/env bash
# Builds /app/incoming/backup-2023.bin: gzip'd tar > bzip2 tar (with a
# draft decoy), xz tar > zip > zstd tar holding the real ledger. The file
# names say nothing about the formats.
set -euo pipefail
w=$(mktemp -d)
cd "$w"
python3 - <<'PY'
import random
r = random.Random(2023)
accts = ["ops", "payroll", "cloud", "travel", "office", "legal"]
with open("ledger.csv", "w") as f:
    f.write("date,account,amount\n")
    for i in range(60):
        f.write(f"2023-{r.randint(7, 9):02d}-{r.randint(1, 28):02d},{r.choice(accts)},{r.randint(-50000, 250000) / 100:.2f}\n")
with open("draft.csv", "w") as f:
    f.write("date,acct,amt\n")
    for i in range(20):
        f.write(f"2023-07-{r.randint(1, 28):02d},{r.choice(accts)},{r.randint(0, 9999) / 100:.2f}\n")
PY
export TZ=UTC
stamp=202310011200
mkdir -p a/draft q/2023 v top/parts top/docs
cp draft.csv a/draft/ledger-2023-q3.csv
echo "draft numbers, superseded" >a/draft/NOTE
cp ledger.csv q/2023/ledger-2023-q3.csv
find a q top -exec touch -t $stamp {} +
tar -C a -cf - . | bzip2 -9 >top/parts/part-a.dat
tar -C q -cf - . | zstd -q -19 -o v/q3.pack
touch -t $stamp v/q3.pack
(cd v && zip -q -X ../vault.zip q3.pack)
mkdir -p b && mv vault.zip b/vault.dat && touch -t $stamp b/vault.dat
tar -C b -cf - . | xz -9 >top/parts/part-b.dat
printf 'Quarterly backup. Restore instructions were lost.\n' >top/docs/README.txt
find top -exec touch -t $stamp {} +
mkdir -p /app/incoming
tar -C top -cf - . | gzip -9n >/app/incoming/backup-2023.bin
cd /
rm -rf "$w"
