#!/usr/bin/env bash
# Builds the task's repository: three commits, the third dropped with
# reset --hard, then one more commit on top. Dates fixed: same hashes each build.
set -euo pipefail
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$1
git init -q -b main "$repo"
cd "$repo"
git config user.name "Dana Dev"
git config user.email dana@example.com
n=0
commit() { n=$((n + 1)); GIT_AUTHOR_DATE="2024-03-0$n 10:00:00 +0000" GIT_COMMITTER_DATE="2024-03-0$n 10:00:00 +0000" git commit -q -m "$1"; }
cat > README.md <<'R'
# fetcher
Downloads things.
R
cat > app.py <<'P'
from fetch import fetch


def main():
    print(fetch("https://example.com"))


if __name__ == "__main__":
    main()
P
cat > fetch.py <<'P'
def fetch(url):
    return "GET " + url
P
git add -A; commit "initial import"
cat > config.py <<'P'
DEFAULTS = {"timeout": 10}
P
git add -A; commit "add config loader"
cat > retry.py <<'P'
import time


def with_retry(fn, attempts=3, delay=0.5):
    """Calls fn() until it succeeds, at most `attempts` times."""
    for i in range(attempts):
        try:
            return fn()
        except OSError:
            if i == attempts - 1:
                raise
            time.sleep(delay * (2 ** i))
P
cat > fetch.py <<'P'
from retry import with_retry


def fetch(url):
    return with_retry(lambda: "GET " + url)
P
git add -A; commit "add retry logic to fetch"
git reset -q --hard HEAD~1
cat >> README.md <<'R'

## Usage
    python3 app.py
R
git add -A; commit "document usage in README"
