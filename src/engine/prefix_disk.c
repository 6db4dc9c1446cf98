/* prefix_disk.c - the prefix cache's disk tier: file format, index, LRU
 * bound and the writer thread (see prefix_disk.h). */
#include "engine/prefix_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "base/timer.h"
#include "model/llama.h"

enum { HEADER_BYTES = 64, FORMAT_VERSION = 1 };
static const char MAGIC[8] = {'P', 'R', 'E', 'F', 'T', 'K', 'V', '1'};

typedef struct {
  uint64_t key, last_use, bytes;
} entry;

typedef struct job {
  uint64_t key;
  float *data; /* k then v */
  struct job *next;
} job;

struct preft_prefix_disk {
  char *dir;
  uint64_t model_id, max_bytes;
  int n_layers, kv_dim, block_size;
  size_t block_floats; /* per k or v */
  uint64_t file_bytes; /* header + payload */
  /* index: entries[] and an open-addressing key -> entries index map */
  entry *entries;
  int n_entries, cap_entries;
  uint64_t *map_keys; /* 0 = empty */
  int *map_vals;
  size_t map_cap;
  uint64_t clock;
  /* write queue */
  job *q_head, *q_tail;
  size_t q_bytes, q_max;
  job *current; /* the job the writer is writing (out of the queue) */
  bool stop, started;
  /* shutdown bound (preft_prefix_disk_set_deadline): preft_now() time
   * after which nothing more is written or waited for; 0: none */
  double deadline;
  bool writer_done; /* the writer has left its loop */
  bool orphaned;    /* close gave up waiting for it: the writer frees d */
  pthread_mutex_t mu;
  pthread_cond_t work, idle;
  pthread_t writer;
  preft_prefix_disk_stats st;
};

/* ---- model identity ------------------------------------------------------------ */

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

static uint64_t mix_floats(uint64_t h, const float *p, size_t n) {
  return p ? mix(h, preft_checksum64(p, n * sizeof *p)) : mix(h, 0);
}

static uint64_t mix_weight(uint64_t h, const preft_weight *w, size_t rows, size_t cols) {
  h = mix(h, (uint64_t)w->dtype);
  if (!w->data) return mix(h, 0);
  return mix(h, preft_checksum64(w->data, rows * preft_dtype_row_bytes(w->dtype, cols)));
}

uint64_t preft_prefix_model_id(const preft_model *m) {
  const preft_model_config *c = &m->cfg;
  uint64_t h = 0x5052454654ull; /* "PREFT" */
  const int64_t ints[] = {c->arch,           c->vocab,          c->dim,        c->ffn,
                          c->n_layers,       c->n_heads,        c->n_kv_heads, c->head_dim,
                          c->max_pos,        c->sliding_window, c->rope_type,  c->rope_original_max_pos,
                          c->tie_embeddings, c->qkv_bias,       c->o_bias};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) h = mix(h, (uint64_t)ints[i]);
  const double reals[] = {c->norm_eps, c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                          c->rope_high_freq_factor};
  for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
    uint64_t bits;
    memcpy(&bits, &reals[i], sizeof bits);
    h = mix(h, bits);
  }
  size_t kv_dim = (size_t)c->n_kv_heads * (size_t)c->head_dim, dim = (size_t)c->dim;
  /* every layer's keys and values depend on the layers below them: the key
   * and value projections of each layer and the norms tell checkpoints of
   * one shape apart (hashed in full: ~2 ms per 10 MB) */
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *lw = &m->layers[l];
    h = mix_weight(h, &lw->wk, kv_dim, dim);
    h = mix_weight(h, &lw->wv, kv_dim, dim);
    h = mix_floats(h, lw->bk, kv_dim);
    h = mix_floats(h, lw->bv, kv_dim);
    h = mix_floats(h, lw->attn_norm, dim);
    h = mix_floats(h, lw->ffn_norm, dim);
  }
  return h ? h : 1;
}

/* ---- index ----------------------------------------------------------------------- */

static size_t map_slot(const preft_prefix_disk *d, uint64_t key) {
  return (size_t)(mix(key, 0) & (d->map_cap - 1));
}

