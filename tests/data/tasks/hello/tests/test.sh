#!/bin/bash
# reward 1 when /app/hello.txt holds exactly the expected line; details in reward.json
if [ "$(cat /app/hello.txt 2>/dev/null)" = "$EXPECTED" ]; then r=1; else r=0; fi
echo "{\"reward\": $r, \"exists\": $([ -e /app/hello.txt ] && echo 1 || echo 0)}" > /logs/verifier/reward.json
