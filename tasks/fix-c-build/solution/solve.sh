#!/usr/bin/env bash
# Reference solution: tab-indented recipes, io.o linked, -lm, the comparator
# defined once (not in the header), population stddev, median index.
set -euo pipefail
cd /app
cat > Makefile <<'MK'
# Builds the stats tool.
CC = gcc
CFLAGS = -O2 -Wall -std=c11
OBJS = src/main.o src/stats.o src/io.o

stats: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $(OBJS) -lm

src/%.o: src/%.c src/stats.h src/io.h
	$(CC) $(CFLAGS) -c -o $@ $<

clean:
	rm -f stats src/*.o

.PHONY: clean
MK
python3 - <<'PY'
import re
h = open("src/stats.h").read()
h = re.sub(r"/\* qsort comparator.*?\n}\n", "int cmp_double(const void *a, const void *b);\n", h, flags=re.S)
open("src/stats.h", "w").write(h)
c = open("src/stats.c").read()
c = c.replace('#include <stdlib.h>\n', '#include <stdlib.h>\n\nint cmp_double(const void *a, const void *b) {\n  double x = *(const double *)a, y = *(const double *)b;\n  return (x > y) - (x < y);\n}\n', 1)
c = c.replace("sqrt(s / (n - 1))", "sqrt(s / n)")
c = c.replace("(v[n / 2] + v[n / 2 + 1]) / 2", "(v[n / 2 - 1] + v[n / 2]) / 2")
open("src/stats.c", "w").write(c)
PY
make clean
make
