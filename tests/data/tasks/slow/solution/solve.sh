#!/bin/bash
# outlives the agent timeout, with a child that would outlive it too
(sleep 60.123; touch /app/late) &
sleep 60.123
touch /app/done
