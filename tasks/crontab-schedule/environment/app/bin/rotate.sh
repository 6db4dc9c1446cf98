#!/bin/bash
echo "rotate ran at $(date)"
