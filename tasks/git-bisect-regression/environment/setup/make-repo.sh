#!/usr/bin/env bash
# 60 commits of a tiny price calculator; one of them (with an innocent
# message) breaks the rounding of totals. Fixed dates: same hashes each build.
set -euo pipefail
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
repo=$1
git init -q -b main "$repo"
cd "$repo"
git config user.name "Rui Builder"
git config user.email rui@example.com
at=1700000000
commit() { at=$((at + 3600)); GIT_AUTHOR_DATE="@$at +0000" GIT_COMMITTER_DATE="@$at +0000" git commit -q -m "$1"; }
cat > calc.py <<'P'
"""Order totals. Usage: python3 calc.py QTY:PRICE... -> total with VAT."""
import sys
from decimal import Decimal, ROUND_HALF_UP

VAT = Decimal("0.21")


def total(items):
    net = sum(Decimal(q) * Decimal(p) for q, p in items)
    gross = net * (1 + VAT)
    return gross.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


if __name__ == "__main__":
    print(total(a.split(":") for a in sys.argv[1:]))
P
cat > check.sh <<'P'
#!/bin/sh
# Regression check: exits 0 when the totals are right.
[ "$(python3 calc.py 1:0.50)" = "0.61" ] && [ "$(python3 calc.py 3:19.99 2:5.25)" = "85.27" ]
P
chmod +x check.sh
echo "# calc" > README.md
git add -A; commit "calculator with VAT"
msgs=("tidy imports" "document usage" "add changelog" "spelling" "reword docstring" "add license header"
      "note on VAT" "format README" "add contributors" "explain rounding policy")
for i in $(seq 2 60); do
  [ $i -eq 37 ] || echo "- change $i" >> CHANGELOG.md
  if [ $i -eq 37 ]; then
    sed -i 's/rounding=ROUND_HALF_UP)/rounding=ROUND_HALF_UP if net else ROUND_HALF_UP)/' calc.py
    sed -i 's/    gross = net \* (1 + VAT)/    gross = net * (1 + VAT) - Decimal("0.001")/' calc.py
  fi
  if [ $((i % 7)) -eq 0 ]; then echo "Line $i of docs." >> README.md; fi
  git add -A; commit "${msgs[$((i % 10))]} ($i)"
done
