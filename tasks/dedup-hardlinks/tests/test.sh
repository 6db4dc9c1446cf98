#!/usr/bin/env bash
# Verifier: same paths and contents as before (manifest), identical
# contents share one inode, different contents never do, and the report
# lists exactly the duplicate groups.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
cd /app/photos || fail "no /app/photos"
[ -z "$(find . ! -type f ! -type d)" ] || fail "something other than files and folders in /app/photos"
find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum >/tmp/now
diff /tmp/now /tests/manifest.sha256 >/dev/null || fail "paths or contents changed"
python3 - <<'PY' || fail "hard links or report wrong"
import collections, os, sys
by_sum = collections.defaultdict(list)
for line in open("/tests/manifest.sha256"):
    digest, path = line.rstrip("\n").split("  ", 1)
    by_sum[digest].append(path)
inode_owner = {}
for digest, paths in by_sum.items():
    inodes = {os.stat(p).st_ino for p in paths}
    if len(inodes) != 1:
        sys.exit(f"identical files not linked: {paths}")
    ino = inodes.pop()
    if ino in inode_owner:
        sys.exit(f"different contents share an inode: {paths[0]} and {inode_owner[ino]}")
    inode_owner[ino] = paths[0]
    if os.stat(paths[0]).st_nlink != len(paths):
        sys.exit(f"{paths[0]}: {os.stat(paths[0]).st_nlink} links, want {len(paths)}")
want = sorted(("\t".join(sorted(p, key=str.encode)) for p in by_sum.values() if len(p) > 1), key=str.encode)
try:
    got = open("/app/dedup-report.txt").read().splitlines()
except OSError as e:
    sys.exit(f"report: {e}")
if got != want:
    sys.exit(f"report differs: got {len(got)} lines, want {len(want)}")
PY
echo PASS
echo 1 >/logs/verifier/reward.txt
