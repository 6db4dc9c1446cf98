"""Compares /app/data/orders_clean.csv with the expected rows: parsed as
CSV (so any valid quoting passes), exact field text, LF only, UTF-8."""
import csv
import sys

path = "/app/data/orders_clean.csv"
try:
    raw = open(path, "rb").read()
except OSError as e:
    sys.exit(f"cannot read {path}: {e}")
if b"\r" in raw:
    sys.exit("CR characters in the output: line endings must be LF")
try:
    text = raw.decode("utf-8")
except UnicodeDecodeError:
    sys.exit("not UTF-8")
if text.startswith("\ufeff"):
    sys.exit("byte-order mark at the start")
got = list(csv.reader(text.splitlines(keepends=True), strict=True))
want = list(csv.reader(open("/tests/expected.csv", newline="", encoding="utf-8")))
if got != want:
    for k, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.exit(f"row {k}: got {g}, want {w}")
    sys.exit(f"{len(got)} rows, want {len(want)}")
