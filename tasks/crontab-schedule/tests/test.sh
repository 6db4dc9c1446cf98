#!/usr/bin/env bash
# Verifier: the crontab's schedules, expanded minute by minute over 2025,
# equal the runbook's; SHELL and MAILTO set; commands log as asked.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
python3 /tests/check_crontab.py || { echo FAIL; exit 0; }
echo PASS
echo 1 >/logs/verifier/reward.txt
