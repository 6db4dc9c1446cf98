"""Writes /app/photos: unique files, duplicate groups across folders,
same-size look-alikes that differ in one byte, names with spaces."""
import os
import random

r = random.Random(99)
root = "/app/photos"
dirs = ["2021/summer", "2021/winter", "2022/trip to Oslo", "2022/misc", "phone-backup", "phone-backup/old"]
for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
n = 0


def blob(size):
    return bytes(r.getrandbits(8) for _ in range(size))


def put(content):
    global n
    n += 1
    d = r.choice(dirs)
    name = f"IMG_{1000 + n}.jpg" if r.random() < 0.8 else f"copy of IMG_{1000 + n}.jpg"
    with open(os.path.join(root, d, name), "wb") as f:
        f.write(content)


for _ in range(25):  # unique
    put(blob(r.randint(2000, 20000)))
for _ in range(8):  # duplicate groups of 2..4
    c = blob(r.randint(2000, 20000))
    for _ in range(r.randint(2, 4)):
        put(c)
for _ in range(4):  # look-alikes: same size, one byte differs
    c = bytearray(blob(8192))
    put(bytes(c))
    c[r.randrange(len(c))] ^= 0x01
    put(bytes(c))
