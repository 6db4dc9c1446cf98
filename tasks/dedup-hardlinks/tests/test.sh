#!/usr/bin/env bash
# Verifier: same paths and contents as before (manifest), every group of
# identical files is one inode (link counts, and a write through one path
# shows through exactly its group), and the report lists the groups.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app/photos || fail "no /app/photos"
[ -z "$(find . ! -type f ! -type d)" ] || fail "something other than files and folders in /app/photos"
find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum >/tmp/now
diff /tmp/now /tests/manifest.sha256 >/dev/null || fail "paths or contents changed"
python3 - <<'PY' || fail "hard links or report wrong"
# Inode numbers are not a reliable witness here: on an overlay whose layers
# sit on different file systems, a copied-up file and a new hard link to it
# can report different st_ino. So the link count is checked, and then the
# links are proven by writing: bytes appended through one path of a group
# must show through every other path of it, and through nothing else.
import collections, os, sys
by_sum = collections.defaultdict(list)
for line in open("/tests/manifest.sha256"):
    digest, path = line.rstrip("\n").split("  ", 1)
    by_sum[digest].append(path)
for digest, paths in by_sum.items():
    for p in paths:
        if os.stat(p).st_nlink != len(paths):
            sys.exit(f"{p}: {os.stat(p).st_nlink} links, want {len(paths)} (its group: {paths})")
want = sorted(("\t".join(sorted(p, key=str.encode)) for p in by_sum.values() if len(p) > 1), key=str.encode)
try:
    got = open("/app/dedup-report.txt").read().splitlines()
except OSError as e:
    sys.exit(f"report: {e}")
if got != want:
    sys.exit(f"report differs: got {len(got)} lines, want {len(want)}")
size = {p: os.stat(p).st_size for paths in by_sum.values() for p in paths}
for k, paths in enumerate(by_sum.values()):
    marker = f"<marker {k}>".encode()
    with open(paths[0], "ab") as f:
        f.write(marker)
    for p in paths:
        size[p] += len(marker)
    for p, n in size.items():
        if os.stat(p).st_size != n:
            sys.exit(f"after writing to {paths[0]}, {p} has {os.stat(p).st_size} bytes, want {n}: "
                     + ("not a link of it" if p in paths else "linked to a file with other content"))
    for p in paths:
        with open(p, "rb") as f:
            f.seek(-len(marker), 2)
            if f.read() != marker:
                sys.exit(f"{p} does not show what was written through {paths[0]}")
PY
echo PASS
echo 1 >/logs/verifier/reward.txt
