#!/usr/bin/env bash
# Reference solution: extract the full backup, then the incremental one
# with --listed-incremental=/dev/null so that tar applies its deletions.
set -euo pipefail
mkdir -p /app/restore
cd /app/restore
tar -xzf /app/backups/monday-full.tar.gz --listed-incremental=/dev/null
tar -xzf /app/backups/tuesday-incr.tar.gz --listed-incremental=/dev/null
find data -type f | sort
