#!/usr/bin/env bash
# Reference solution.
set -euo pipefail
cat >/app/crontab <<'CRON'
SHELL=/bin/bash
MAILTO=ops@example.com
# m   h     dom mon dow  command
30    2     *   *   1-5  /app/bin/backup.sh >> /var/log/jobs/backup.log 2>&1
*/15  *     *   *   *    /app/bin/cleanup.sh >> /var/log/jobs/cleanup.log 2>&1
0     6     1   *   *    /app/bin/report.sh >> /var/log/jobs/report.log 2>&1
45    23    *   *   0    /app/bin/rotate.sh >> /var/log/jobs/rotate.log 2>&1
*/10  8-17  *   *   mon-fri /app/bin/sync.sh >> /var/log/jobs/sync.log 2>&1
CRON
