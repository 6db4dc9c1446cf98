#!/usr/bin/env bash
# Verifier: the cleaned CSV, parsed, equals the expected rows.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
python3 /tests/check.py || { echo FAIL; exit 0; }
echo PASS
echo 1 >/logs/verifier/reward.txt
