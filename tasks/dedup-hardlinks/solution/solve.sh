#!/usr/bin/env bash
# Reference solution: group by sha256 (sizes would not do: look-alikes),
# link every member of a group to its first path.
set -euo pipefail
cd /app/photos
find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum >/tmp/sums
python3 - <<'PY'
import collections, os
groups = collections.defaultdict(list)
for line in open("/tmp/sums"):
    digest, path = line.rstrip("\n").split("  ", 1)
    groups[digest].append(path)
lines = []
for paths in groups.values():
    if len(paths) < 2:
        continue
    paths.sort(key=lambda p: p.encode())
    for p in paths[1:]:
        tmp = p + ".dedup-tmp"
        os.link(paths[0], tmp)
        os.replace(tmp, p)
    lines.append("\t".join(paths))
lines.sort(key=lambda l: l.encode())
with open("/app/dedup-report.txt", "w") as f:
    f.write("".join(l + "\n" for l in lines))
PY
