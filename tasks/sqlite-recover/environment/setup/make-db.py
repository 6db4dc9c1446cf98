"""Writes the task's shop database (deterministic contents), then damages
one leaf page of the customers table. Usage: make-db.py DB [CSV]
(CSV: also write the undamaged customers rows, for the verifier)."""
import random
import sqlite3
import sys

path = sys.argv[1]
r = random.Random(7)
db = sqlite3.connect(path)
db.executescript("""
PRAGMA page_size=4096;
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, city TEXT, balance_cents INTEGER NOT NULL);
CREATE TABLE invoices(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), amount_cents INTEGER NOT NULL, issued TEXT NOT NULL);
CREATE INDEX invoices_by_customer ON invoices(customer_id);
""")
first = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya"]
last = ["Silva", "Novak", "Kim", "Okafor", "Berg", "Rossi", "Haddad", "Tanaka", "Moreau", "Kowalski"]
cities = ["Lisbon", "Ljubljana", "Seoul", "Lagos", "Oslo", "Turin", "Beirut", "Osaka", "Lyon", "Krakow"]
rows = []
for i in range(1, 801):
    f, l = r.choice(first), r.choice(last)
    rows.append((i, f"{f} {l}", f"{f.lower()}.{l.lower()}{i}@example.org", r.choice(cities), r.randint(0, 500000)))
db.executemany("INSERT INTO customers VALUES(?,?,?,?,?)", rows)
for i in range(1, 1501):
    db.execute("INSERT INTO invoices VALUES(?,?,?,?)",
               (i, r.randint(1, 800), r.randint(500, 90000), f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"))
db.commit()
(page,) = db.execute("SELECT pageno FROM dbstat WHERE name = 'customers' AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 4").fetchone()
db.close()
with open(path, "r+b") as fh:  # garbage over the page header and cell pointers
    fh.seek((page - 1) * 4096)
    fh.write(b"\xff" * 64)
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as out:
        for row in rows:
            out.write("|".join(str(v) for v in row) + "\n")
