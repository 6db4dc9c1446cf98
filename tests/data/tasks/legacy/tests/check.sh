#!/bin/bash
grep -qx legacy /app/out.txt
