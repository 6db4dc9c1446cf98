#!/usr/bin/env bash
# Reference solution: one jq program.
set -euo pipefail
mkdir -p /app/out
jq '[.orders[] | select(.status == "paid")]
    | group_by(.customer.id)
    | map({customer_id: .[0].customer.id, name: .[0].customer.name, orders: length,
           items: ([.[].items[].qty] | add),
           total_cents: ([.[].items[] | .qty * .unit_price_cents] | add)})
    | sort_by(-.total_cents, .customer_id)' /app/data/orders.json >/app/out/customers.json
