"""Writes the version-1 database (deterministic). Usage: make-db.py DB"""
import random
import sqlite3
import sys

r = random.Random(21)
db = sqlite3.connect(sys.argv[1])
db.executescript("""
PRAGMA user_version = 1;
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), total_cents INTEGER NOT NULL);
""")
names = ["Ines Duarte", "Tom Becker", "Yuki Sato", "Amara Obi", "Lars Lund", "Mia Costa", "Ravi Rao", "Zoe Klein",
         "Omar Aziz", "Eva Horvat", "Kai Jensen", "Lea Roux", "Noah Levi", "Sara Malik", "Ivo Petrov", "Ana Lima"]
users = []
for i, n in enumerate(names, start=1):
    first, last = n.lower().split()
    email = f"{first}.{last}@example.net"
    users.append((i, n, email, f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.choice([2021, 2022, 2023])}"))
# duplicates created later by a buggy sign-up form: case and spaces differ
for j, src in enumerate([3, 7, 7, 12], start=len(names) + 1):
    n, e = users[src - 1][1], users[src - 1][2]
    e = [" " + e.upper(), e.capitalize() + " ", e.replace("@", "@").upper(), "  " + e][j % 4]
    users.append((j, n, e, f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/2024"))
# other emails with stray case/space but no duplicate
users[4] = (5, users[4][1], "  Lars.Lund@Example.NET", users[4][3])
db.executemany("INSERT INTO users VALUES(?,?,?,?)", users)
for k in range(1, 61):
    db.execute("INSERT INTO orders VALUES(?,?,?)", (k, r.randint(1, len(users)), r.randint(100, 99999)))
db.commit()
