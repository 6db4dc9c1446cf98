#!/usr/bin/env bash
# Monday: full backup of /srv/data (GNU tar --listed-incremental); Tuesday
# and Wednesday: incremental ones after adds, edits, deletions and a rename.
# The data itself is then gone; only /app/backups is left.
set -euo pipefail
d=/srv/data
mkdir -p $d/docs $d/img $d/old
cd $d
printf 'quarterly plan v1\n' >docs/plan.txt
printf 'meeting notes\n' >docs/notes.txt
printf 'GIF89a-logo\n' >img/logo.gif
printf 'legacy\n' >old/legacy.txt
printf 'keep me\n' >old/keep.txt
mkdir -p /app/backups
snap=$(mktemp)
tar -C /srv -czf /app/backups/monday-full.tar.gz --listed-incremental=$snap data
sleep 1.1
printf 'quarterly plan v2\n' >docs/plan.txt      # edited
rm old/legacy.txt                               # deleted
printf 'budget 2024\n' >docs/budget.txt         # added
mv img/logo.gif img/brand.gif                   # renamed
mkdir -p reports && printf 'Q1 report\n' >reports/q1.txt
tar -C /srv -czf /app/backups/tuesday-incr.tar.gz --listed-incremental=$snap data
sleep 1.1
printf 'quarterly plan v3 (draft)\n' >docs/plan.txt
rm -r reports
printf 'scratch\n' >docs/scratch.txt
tar -C /srv -czf /app/backups/wednesday-incr.tar.gz --listed-incremental=$snap data
rm -rf /srv/data "$snap"
