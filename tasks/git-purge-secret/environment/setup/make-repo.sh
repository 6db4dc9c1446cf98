#!/usr/bin/env bash
# A repository whose third commit added config/prod.env with a live API key;
# later commits edit it and other files; a tag and a second branch reach
# the secret too. Fixed dates: same hashes each build.
set -euo pipefail
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$1
git init -q -b main "$repo"
cd "$repo"
git config user.name "Pat Coder"
git config user.email pat@example.com
at=1710000000
commit() { at=$((at + 86400)); GIT_AUTHOR_DATE="@$at +0000" GIT_COMMITTER_DATE="@$at +0000" git commit -q -m "$1"; }
mkdir -p config src
echo "# payments" >README.md
printf 'def charge(amount):\n    return {"ok": True, "amount": amount}\n' >src/pay.py
git add -A; commit "initial"
printf 'DEBUG=1\n' >config/dev.env
git add -A; commit "dev config"
printf 'DEBUG=0\nAPI_URL=https://api.example.com\nAPI_KEY=sk_live_7Hq2ZbX9rT4mW1pK\n' >config/prod.env
git add -A; commit "prod config"
printf 'def refund(amount):\n    return {"ok": True, "amount": -amount}\n' >>src/pay.py
git add -A; commit "refunds"
git tag v1.0
printf 'DEBUG=0\nAPI_URL=https://api.example.com\nAPI_KEY=sk_live_7Hq2ZbX9rT4mW1pK\nTIMEOUT=30\n' >config/prod.env
git add -A; commit "prod timeout"
git checkout -q -b feature/receipts
printf 'def receipt(x):\n    return f"receipt {x}"\n' >src/receipt.py
git add -A; commit "receipts"
git checkout -q main
echo "Deploy with make deploy." >>README.md
git add -A; commit "deploy notes"
