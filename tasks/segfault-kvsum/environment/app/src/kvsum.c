/* kvsum: sums integer values per key from key=value lines. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
  char key[16];
  long total;
};

static struct entry *entries;
static size_t n_entries, cap_entries;

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  char *e = s + strlen(s) - 1;
  while (e >= s && (*e == ' ' || *e == '\t' || *e == '\n' || *e == '\r')) *e-- = '\0';
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
    entries = realloc(entries, cap_entries);
  }
  strcpy(entries[n_entries].key, key);
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
    if (*s == '#') continue;
    char *eq = strchr(s, '=');
    *eq = '\0';
    add(trim(s), strtol(trim(eq + 1), NULL, 10));
  }
  fclose(f);
  qsort(entries, n_entries, sizeof *entries, by_key);
  for (size_t i = 0; i < n_entries; i++) printf("%s %ld\n", entries[i].key, entries[i].total);
  free(entries);
  return 0;
}
