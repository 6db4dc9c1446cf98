#!/usr/bin/env bash
# Reference solution: directories, then files, then the exceptions.
set -euo pipefail
cd /srv/webapp
# chmod 755 alone keeps a directory's setgid bit: clear it explicitly
find . -type d -exec chmod 755 {} + -exec chmod u-s,g-s,o-t {} +
find . -type f -exec chmod 644 {} +
chmod 755 bin/*
chmod 640 config/*.conf
chmod 700 secrets
chmod 600 secrets/*
chmod 1733 logs
