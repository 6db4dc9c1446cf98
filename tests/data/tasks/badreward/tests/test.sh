#!/bin/bash
# a broken verifier: the reward is not a number
echo "passed!" > /logs/verifier/reward.txt
