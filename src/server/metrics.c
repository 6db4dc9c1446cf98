/* metrics.c - GET /metrics: the engine's statistics and the HTTP layer's
 * counters in the Prometheus text exposition format (version 0.0.4).
 *
 * Besides the engine's numbers it exports the two costs of the HTTP layer
 * that docs/PERFORMANCE.md compares with step time: time spent in the
 * engine callback (on the engine thread: decoding, stop strings, queueing)
 * and CPU time of the connection threads (parsing, tokenizing, JSON, SSE,
 * socket writes). */
#include <stdio.h>
#include <string.h>

#include "base/timer.h"
#include "server/server_int.h"

const int preft_srv_status_codes[SRV_N_STATUS] = {200, 400, 401, 404, 405, 408, 413,
                                                  414, 429, 431, 499, 500, 503, 0};

static void head(srv_buf *b, const char *name, const char *type, const char *help) {
  preft_srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric of one unlabelled integer sample: its header and its value. */
static void single(srv_buf *b, const char *name, const char *type, const char *help, long value) {
  head(b, name, type, help);
  preft_srv_buf_printf(b, "%s %ld\n", name, value);
}

/* The engine's histogram counts as Prometheus wants them: cumulative, the
 * last one (+Inf) equal to the total. engine.h promises cumulative counts;
 * per-bucket counts (summing to the total) are accepted as well. */
static void hist(srv_buf *b, const char *name, const char *help, const double *bounds, const long *counts,
                 double sum, long total) {
  long cum[PREFT_HIST_BUCKETS + 1], s = 0;
  for (int i = 0; i <= PREFT_HIST_BUCKETS; i++) s += counts[i];
  bool per_bucket = s == total;
  long run = 0;
  for (int i = 0; i <= PREFT_HIST_BUCKETS; i++) cum[i] = per_bucket ? (run += counts[i]) : counts[i];
  head(b, name, "histogram", help);
  for (int i = 0; i < PREFT_HIST_BUCKETS; i++)
    preft_srv_buf_printf(b, "%s_bucket{le=\"%g\"} %ld\n", name, bounds[i], cum[i]);
  preft_srv_buf_printf(b, "%s_bucket{le=\"+Inf\"} %ld\n%s_sum %.9g\n%s_count %ld\n", name,
                       cum[PREFT_HIST_BUCKETS], name, sum, name, cum[PREFT_HIST_BUCKETS]);
}

void preft_srv_route_metrics(preft_server *s, srv_reply *r) {
  preft_engine_stats st;
  memset(&st, 0, sizeof st);
  if (s->engine) preft_engine_get_stats(s->engine, &st); /* an encoder server has no engine: zeros */
  srv_buf *b = &r->body;
  r->status = 200;
  r->content_type = "text/plain; version=0.0.4; charset=utf-8";

  head(b, "preft_requests_total", "counter", "Engine requests finished, by outcome.");
  preft_srv_buf_printf(b, "preft_requests_total{status=\"ok\"} %ld\n", st.requests_ok);
  preft_srv_buf_printf(b, "preft_requests_total{status=\"error\"} %ld\n", st.requests_error);
  preft_srv_buf_printf(b, "preft_requests_total{status=\"cancelled\"} %ld\n", st.requests_cancelled);

  head(b, "preft_http_requests_total", "counter", "HTTP requests answered, by status code.");
  for (int i = 0; i < SRV_N_STATUS; i++) {
    long v = atomic_load(&s->status_count[i]);
    if (preft_srv_status_codes[i])
      preft_srv_buf_printf(b, "preft_http_requests_total{code=\"%d\"} %ld\n", preft_srv_status_codes[i], v);
    else
      preft_srv_buf_printf(b, "preft_http_requests_total{code=\"other\"} %ld\n", v);
  }

  pthread_mutex_lock(&s->mu);
  int in_flight = s->n_conns;
  pthread_mutex_unlock(&s->mu);
  single(b, "preft_http_requests_in_flight", "gauge",
         "HTTP requests whose headers arrived and that are not finished (this one included).", in_flight);

  static const char *modes[2] = {"all", "prefill"};
  head(b, "preft_prompt_tokens_total", "counter",
       "Prompt tokens processed, by adapter mode (base model counts as all).");
  for (int m = 0; m < 2; m++)
    preft_srv_buf_printf(b, "preft_prompt_tokens_total{mode=\"%s\"} %ld\n", modes[m], st.prompt_tokens[m]);
  head(b, "preft_generation_tokens_total", "counter",
       "Tokens generated, by adapter mode (base model counts as all).");
  for (int m = 0; m < 2; m++)
    preft_srv_buf_printf(b, "preft_generation_tokens_total{mode=\"%s\"} %ld\n", modes[m],
                         st.generated_tokens[m]);

  single(b, "preft_queue_depth", "gauge", "Requests waiting to be scheduled.", st.waiting);
  single(b, "preft_running_sequences", "gauge", "Sequences being prefilled or decoded.", st.running);
  head(b, "preft_kv_blocks", "gauge",
       "KV-cache blocks by state (cached: kept for prefix reuse, evictable; adapters: lent to loaded "
       "adapters' weights).");
  preft_srv_buf_printf(b, "preft_kv_blocks{state=\"used\"} %d\n", st.kv_blocks_used);
  preft_srv_buf_printf(b, "preft_kv_blocks{state=\"free\"} %d\n", st.kv_blocks_free);
  preft_srv_buf_printf(b, "preft_kv_blocks{state=\"cached\"} %d\n", st.kv_blocks_cached);
  preft_srv_buf_printf(b, "preft_kv_blocks{state=\"adapters\"} %d\n", st.kv_blocks_adapters);
  single(b, "preft_adapters_loaded", "gauge", "Adapters loaded in memory.", st.adapters_loaded);
  single(b, "preft_adapters_registered", "gauge", "Adapters registered (loaded on first use).",
         st.adapters_registered);
  single(b, "preft_adapter_loads_total", "counter", "Adapter loads that succeeded.", st.adapter_loads);
  single(b, "preft_adapter_load_failures_total", "counter",
         "Adapter loads that failed (the adapter is unavailable).", st.adapter_load_failures);
  single(b, "preft_adapter_prefetches_total", "counter",
         "Adapter loads started ahead of their requests' admission (while earlier steps run).",
         st.adapter_prefetches);
  single(b, "preft_adapter_evictions_total", "counter", "Loaded adapters evicted to make room for others.",
         st.adapter_evictions);
  head(b, "preft_adapter_cache_bytes", "gauge",
       "Memory of loaded adapters (used), of loads under way (reserved: an upper bound) and the cap (limit: "
       "--adapter-cache-mb, 0 for none).");
  preft_srv_buf_printf(b, "preft_adapter_cache_bytes{state=\"used\"} %zu\n", st.adapter_bytes);
  preft_srv_buf_printf(b, "preft_adapter_cache_bytes{state=\"reserved\"} %zu\n", st.adapter_bytes_reserved);
  preft_srv_buf_printf(b, "preft_adapter_cache_bytes{state=\"limit\"} %zu\n", st.adapter_bytes_limit);
  single(b, "preft_steps_total", "counter", "Engine steps run.", st.steps);
  single(b, "preft_preemptions_total", "counter", "Sequences preempted for KV-cache space.", st.preemptions);
  single(b, "preft_prefix_cache_hit_tokens_total", "counter", "Prompt tokens served from the prefix cache.",
         st.prefix_hit_tokens);
  single(b, "preft_spec_steps_total", "counter",
         "Decode steps of a sequence that carried drafted tokens (speculative decoding).", st.spec.steps);
  single(b, "preft_spec_drafted_tokens_total", "counter", "Tokens drafted by speculative decoding.",
         st.spec.drafted);
  single(b, "preft_spec_accepted_tokens_total", "counter",
         "Drafted tokens the model's own draws agreed with (kept).", st.spec.accepted);
  if (st.prefix_disk_enabled) {
    single(b, "preft_prefix_disk_hit_tokens_total", "counter",
           "Prompt tokens restored from the prefix cache's disk tier (also in the hit tokens).",
           st.prefix_disk_hit_tokens);
    single(b, "preft_prefix_disk_hits_total", "counter", "KV blocks restored from the disk tier.",
           st.prefix_disk_hits);
    single(b, "preft_prefix_disk_misses_total", "counter",
           "Disk-tier lookups that found no usable entry (bad files included).", st.prefix_disk_misses);
    single(b, "preft_prefix_disk_corrupt_total", "counter",
           "Disk-tier files found damaged at restore (removed; the prefix is recomputed).",
           st.prefix_disk_corrupt);
    single(b, "preft_prefix_disk_writes_total", "counter", "KV blocks written to the disk tier.",
           st.prefix_disk_writes);
    single(b, "preft_prefix_disk_write_failures_total", "counter",
           "Disk-tier writes that failed (disk full, read-only, file size limit): the entry is dropped.",
           st.prefix_disk_write_failures);
    single(b, "preft_prefix_disk_dropped_total", "counter",
           "KV blocks not spilled because the disk writer's queue was full.", st.prefix_disk_dropped);
    single(b, "preft_prefix_disk_evictions_total", "counter",
           "Disk-tier files removed (least recently used) to stay under --prefix-cache-disk-gb.",
           st.prefix_disk_evictions);
    head(b, "preft_prefix_disk_bytes", "gauge",
         "Disk tier: bytes of the entries on disk (used) and the bound (limit).");
    preft_srv_buf_printf(b, "preft_prefix_disk_bytes{state=\"used\"} %llu\n",
                         (unsigned long long)st.prefix_disk_bytes);
    preft_srv_buf_printf(b, "preft_prefix_disk_bytes{state=\"limit\"} %llu\n",
                         (unsigned long long)st.prefix_disk_bytes_limit);
    head(b, "preft_prefix_disk_io_bytes_total", "counter", "Disk tier: bytes read by restores and written.");
    preft_srv_buf_printf(b, "preft_prefix_disk_io_bytes_total{direction=\"read\"} %llu\n",
                         (unsigned long long)st.prefix_disk_bytes_read);
    preft_srv_buf_printf(b, "preft_prefix_disk_io_bytes_total{direction=\"written\"} %llu\n",
                         (unsigned long long)st.prefix_disk_bytes_written);
    single(b, "preft_prefix_disk_entries", "gauge", "KV blocks on disk.", st.prefix_disk_entries);
    head(b, "preft_prefix_disk_restore_seconds_total", "counter",
         "Engine-thread time spent restoring blocks from the disk tier (reads and checksums).");
    preft_srv_buf_printf(b, "preft_prefix_disk_restore_seconds_total %.6f\n", st.prefix_disk_restore_seconds);
  }

  hist(b, "preft_step_seconds", "Duration of an engine step.", st.hist_bounds, st.step_hist,
       st.step_seconds_sum, st.steps);
  hist(b, "preft_time_to_first_token_seconds", "Time from submission to the first token.", st.hist_bounds,
       st.ttft_hist, st.ttft_seconds_sum, st.ttft_count);
  hist(b, "preft_adapter_load_seconds", "Duration of an adapter load (reading and checking its files).",
       st.hist_bounds, st.adapter_load_hist, st.adapter_load_seconds_sum, st.adapter_load_count);
  head(b, "preft_adapter_load_cpu_seconds_total", "counter",
       "CPU time of adapter loads (the loading thread's, whatever else runs on the machine).");
  preft_srv_buf_printf(b, "preft_adapter_load_cpu_seconds_total %.9f\n", st.adapter_load_cpu_seconds_sum);
  head(b, "process_cpu_seconds_total", "counter", "CPU time of every thread of the server process.");
  preft_srv_buf_printf(b, "process_cpu_seconds_total %.9f\n", preft_cpu_now());

  head(b, "preft_http_engine_callback_seconds_total", "counter",
       "Engine-thread time in the HTTP layer's token callback (decode, stop strings, queueing).");
  preft_srv_buf_printf(b, "preft_http_engine_callback_seconds_total %.9f\n",
                       atomic_load(&s->cb_nanos) * 1e-9);
  head(b, "preft_http_cpu_seconds_total", "counter",
       "CPU time of connection threads for finished requests (parse, tokenize, JSON, SSE, writes).");
  preft_srv_buf_printf(b, "preft_http_cpu_seconds_total %.9f\n", atomic_load(&s->http_cpu_nanos) * 1e-9);
}
