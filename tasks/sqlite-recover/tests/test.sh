#!/usr/bin/env bash
# Verifier: recovered.db is healthy, has the original schema, all invoices
# (by checksum), at least 727 of the 800 customers (all the damaged page
# did not take), and every customer row equal to an original one.
mkdir -p /logs/verifier
echo 0 >/logs/verifier/reward.txt
fail() { echo "FAIL: $*"; exit 0; }
db=/app/recovered.db
[ -f $db ] || fail "no $db"
[ "$(sqlite3 $db 'PRAGMA integrity_check' 2>&1)" = ok ] || fail "integrity_check is not ok"
schema=$(sqlite3 $db "SELECT type || ' ' || name || ' ' || tbl_name FROM sqlite_schema ORDER BY name" 2>&1)
[ "$schema" = "table customers customers
table invoices invoices
index invoices_by_customer invoices" ] || fail "schema differs: $schema"
cols=$(sqlite3 $db "SELECT group_concat(name || ':' || type || ':' || pk, ',') FROM pragma_table_info('customers')")
[ "$cols" = "id:INTEGER:1,name:TEXT:0,email:TEXT:0,city:TEXT:0,balance_cents:INTEGER:0" ] || fail "customers columns: $cols"
idx=$(sqlite3 $db "SELECT group_concat(name) FROM pragma_index_info('invoices_by_customer')")
[ "$idx" = customer_id ] || fail "index invoices_by_customer is on '$idx'"
sum=$(sqlite3 $db "SELECT id, customer_id, amount_cents, issued FROM invoices ORDER BY id" | sha256sum | cut -c1-64)
[ "$sum" = "$(cat /tests/invoices.sha256)" ] || fail "invoices differ from the original"
sqlite3 $db "SELECT id, name, email, city, balance_cents FROM customers ORDER BY id" >/tmp/got.psv
n=$(wc -l </tmp/got.psv)
[ "$n" -ge 727 ] || fail "only $n customers recovered (727 are readable)"
extra=$(sort /tmp/got.psv | comm -23 - <(sort /tests/customers.psv) | head -3)
[ -z "$extra" ] || fail "rows that were not in the original: $extra"
[ "$(cut -d'|' -f1 /tmp/got.psv | sort -u | wc -l)" = "$n" ] || fail "duplicate customer ids"
echo "PASS ($n customers)"
echo 1 >/logs/verifier/reward.txt
