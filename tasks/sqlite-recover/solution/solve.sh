#!/usr/bin/env bash
# Reference solution: .dump reads around the bad page (it retries the table
# backwards after the error) but ends with ROLLBACK; load it with COMMIT.
set -euo pipefail
cd /app
rm -f recovered.db
sqlite3 shop.db .dump >/tmp/shop.sql || true
sed -e 's/^ROLLBACK; -- due to errors.*$/COMMIT;/' /tmp/shop.sql | grep -v '^/\*\*\*\*\*\* CORRUPTION ERROR' | sqlite3 recovered.db
sqlite3 recovered.db 'PRAGMA integrity_check; SELECT count(*) FROM customers; SELECT count(*) FROM invoices;'
