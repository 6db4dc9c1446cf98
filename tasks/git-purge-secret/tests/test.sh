#!/usr/bin/env bash
# Verifier: the key is in no object at all; every commit of main,
# feature/receipts and v1.0 matches the original history with the API_KEY
# line removed (trees compared file by file against /tests/expected.txt,
# made from the original repository), metadata kept.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
cd /app/repo || fail "no /app/repo"
git rev-parse -q --verify main >/dev/null || fail "no main"
# every object in the store, loose or packed, reachable or not
if git cat-file --batch-all-objects --batch 2>/dev/null | grep -a -q 'sk_live_7Hq2ZbX9rT4mW1pK'; then fail "the key is still in .git's objects"; fi
grep -r -a -q 'sk_live_7Hq2ZbX9rT4mW1pK' .git 2>/dev/null && fail "the key is still somewhere in .git"
grep -r -a -q 'sk_live_7Hq2ZbX9rT4mW1pK' --exclude-dir=.git . && fail "the key is in the working tree"
[ "$(git symbolic-ref --short HEAD 2>/dev/null)" = main ] || fail "main is not checked out"
[ -z "$(git status --porcelain)" ] || fail "working tree not clean"
[ "$(git for-each-ref --format='%(refname)' refs/heads refs/tags | sort | tr '\n' ' ')" = "refs/heads/feature/receipts refs/heads/main refs/tags/v1.0 " ] ||
  fail "refs: $(git for-each-ref --format='%(refname)' | tr '\n' ' ')"
# what each commit of each ref holds: subject, author, dates, and a hash of every file
describe() {
  for ref in main feature/receipts v1.0; do
    git rev-list --reverse "$ref" | while read -r c; do
      printf '%s | %s\n' "$ref" "$(git log -1 --format='%s | %an <%ae> | %at | %ct' "$c")"
      git ls-tree -r "$c" | awk '{print $3 "\t" $4}' | while IFS=$'\t' read -r blob path; do
        printf '    %s %s\n' "$path" "$(git cat-file blob "$blob" | sha256sum | cut -c1-16)"
      done
    done
  done
}
diff <(describe) /tests/expected.txt >/tmp/describe.diff || { head -20 /tmp/describe.diff; fail "history differs from the original minus the key"; }
echo PASS
echo 1 >/logs/verifier/reward.txt
