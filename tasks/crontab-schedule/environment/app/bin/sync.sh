#!/bin/bash
echo "sync ran at $(date)"
