#!/usr/bin/env bash
# Reference solution: skip empty lines and lines without '=', keys on the
# heap (any length), realloc by bytes not entries, trim safe on an empty
# string, no qsort on a NULL array.
set -euo pipefail
cd /app
cat > src/kvsum.c <<'C'
/* kvsum: sums integer values per key from key=value lines. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
  char *key;
  long total;
};

static struct entry *entries;
static size_t n_entries, cap_entries;

static void *xalloc(void *p) {
  if (!p) {
    perror("kvsum");
    exit(1);
  }
  return p;
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static char *trim(char *s) {
  while (blank(*s)) s++;
  char *e = s + strlen(s);
  while (e > s && blank(e[-1])) *--e = '\0';
  return s;
}

static void add(const char *key, long v) {
  for (size_t i = 0; i < n_entries; i++)
    if (strcmp(entries[i].key, key) == 0) {
      entries[i].total += v;
      return;
    }
  if (n_entries == cap_entries) {
    cap_entries = cap_entries ? cap_entries * 2 : 4;
    entries = xalloc(realloc(entries, cap_entries * sizeof *entries));
  }
  entries[n_entries].key = xalloc(strdup(key));
  entries[n_entries].total = v;
  n_entries++;
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: kvsum FILE\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    char *s = trim(line);
    if (*s == '#' || *s == '\0') continue;
    char *eq = strchr(s, '=');
    if (!eq) continue;
    *eq = '\0';
    add(trim(s), strtol(trim(eq + 1), NULL, 10));
  }
  fclose(f);
  if (n_entries) qsort(entries, n_entries, sizeof *entries, by_key);
  for (size_t i = 0; i < n_entries; i++) {
    printf("%s %ld\n", entries[i].key, entries[i].total);
    free(entries[i].key);
  }
  free(entries);
  return 0;
}
C
make -B
./kvsum data/sales.txt
