/* replay_main.c - main() for the fuzz targets outside libFuzzer: runs
 * LLVMFuzzerTestOneInput once on each file named on the command line or
 * found in a directory named there (the seed corpus and the kept crash
 * inputs), so the normal and sanitizer CTest runs replay them with gcc. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the target on one file; returns 0, or -1 when it cannot be read. */
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
    if ((n += got) == cap) buf = realloc(buf, cap *= 2);
  fclose(f);
  if (!buf) return -1;
  /* an exact-size copy, so ASan sees a read past the input */
  uint8_t *data = malloc(n ? n : 1);
  memcpy(data, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(data, n);
  free(data);
  return 0;
}

int main(int argc, char **argv) {
  int count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      struct dirent **names;
      int n = scandir(argv[i], &names, NULL, alphasort);
      for (int k = 0; k < n; k++) {
        if (names[k]->d_name[0] != '.') {
          char path[4096];
          snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
          if (replay_file(path)) return 1;
          count++;
        }
        free(names[k]);
      }
      free(names);
    } else {
      if (replay_file(argv[i])) return 1;
      count++;
    }
  }
  printf("replayed %d inputs\n", count);
  return 0;
}