static int map_find(const preft_prefix_disk *d, uint64_t key) {
  for (size_t i = map_slot(d, key); d->map_keys[i]; i = (i + 1) & (d->map_cap - 1))
    if (d->map_keys[i] == key) return d->map_vals[i];
  return -1;
}

static void map_set(preft_prefix_disk *d, uint64_t key, int val) {
  size_t i = map_slot(d, key);
  while (d->map_keys[i] && d->map_keys[i] != key) i = (i + 1) & (d->map_cap - 1);
  d->map_keys[i] = key;
  d->map_vals[i] = val;
}

static void map_remove(preft_prefix_disk *d, uint64_t key) {
  size_t i = map_slot(d, key), mask = d->map_cap - 1;
  while (d->map_keys[i] && d->map_keys[i] != key) i = (i + 1) & mask;
  if (!d->map_keys[i]) return;
  d->map_keys[i] = 0;
  for (size_t j = (i + 1) & mask; d->map_keys[j]; j = (j + 1) & mask) {
    size_t home = map_slot(d, d->map_keys[j]);
    /* move j into the hole unless its home lies cyclically in (i, j] */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      d->map_keys[i] = d->map_keys[j];
      d->map_vals[i] = d->map_vals[j];
      d->map_keys[j] = 0;
      i = j;
    }
  }
}

static void map_rebuild(preft_prefix_disk *d, size_t cap) {
  free(d->map_keys);
  free(d->map_vals);
  d->map_cap = cap;
  d->map_keys = preft_xcalloc(cap, sizeof *d->map_keys);
  d->map_vals = preft_xcalloc(cap, sizeof *d->map_vals);
  for (int i = 0; i < d->n_entries; i++) map_set(d, d->entries[i].key, i);
}

static void index_add(preft_prefix_disk *d, uint64_t key, uint64_t bytes, uint64_t last_use) {
  if (d->n_entries == d->cap_entries) {
    d->cap_entries = d->cap_entries ? d->cap_entries * 2 : 64;
    d->entries = preft_xrealloc(d->entries, sizeof *d->entries * (size_t)d->cap_entries);
  }
  d->entries[d->n_entries] = (entry){key, last_use, bytes};
  d->n_entries++;
  if ((size_t)d->n_entries * 2 > d->map_cap)
    map_rebuild(d, d->map_cap * 2);
  else
    map_set(d, key, d->n_entries - 1);
  d->st.bytes += bytes;
}

static void index_remove_at(preft_prefix_disk *d, int i) {
  map_remove(d, d->entries[i].key);
  d->st.bytes -= d->entries[i].bytes;
  d->n_entries--;
  if (i != d->n_entries) {
    d->entries[i] = d->entries[d->n_entries];
    map_set(d, d->entries[i].key, i);
  }
}

static char *entry_path(const preft_prefix_disk *d, uint64_t key) {
  char name[32];
  snprintf(name, sizeof name, "%016llx.kvb", (unsigned long long)key);
  return preft_path_join(d->dir, name);
}

/* Removes the least recently used file. */
static void evict_oldest(preft_prefix_disk *d) {
  int best = 0;
  for (int i = 1; i < d->n_entries; i++)
    if (d->entries[i].last_use < d->entries[best].last_use) best = i;
  char *path = entry_path(d, d->entries[best].key);
  unlink(path);
  free(path);
  index_remove_at(d, best);
  d->st.evictions++;
}

/* ---- file format ------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint64_t payload_checksum(const float *k, const float *v, size_t n) {
  return preft_checksum64(k, n * sizeof *k) * 0x100000001b3ull ^ preft_checksum64(v, n * sizeof *v);
}

static void make_header(const preft_prefix_disk *d, uint64_t key, uint64_t sum, uint8_t *h) {
  memset(h, 0, HEADER_BYTES);
  memcpy(h, MAGIC, 8);
  put32(h + 8, FORMAT_VERSION);
  put32(h + 12, 0); /* FP32 */
  put64(h + 16, key);
  put64(h + 24, d->model_id);
  put32(h + 32, (uint32_t)d->n_layers);
  put32(h + 36, (uint32_t)d->kv_dim);
  put32(h + 40, (uint32_t)d->block_size);
  put64(h + 48, d->file_bytes - HEADER_BYTES);
  /* the payload checksum and the header's own share the last 16 bytes:
   * the header checksum covers bytes [0, 56) with the payload sum in place */
  put64(h + 56, sum);
  uint64_t hs = preft_checksum64(h, 56) ^ sum;
  put32(h + 44, (uint32_t)hs);
}

