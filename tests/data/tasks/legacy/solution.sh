#!/bin/bash
echo legacy > /app/out.txt
