#!/usr/bin/env bash
# Reference solution: one transaction of SQL.
set -euo pipefail
sqlite3 /app/app.db <<'SQL'
PRAGMA foreign_keys = ON;
BEGIN;
UPDATE users SET email = lower(trim(email));
UPDATE orders SET user_id = (
  SELECT min(u2.id) FROM users u1 JOIN users u2 ON u2.email = u1.email WHERE u1.id = orders.user_id);
DELETE FROM users WHERE id > (SELECT min(u2.id) FROM users u2 WHERE u2.email = users.email);
UPDATE users SET created = substr(created, 7, 4) || '-' || substr(created, 4, 2) || '-' || substr(created, 1, 2)
  WHERE created LIKE '__/__/____';
CREATE UNIQUE INDEX users_email_unique ON users(email);
PRAGMA user_version = 2;
COMMIT;
SQL
sqlite3 /app/app.db 'PRAGMA user_version; SELECT count(*) FROM users;'