typedef enum { HDR_OK, HDR_BAD, HDR_OTHER } header_state;

/* HDR_OTHER: a sound header of another model or layout. */
static header_state check_header(const preft_prefix_disk *d, const uint8_t *h, uint64_t *key, uint64_t *sum) {
  if (memcmp(h, MAGIC, 8) != 0 || get32(h + 8) != FORMAT_VERSION) return HDR_BAD;
  *sum = get64(h + 56);
  uint8_t copy[HEADER_BYTES];
  memcpy(copy, h, HEADER_BYTES);
  put32(copy + 44, 0);
  if ((uint32_t)(preft_checksum64(copy, 56) ^ *sum) != get32(h + 44)) return HDR_BAD;
  *key = get64(h + 16);
  if (get32(h + 12) != 0 || get64(h + 24) != d->model_id || get32(h + 32) != (uint32_t)d->n_layers ||
      get32(h + 36) != (uint32_t)d->kv_dim || get32(h + 40) != (uint32_t)d->block_size ||
      get64(h + 48) != d->file_bytes - HEADER_BYTES)
    return HDR_OTHER;
  return HDR_OK;
}

static int write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return -1;
    }
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  uint8_t *b = p;
  while (n > 0) {
    ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Writes one entry atomically (temp file + rename). 0 or -1 (errno set, no
 * file left behind). */
static int write_entry(const preft_prefix_disk *d, uint64_t key, const float *data) {
  size_t n = d->block_floats;
  uint8_t h[HEADER_BYTES];
  make_header(d, key, payload_checksum(data, data + n, n), h);
  char name[64];
  snprintf(name, sizeof name, ".%016llx.kvb.tmp.%ld", (unsigned long long)key, (long)getpid());
  char *tmp = preft_path_join(d->dir, name), *path = entry_path(d, key);
  int rc = -1, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    int ok = write_all(fd, h, sizeof h) == 0 && write_all(fd, data, 2 * n * sizeof *data) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
      ok = 0;
      saved = errno;
    }
    if (ok && rename(tmp, path) == 0)
      rc = 0;
    else {
      if (ok) saved = errno;
      unlink(tmp);
      errno = saved;
    }
  }
  free(tmp);
  free(path);
  return rc;
}

/* ---- writer thread ---------------------------------------------------------------- */

/* Whether the shutdown deadline has passed (d->mu held). */
static bool past_deadline(const preft_prefix_disk *d) {
  return d->deadline > 0 && preft_now() >= d->deadline;
}

/* Waits on d->idle (d->mu held) until signalled or the deadline; false
 * when the deadline has passed. */
static bool wait_idle(preft_prefix_disk *d) {
  if (d->deadline <= 0) {
    pthread_cond_wait(&d->idle, &d->mu);
    return true;
  }
  if (past_deadline(d)) return false;
  struct timespec until;
  until.tv_sec = (time_t)d->deadline;
  until.tv_nsec = (long)((d->deadline - (double)until.tv_sec) * 1e9);
  pthread_cond_timedwait(&d->idle, &d->mu, &until); /* d->idle runs on CLOCK_MONOTONIC, as preft_now */
  return !past_deadline(d);
}

static void free_disk(preft_prefix_disk *d) {
  if (d->started) {
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->idle);
  }
  for (job *j = d->q_head, *next; j; j = next) {
    next = j->next;
    free(j->data);
    free(j);
  }
  free(d->dir);
  free(d->entries);
  free(d->map_keys);
  free(d->map_vals);
  free(d);
}

