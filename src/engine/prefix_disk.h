/* prefix_disk.h - the prefix cache's disk tier: a bounded on-disk LRU of
 * KV blocks evicted from memory, restored for a returning user instead of
 * recomputing the (adapted) prefill.
 *
 * One file per block, DIR/<key as 16 hex digits>.kvb, where key is the
 * block's in-memory prefix key (prefix_cache.h: the token hash chain and the
 * salt naming adapter content, mode, ...) mixed with the model identity
 * (preft_prefix_model_id). File layout (little-endian):
 *   header [64 bytes]: magic "PREFTKV1", version u32, dtype u32 (0: FP32),
 *     key u64, model_id u64, n_layers u32, kv_dim u32, block_size u32,
 *     header check u32, payload_bytes u64, payload checksum u64
 *   payload: keys [L][block_size][kv_dim] FP32, then values, same shape.
 * The payload checksum is preft_checksum64(keys) * 0x100000001b3 ^
 * preft_checksum64(values); the header check is the low 32 bits of
 * preft_checksum64(header bytes [0, 56) with the check field 0) ^ payload
 * checksum.
 * A restore checks every header field and the payload checksum; any
 * mismatch (a torn, truncated or corrupted file, another model's layout) is
 * a miss: the file is removed and the event logged.
 *
 * Writes go through one writer thread: preft_prefix_disk_spill copies the
 * block into a queue (bounded in bytes; when full the spill is dropped and
 * counted) and returns, so the engine step pays a memcpy, never I/O. The
 * writer writes DIR/.<key>.kvb.tmp, then renames it into place: a crash
 * mid-write leaves no half entry (the temp file is removed at the next
 * start); a failed or short write (ENOSPC, EFBIG under ulimit -f, a
 * read-only directory) drops the entry, logs, and the server goes on.
 * Without fsync a power loss can leave a renamed file with missing data:
 * its checksum then fails and it is a miss.
 *
 * Restores read in the caller's thread (the engine thread, at admission):
 * a 2,000-token prefix of a 0.5B model is ~50 MB, tens of milliseconds
 * from the page cache, far less than recomputing it.
 *
 * Bounded by max_bytes (file sizes): the writer evicts least recently used
 * files (last restore or write; at start-up, file modification times, which
 * a restore refreshes) until a new one fits. The index is rebuilt at
 * start-up from the directory: files that are not ours are skipped,
 * entries with a bad header and our stale temp files are removed, entries of
 * another model or layout are left alone (and not counted).
 */
#ifndef PREFT_ENGINE_PREFIX_DISK_H
#define PREFT_ENGINE_PREFIX_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct preft_model preft_model;
typedef struct preft_prefix_disk preft_prefix_disk;

typedef struct preft_prefix_disk_stats {
  long hits, misses;   /* restores that succeeded / lookups that found nothing usable */
  long corrupt;        /* restores that found a bad file (removed; counted in misses too) */
  long writes;         /* entries written */
  long write_failures; /* entries dropped by a failed write */
  long dropped;        /* spills dropped because the write queue was full */
  long evictions;      /* files removed to stay under the bound */
  uint64_t bytes;      /* bytes of the files indexed now */
  uint64_t max_bytes;
  uint64_t bytes_read, bytes_written; /* since start */
  double restore_seconds;             /* spent in restores (reads and checksums) */
  int entries;
} preft_prefix_disk_stats;

/* Identity of the model's keys and values: its configuration and a
 * checksum of every layer's key and value projections (and biases and
 * norms), so a different model (or a different fine-tune of the same
 * shape) never restores another's blocks. */
uint64_t preft_prefix_model_id(const preft_model *m);

/* Opens (creating) dir and indexes the entries of this model and layout.
 * max_bytes bounds the files; queue_bytes bounds the spills waiting for the
 * writer (0: 64 MiB, at least 4 blocks). */
int preft_prefix_disk_open(preft_prefix_disk **out, const char *dir, uint64_t max_bytes, uint64_t model_id,
                           int n_layers, int kv_dim, int block_size, size_t queue_bytes, preft_error *err);
/* Writes what is queued, stops the writer, frees. NULL is fine. After
 * preft_prefix_disk_set_deadline it returns by the deadline: a write still
 * under way then is left to finish on its own (the writer frees d). */
void preft_prefix_disk_close(preft_prefix_disk *d);
/* Bounds the shutdown: from `seconds` from now on, spills are dropped
 * (counted in dropped) instead of queued or waited for, the writer drops
 * what is still queued instead of writing it, and flush and close stop
 * waiting. */
void preft_prefix_disk_set_deadline(preft_prefix_disk *d, double seconds);

/* True when key is on disk (marks it recently used), or queued; false
 * counts a miss. */
int preft_prefix_disk_has(preft_prefix_disk *d, uint64_t key);
/* Queues a copy of one block (k and v: [L][block_size][kv_dim] each) for
 * writing, unless key is on disk or queued already. Never blocks on I/O:
 * when the queue is full the block is dropped, or with wait (shutdown)
 * waits for room (until the deadline, when one is set). */
void preft_prefix_disk_spill(preft_prefix_disk *d, uint64_t key, const float *k, const float *v, bool wait);
/* Reads key's block into k and v (from the write queue when it is not
 * written yet). 0: restored; -1: a miss (absent, or a bad file, which is
 * removed). */
int preft_prefix_disk_restore(preft_prefix_disk *d, uint64_t key, float *k, float *v);
/* Waits until the queue is written (tests, shutdown), or the deadline. */
void preft_prefix_disk_flush(preft_prefix_disk *d);
void preft_prefix_disk_get_stats(preft_prefix_disk *d, preft_prefix_disk_stats *out);

#endif
