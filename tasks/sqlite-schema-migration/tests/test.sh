#!/usr/bin/env bash
# Verifier: the migrated database equals the expected version 2 (computed
# from the version-1 data in Python when the task was written).
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
db=/app/app.db
[ -f $db ] || fail "no $db"
[ "$(sqlite3 $db 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
[ "$(sqlite3 $db 'PRAGMA user_version')" = 2 ] || fail "user_version is not 2"
diff <(sqlite3 $db 'SELECT id, name, email, created FROM users ORDER BY id') /tests/users.psv || fail "users differ"
diff <(sqlite3 $db 'SELECT id, user_id, total_cents FROM orders ORDER BY id') /tests/orders.psv || fail "orders differ"
[ "$(sqlite3 $db "SELECT \"unique\" FROM pragma_index_list('users') WHERE name = 'users_email_unique'")" = 1 ] || fail "no unique index users_email_unique"
[ "$(sqlite3 $db "SELECT group_concat(name) FROM pragma_index_info('users_email_unique')")" = email ] || fail "users_email_unique is not on (email)"
[ -z "$(sqlite3 $db 'PRAGMA foreign_key_check')" ] || fail "orders point at missing users"
[ "$(sqlite3 $db "SELECT group_concat(name) FROM pragma_table_info('users')")" = "id,name,email,created" ] || fail "users columns changed"
[ "$(sqlite3 $db "SELECT group_concat(name) FROM pragma_table_info('orders')")" = "id,user_id,total_cents" ] || fail "orders columns changed"
echo PASS
echo 1 >/logs/verifier/reward.txt