static void *writer_main(void *arg) {
  preft_prefix_disk *d = arg;
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->q_head && !d->stop) pthread_cond_wait(&d->work, &d->mu);
    if (!d->q_head) break;
    job *j = d->q_head;
    d->q_head = j->next;
    if (!d->q_head) d->q_tail = NULL;
    d->current = j;
    int i = map_find(d, j->key);
    if (past_deadline(d)) {
      d->st.dropped++; /* the shutdown's time is up: not written */
    } else if (i >= 0) {
      d->entries[i].last_use = ++d->clock;
    } else if (d->file_bytes <= d->max_bytes) {
      while (d->n_entries > 0 && d->st.bytes + d->file_bytes > d->max_bytes) evict_oldest(d);
      pthread_mutex_unlock(&d->mu);
      int rc = write_entry(d, j->key, j->data);
      int saved = errno;
      pthread_mutex_lock(&d->mu);
      if (rc == 0) {
        index_add(d, j->key, d->file_bytes, ++d->clock);
        d->st.writes++;
        d->st.bytes_written += d->file_bytes;
      } else {
        d->st.write_failures++;
        long f = d->st.write_failures;
        if ((f & (f - 1)) == 0) /* the 1st, 2nd, 4th, ... failure: a full disk stays quiet */
          PREFT_WARN("prefix cache disk tier: cannot write an entry in %s (%s); dropped (%ld so far)", d->dir,
                     strerror(saved), f);
      }
    } else {
      d->st.write_failures++; /* one block is larger than the whole bound */
    }
    d->q_bytes -= 2 * d->block_floats * sizeof(float);
    d->current = NULL;
    free(j->data);
    free(j);
    pthread_cond_broadcast(&d->idle);
  }
  d->writer_done = true;
  pthread_cond_broadcast(&d->idle);
  bool orphaned = d->orphaned;
  pthread_mutex_unlock(&d->mu);
  if (orphaned) free_disk(d); /* close returned without us */
  return NULL;
}

/* ---- start-up scan ---------------------------------------------------------------- */

typedef struct {
  uint64_t key;
  int64_t mtime_ns;
} found;

static int by_mtime(const void *a, const void *b) {
  const found *x = a, *y = b;
  return (x->mtime_ns > y->mtime_ns) - (x->mtime_ns < y->mtime_ns);
}

static bool is_entry_name(const char *name, uint64_t *key) {
  if (strlen(name) != 20 || strcmp(name + 16, ".kvb") != 0) return false;
  for (int i = 0; i < 16; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return false;
  *key = strtoull(name, NULL, 16);
  return true;
}

static int scan_dir(preft_prefix_disk *d, preft_error *err) {
  DIR *dir = opendir(d->dir);
  if (!dir) return preft_fail(err, "--prefix-cache-dir %s: cannot open: %s", d->dir, strerror(errno));
  found *list = NULL;
  size_t n = 0, cap = 0;
  long removed = 0, foreign = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *name = de->d_name;
    char *path = preft_path_join(d->dir, name);
    uint64_t key;
    if (name[0] == '.' && strstr(name, ".kvb.tmp")) { /* a write a crash interrupted */
      unlink(path);
      removed++;
    } else if (is_entry_name(name, &key)) {
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      uint8_t h[HEADER_BYTES];
      struct stat sb;
      uint64_t hkey = 0, sum;
      header_state hs = HDR_BAD;
      if (fd >= 0 && fstat(fd, &sb) == 0 && read_all(fd, h, sizeof h) == 0)
        hs = check_header(d, h, &hkey, &sum);
      if (hs == HDR_OK && (hkey != key || (uint64_t)sb.st_size != d->file_bytes)) hs = HDR_BAD;
      if (hs == HDR_OK) {
        if (n == cap) {
          cap = cap ? cap * 2 : 256;
          list = preft_xrealloc(list, cap * sizeof *list);
        }
        list[n++] = (found){key, (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec};
      } else if (hs == HDR_OTHER) {
        foreign++;
      } else {
        unlink(path);
        removed++;
      }
      if (fd >= 0) close(fd);
    }
    free(path);
  }
  closedir(dir);
  if (n) qsort(list, n, sizeof *list, by_mtime);
  for (size_t i = 0; i < n; i++) index_add(d, list[i].key, d->file_bytes, ++d->clock);
  free(list);
  while (d->n_entries > 0 && d->st.bytes > d->max_bytes) evict_oldest(d);
  PREFT_INFO("prefix cache disk tier %s: %d entries (%.1f MiB of %.1f MiB)%s%s", d->dir, d->n_entries,
             (double)d->st.bytes / (1 << 20), (double)d->max_bytes / (1 << 20),
             removed ? "; removed damaged or unfinished files" : "",
             foreign ? "; skipped entries of another model or layout" : "");
  return 0;
}

/* ---- public ------------------------------------------------------------------------- */

int preft_prefix_disk_open(preft_prefix_disk **out, const char *dir, uint64_t max_bytes, uint64_t model_id,
                           int n_layers, int kv_dim, int block_size, size_t queue_bytes, preft_error *err) {
  if (preft_mkdir_p(dir, err) != 0) return -1;
  preft_prefix_disk *d = preft_xcalloc(1, sizeof *d);
  d->dir = preft_xstrdup(dir);
  d->model_id = model_id;
  d->max_bytes = max_bytes;
  d->n_layers = n_layers;
  d->kv_dim = kv_dim;
  d->block_size = block_size;
  d->block_floats = (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
  d->file_bytes = HEADER_BYTES + 2 * d->block_floats * sizeof(float);
  size_t block = 2 * d->block_floats * sizeof(float);
  d->q_max = queue_bytes ? queue_bytes : (size_t)64 << 20;
  if (d->q_max < 4 * block) d->q_max = 4 * block;
  d->st.max_bytes = max_bytes;
  map_rebuild(d, 64);
  if (scan_dir(d, err) != 0) {
    preft_prefix_disk_close(d);
    return -1;
  }
  /* a write past ulimit -f must fail with EFBIG, not kill the server */
  signal(SIGXFSZ, SIG_IGN);
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->work, NULL);
  pthread_condattr_t monotonic;
  pthread_condattr_init(&monotonic);
  pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
  pthread_cond_init(&d->idle, &monotonic);
  pthread_condattr_destroy(&monotonic);
  if (pthread_create(&d->writer, NULL, writer_main, d) != 0) {
    fprintf(stderr, "preft: cannot start the prefix cache writer thread\n");
    abort();
  }
  d->started = true;
  *out = d;
  return 0;
}

void preft_prefix_disk_close(preft_prefix_disk *d) {
  if (!d) return;
  if (d->started) {
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->work);
    while (!d->writer_done && wait_idle(d)) {
    }
    bool left = !d->writer_done;
    pthread_t writer = d->writer;
    if (left) {
      PREFT_WARN(
          "prefix cache disk tier: a write in %s is still under way at the shutdown deadline; "
          "not waiting for it",
          d->dir);
      d->orphaned = true; /* the writer frees d when its write returns */
    }
    pthread_mutex_unlock(&d->mu);
    if (left) {
      pthread_detach(writer);
      return;
    }
    pthread_join(writer, NULL);
  }
  free_disk(d);
}

