#!/usr/bin/env bash
# Reference solution: every object lists the headers it includes,
# version.h depends on VERSION and its generator (run through sh), table.o
# is linked, clean is phony.
set -euo pipefail
cd /app
cat >Makefile <<'MK'
# Builds ./app. Targets: app (default), clean.
CC = gcc
CFLAGS = -O2 -Wall

app: main.o util.o table.o
	$(CC) -o app main.o util.o table.o

main.o: main.c util.h version.h
	$(CC) $(CFLAGS) -c main.c

util.o: util.c util.h
	$(CC) $(CFLAGS) -c util.c

table.o: table.c
	$(CC) $(CFLAGS) -c table.c

table.c: table.c.in
	sed "s/@VALUES@/$$(seq -s, 1 10)/" table.c.in > table.c.tmp && mv table.c.tmp table.c

version.h: VERSION gen-version.sh
	sh ./gen-version.sh > version.h.tmp && mv version.h.tmp version.h

clean:
	rm -f app *.o version.h table.c

.PHONY: clean
MK
make clean
make -j8
./app --version
