#!/usr/bin/env bash
# Reference solution: groupadd, useradd, chpasswd -e, passwd -l.
set -euo pipefail
groupadd -g 4200 analytics
useradd -u 4201 -g analytics -G adm -c 'Ana Silva' -s /bin/bash -d /home/ana -m -k /etc/skel ana
chmod 750 /home/ana
hash=$(grep -o '\$6\$[^`]*' /app/REQUEST.md)
printf 'ana:%s\n' "$hash" | chpasswd -e
useradd -u 4202 -g analytics -c 'Ben Okafor' -s /bin/bash -d /home/ben -m ben
chmod 750 /home/ben
passwd -l ben >/dev/null
useradd -r -g analytics -s /usr/sbin/nologin -d /var/lib/etl -m etl
chmod 700 /var/lib/etl
mkdir -p /srv/analytics
chown root:analytics /srv/analytics
chmod 2770 /srv/analytics
id ana; id ben; id etl