void preft_prefix_disk_set_deadline(preft_prefix_disk *d, double seconds) {
  pthread_mutex_lock(&d->mu);
  d->deadline = preft_now() + (seconds > 0 ? seconds : 0) + 1e-9;
  pthread_cond_broadcast(&d->idle);
  pthread_mutex_unlock(&d->mu);
}

/* The job of key waiting for or being written, or NULL. */
static const job *queued(const preft_prefix_disk *d, uint64_t key) {
  if (d->current && d->current->key == key) return d->current;
  for (const job *j = d->q_head; j; j = j->next)
    if (j->key == key) return j;
  return NULL;
}

int preft_prefix_disk_has(preft_prefix_disk *d, uint64_t key) {
  pthread_mutex_lock(&d->mu);
  int i = map_find(d, key);
  if (i >= 0) d->entries[i].last_use = ++d->clock;
  int has = i >= 0 || queued(d, key) != NULL;
  if (!has) d->st.misses++;
  pthread_mutex_unlock(&d->mu);
  return has;
}

void preft_prefix_disk_spill(preft_prefix_disk *d, uint64_t key, const float *k, const float *v, bool wait) {
  size_t n = d->block_floats, bytes = 2 * n * sizeof(float);
  pthread_mutex_lock(&d->mu);
  if (past_deadline(d)) {
    d->st.dropped++;
    pthread_mutex_unlock(&d->mu);
    return;
  }
  int i = map_find(d, key);
  if (i >= 0 || queued(d, key)) {
    if (i >= 0) d->entries[i].last_use = ++d->clock;
    pthread_mutex_unlock(&d->mu);
    return;
  }
  while (wait && d->q_bytes + bytes > d->q_max && wait_idle(d)) {
  }
  if (d->q_bytes + bytes > d->q_max) {
    d->st.dropped++;
    pthread_mutex_unlock(&d->mu);
    return;
  }
  d->q_bytes += bytes;
  pthread_mutex_unlock(&d->mu);
  job *j = preft_xmalloc(sizeof *j);
  j->key = key;
  j->next = NULL;
  j->data = preft_xmalloc(bytes);
  memcpy(j->data, k, n * sizeof(float));
  memcpy(j->data + n, v, n * sizeof(float));
  pthread_mutex_lock(&d->mu);
  if (d->q_tail)
    d->q_tail->next = j;
  else
    d->q_head = j;
  d->q_tail = j;
  pthread_cond_signal(&d->work);
  pthread_mutex_unlock(&d->mu);
}

