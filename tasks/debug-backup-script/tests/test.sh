#!/usr/bin/env bash
# Verifier: runs the agent's backup.sh on a source and destination with
# spaces in their names, 12 times, checking numbering past 9, rotation,
# archive contents and the failure path.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
[ -f /app/backup.sh ] || fail "no /app/backup.sh"
w=$(mktemp -d)
src="$w/my files"; dest="$w/back ups"
mkdir -p "$src/sub dir"
echo alpha >"$src/a b.txt"; echo beta >"$src/sub dir/c.txt"; echo '*' >"$src/star"
mkdir -p "$dest"; echo keep >"$dest/notes.txt"
for i in $(seq 1 12); do
  echo "run $i" >"$src/run.txt"
  out=$(cd / && bash /app/backup.sh "$src" "$dest" 2>"$w/err") || fail "run $i failed: $(cat "$w/err")"
  [ "$out" = "$dest/backup-$i.tar.gz" ] || fail "run $i printed '$out', want '$dest/backup-$i.tar.gz'"
  have=$(cd "$dest" && ls | LC_ALL=C sort | tr '\n' ' ')
  lo=$((i > 3 ? i - 2 : 1)); want=""
  for k in $(seq $lo $i); do want+="backup-$k.tar.gz "; done
  want=$(tr ' ' '\n' <<<"$want notes.txt" | grep . | LC_ALL=C sort | tr '\n' ' ')
  [ "$have" = "$want" ] || fail "after run $i the folder holds [$have], want [$want]"
done
x="$w/x"; mkdir "$x"
tar -C "$x" -xzf "$dest/backup-12.tar.gz" || fail "backup-12 is not a tar.gz"
[ "$(cat "$x/a b.txt" 2>/dev/null)" = alpha ] && [ "$(cat "$x/sub dir/c.txt" 2>/dev/null)" = beta ] &&
  [ "$(cat "$x/run.txt" 2>/dev/null)" = "run 12" ] || fail "backup-12 does not hold the source's files at relative paths"
# a missing source: non-zero, a message, nothing created
if (cd / && bash /app/backup.sh "$w/nope" "$w/d2" >"$w/out" 2>"$w/err"); then fail "a missing source exits 0"; fi
[ -s "$w/err" ] || fail "no error message for a missing source"
[ ! -e "$w/d2" ] || [ -z "$(ls -A "$w/d2")" ] || fail "files created for a missing source"
echo PASS
echo 1 >/logs/verifier/reward.txt
