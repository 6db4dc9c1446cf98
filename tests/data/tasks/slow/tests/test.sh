#!/bin/bash
if [ -e /app/done ] || [ -e /app/late ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt
