#!/bin/bash
# Terminal-Bench 1.0: the exit status is the verdict
bash "$TEST_DIR/check.sh"
