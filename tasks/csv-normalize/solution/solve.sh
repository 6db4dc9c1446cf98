#!/usr/bin/env bash
# Reference solution: Python's csv module and datetime.
set -euo pipefail
python3 - <<'PY'
import csv, datetime, re
rows = {}
with open("/app/data/orders_export.csv", newline="", encoding="utf-8") as f:
    rd = csv.reader(f)
    next(rd)
    for row in rd:
        if not row or all(not c.strip() for c in row):
            continue
        i, name, city, d, amt = (c.strip() for c in row)
        for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%d %b %Y"):
            try:
                d = datetime.datetime.strptime(d, fmt).date().isoformat()
                break
            except ValueError:
                pass
        else:
            raise SystemExit(f"unknown date {d!r}")
        amt = f"{float(re.sub(r'[^0-9.]', '', amt)):.2f}"
        rows[(int(i), name, city, d, amt)] = 1
with open("/app/data/orders_clean.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "customer", "city", "date", "amount"])
    for r in sorted(rows):
        w.writerow(r)
PY
head -3 /app/data/orders_clean.csv
