#!/usr/bin/env bash
# Builds /srv/webapp with wrong modes everywhere.
set -euo pipefail
r=/srv/webapp
mkdir -p $r/public/css $r/public/img $r/bin $r/config $r/secrets $r/logs "$r/public/old files"
cat > $r/POLICY.txt <<'P'
File mode policy for /srv/webapp (owner root for everything)

1. Directories: 755 (rwxr-xr-x), except secrets/ which is 700.
2. Regular files: 644 (rw-r--r--), except:
   - every file in bin/ (executables): 755;
   - every file in secrets/: 600;
   - config/*.conf: 640.
3. No file or directory may be world-writable, and none may carry the
   setuid, setgid or sticky bits.
4. logs/ is the exception to rules 1 and 3: it is 1733 (rwx-wx-wt: anyone may
   create files, nobody may list it or remove others' files); files in it
   follow rule 2.
P
echo '<h1>hello</h1>' > $r/public/index.html
echo 'body{}' > $r/public/css/site.css
printf 'GIF89a' > $r/public/img/logo.gif
echo 'old' > "$r/public/old files/page one.html"
printf '#!/bin/sh\necho serve\n' > $r/bin/serve
printf '#!/bin/sh\necho migrate\n' > $r/bin/migrate.sh
echo 'listen=8080' > $r/config/app.conf
echo 'level=info' > $r/config/logging.conf
echo 'see app.conf' > $r/config/README
echo 'sk_live_123' > $r/secrets/api.key
echo 'hunter2' > $r/secrets/db.password
echo 'boot' > $r/logs/app.log
chmod 777 $r $r/public $r/public/css
chmod 700 $r/public/img
chmod 775 "$r/public/old files" $r/config
chmod 755 $r/secrets $r/logs
chmod 2755 $r/bin
chmod 666 $r/public/index.html $r/config/app.conf
chmod 600 $r/public/css/site.css
chmod 755 $r/public/img/logo.gif "$r/public/old files/page one.html"
chmod 644 $r/bin/serve $r/secrets/api.key
chmod 4755 $r/bin/migrate.sh
chmod 644 $r/secrets/db.password $r/config/logging.conf
chmod 664 $r/config/README
chmod 666 $r/logs/app.log
chmod 644 $r/POLICY.txt