/* Drops a bad entry: removes the file and forgets it. */
static void drop_bad(preft_prefix_disk *d, uint64_t key, const char *path, const char *why) {
  pthread_mutex_lock(&d->mu);
  int i = map_find(d, key);
  if (i >= 0) index_remove_at(d, i);
  unlink(path);
  d->st.corrupt++;
  d->st.misses++;
  pthread_mutex_unlock(&d->mu);
  PREFT_WARN("prefix cache disk tier: %s: %s; removed (a miss: the prefix is recomputed)", path, why);
}

static int restore_block(preft_prefix_disk *d, uint64_t key, float *k, float *v);

int preft_prefix_disk_restore(preft_prefix_disk *d, uint64_t key, float *k, float *v) {
  double t0 = preft_now();
  int rc = restore_block(d, key, k, v);
  double dt = preft_now() - t0;
  pthread_mutex_lock(&d->mu);
  d->st.restore_seconds += dt;
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static int restore_block(preft_prefix_disk *d, uint64_t key, float *k, float *v) {
  size_t n = d->block_floats;
  pthread_mutex_lock(&d->mu);
  const job *q = queued(d, key);
  if (q) { /* not written yet: the copy in the queue serves (the writer only reads it) */
    memcpy(k, q->data, n * sizeof *k);
    memcpy(v, q->data + n, n * sizeof *v);
    d->st.hits++;
    pthread_mutex_unlock(&d->mu);
    return 0;
  }
  int i = map_find(d, key);
  if (i < 0) {
    d->st.misses++;
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  d->entries[i].last_use = ++d->clock;
  pthread_mutex_unlock(&d->mu);
  char *path = entry_path(d, key);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { /* evicted meanwhile, or removed from outside */
    pthread_mutex_lock(&d->mu);
    int j = map_find(d, key);
    if (j >= 0 && errno == ENOENT) index_remove_at(d, j);
    d->st.misses++;
    pthread_mutex_unlock(&d->mu);
    free(path);
    return -1;
  }
  uint8_t h[HEADER_BYTES];
  struct stat sb;
  uint64_t hkey = 0, sum = 0;
  const char *why = NULL;
  if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != d->file_bytes)
    why = "wrong size (truncated?)";
  else if (read_all(fd, h, sizeof h) != 0 || check_header(d, h, &hkey, &sum) != HDR_OK || hkey != key)
    why = "bad header";
  else if (read_all(fd, k, n * sizeof *k) != 0 || read_all(fd, v, n * sizeof *v) != 0)
    why = "short read";
  else if (payload_checksum(k, v, n) != sum)
    why = "checksum mismatch";
  if (!why) futimens(fd, NULL); /* recently used, for the LRU order after a restart */
  close(fd);
  if (why) {
    drop_bad(d, key, path, why);
    free(path);
    return -1;
  }
  free(path);
  pthread_mutex_lock(&d->mu);
  d->st.hits++;
  d->st.bytes_read += d->file_bytes;
  pthread_mutex_unlock(&d->mu);
  return 0;
}

void preft_prefix_disk_flush(preft_prefix_disk *d) {
  pthread_mutex_lock(&d->mu);
  while ((d->q_head || d->current) && wait_idle(d)) {
  }
  pthread_mutex_unlock(&d->mu);
}

void preft_prefix_disk_get_stats(preft_prefix_disk *d, preft_prefix_disk_stats *out) {
  pthread_mutex_lock(&d->mu);
  *out = d->st;
  out->entries = d->n_entries;
  pthread_mutex_unlock(&d->mu);
}
