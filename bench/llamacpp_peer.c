/* llamacpp_peer.c - a small driver of llama.cpp's public C API (llama.h),
 * built by bench/peer_llamacpp.sh against the user's own llama.cpp build
 * (not part of preft's build; llama.cpp is never vendored).
 *
 *   llamacpp_peer tokenize MODEL.gguf TEXT
 *       prints the ids llama.cpp's tokenizer gives TEXT (special tokens added
 *       as the file says), comma-separated
 *   llamacpp_peer logits MODEL.gguf IDS OUT.f32 [--lora A.gguf] [--threads T]
 *       runs the ids as one sequence and writes the logits of every position,
 *       float32 [T, V] (the layout of `preft logits -o`); --f32-kv keeps the
 *       KV cache in F32 (llama.cpp's default is F16)
 *   llamacpp_peer generate MODEL.gguf IDS N [--lora A.gguf] [--threads T]
 *       prints N greedy tokens after the ids, comma-separated
 *   llamacpp_peer adapters MODEL.gguf -p P -n O -r R [--threads T] [--lora A.gguf]...
 *       serves R requests (P prompt + O greedy output tokens each) round-robin
 *       over the N given LoRA adapters (none: the base model) the way
 *       llama.cpp can: one adapter set applies to a whole batch, so the
 *       requests of each adapter form one batch and the adapters take turns.
 *       Prints one line: wall seconds, output tok/s, prefill and decode tok/s.
 *   llamacpp_peer compare A.f32 B.f32 V [TOL]
 *       compares two logits files (rel L2, max difference, argmax agreement)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "ggml-backend.h"
#include "llama.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
  (void)user;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int die(const char *msg, const char *arg) {
  fprintf(stderr, "llamacpp_peer: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  return 1;
}

static int parse_ids(const char *s, llama_token **out) {
  int n = 0, cap = 64;
  llama_token *v = malloc(sizeof *v * (size_t)cap);
  for (const char *p = s; *p;) {
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p) break;
    if (n == cap) v = realloc(v, sizeof *v * (size_t)(cap *= 2));
    v[n++] = (llama_token)x;
    p = *end == ',' ? end + 1 : end;
  }
  *out = v;
  return n;
}

static void batch_add(struct llama_batch *b, llama_token tok, int pos, int seq, int want_logits) {
  int i = b->n_tokens++;
  b->token[i] = tok;
  b->pos[i] = pos;
  b->n_seq_id[i] = 1;
  b->seq_id[i][0] = seq;
  b->logits[i] = (int8_t)want_logits;
}

static llama_token argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return best;
}

/* --f32-kv: keys and values in F32 and no flash attention (llama.cpp's
 * defaults, an F16 cache and flash attention, round to F16 on the way) */
static bool f32_kv = false;

static bool no_progress(float p, void *user) {
  (void)p;
  (void)user;
  return true;
}

static struct llama_context *make_ctx(struct llama_model *m, int n_ctx, int n_batch, int n_seq, int threads) {
  struct llama_context_params cp = llama_context_default_params();
  if (f32_kv) {
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; /* its CPU kernel rounds Q to F16 */
  }
  cp.n_ctx = (uint32_t)n_ctx;
  cp.n_batch = (uint32_t)n_batch;
  cp.n_ubatch = (uint32_t)(n_batch < 512 ? n_batch : 512);
  cp.n_seq_max = (uint32_t)n_seq;
  if (threads > 0) cp.n_threads = cp.n_threads_batch = threads;
  return llama_init_from_model(m, cp);
}

static int set_lora(struct llama_context *ctx, struct llama_adapter_lora *a) {
#ifdef PEER_ONE_ADAPTER_API /* llama.cpp before llama_set_adapters_lora (peer_llamacpp.sh tells) */
  llama_clear_adapter_lora(ctx);
  return a ? llama_set_adapter_lora(ctx, a, 1.0f) : 0;
#else
  float scale = 1.0f;
  return a ? llama_set_adapters_lora(ctx, &a, 1, &scale) : llama_set_adapters_lora(ctx, NULL, 0, NULL);
#endif
}

/* compare A.f32 B.f32 V: relative L2 error of A against B, the largest
 * absolute difference, and on how many rows the argmax (greedy token)
 * agrees. Exit 0 when rel L2 <= TOL (default 1e-3) and every argmax agrees
 * or the rows' top two B logits are closer than the largest difference. */
static int compare(const char *pa, const char *pb, int V, double tol) {
  FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
  if (!fa || !fb) return die("cannot read", !fa ? pa : pb);
  float *a = malloc(sizeof(float) * (size_t)V), *b = malloc(sizeof(float) * (size_t)V);
  double num = 0, den = 0, maxd = 0;
  int rows = 0, agree = 0, ties = 0;
  while (fread(a, sizeof(float), (size_t)V, fa) == (size_t)V) {
    if (fread(b, sizeof(float), (size_t)V, fb) != (size_t)V) return die("files differ in length", NULL);
    double rmax = 0;
    for (int i = 0; i < V; i++) {
      double d = (double)a[i] - b[i];
      num += d * d;
      den += (double)b[i] * b[i];
      if (d < 0) d = -d;
      if (d > rmax) rmax = d;
    }
    if (rmax > maxd) maxd = rmax;
    int ia = argmax(a, V), ib = argmax(b, V);
    float second = -1e30f;
    for (int i = 0; i < V; i++)
      if (i != ib && b[i] > second) second = b[i];
    if (ia == ib)
      agree++;
    else if (b[ib] - second <= 2 * rmax)
      ties++; /* a near-tie the numbers cannot decide */
    rows++;
  }
  double rel = den > 0 ? sqrt(num / den) : 0;
  printf("rows %d, rel L2 %.3g, max |diff| %.3g, argmax agrees %d/%d (%d near-ties)\n", rows, rel, maxd,
         agree, rows, ties);
  free(a);
  free(b);
  fclose(fa);
  fclose(fb);
  return rows > 0 && rel <= tol && agree + ties == rows ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 5 && !strcmp(argv[1], "compare"))
    return compare(argv[2], argv[3], atoi(argv[4]), argc > 5 ? atof(argv[5]) : 1e-3);
  if (argc < 3)
    return die("usage: llamacpp_peer tokenize|logits|generate|adapters MODEL.gguf ... | compare A B V [TOL]",
               NULL);
  const char *mode = argv[1], *model_path = argv[2];
  const char *loras[64];
  int n_loras = 0, threads = 0, P = 128, O = 32, R = 16;
  const char *pos[4] = {0};
  int n_pos = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--lora") && i + 1 < argc && n_loras < 64)
      loras[n_loras++] = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--f32-kv"))
      f32_kv = true;
    else if (!strcmp(argv[i], "-p") && i + 1 < argc)
      P = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-n") && i + 1 < argc)
      O = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc)
      R = atoi(argv[++i]);
    else if (n_pos < 4)
      pos[n_pos++] = argv[i];
    else
      return die("unexpected argument", argv[i]);
  }
  llama_log_set(quiet, NULL);
  ggml_backend_load_all();
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  mp.progress_callback = no_progress;
  struct llama_model *model = llama_model_load_from_file(model_path, mp);
  if (!model) return die("llama.cpp cannot load the model", model_path);
  const struct llama_vocab *vocab = llama_model_get_vocab(model);
  int V = llama_vocab_n_tokens(vocab);
  struct llama_adapter_lora *ad[64];
  for (int i = 0; i < n_loras; i++)
    if (!(ad[i] = llama_adapter_lora_init(model, loras[i])))
      return die("llama.cpp cannot load the adapter", loras[i]);
  int rc = 0;

  if (!strcmp(mode, "tokenize")) {
    if (n_pos < 1) return die("tokenize needs TEXT", NULL);
    int cap = (int)strlen(pos[0]) + 8;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    int n = llama_tokenize(vocab, pos[0], (int32_t)strlen(pos[0]), ids, cap, true, true);
    if (n < 0) return die("tokenize failed", NULL);
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("\n");
    free(ids);
  } else if (!strcmp(mode, "logits") || !strcmp(mode, "generate")) {
    bool gen = !strcmp(mode, "generate");
    if (n_pos < 2) return die(gen ? "generate needs IDS N" : "logits needs IDS OUT.f32", NULL);
    llama_token *ids;
    int T = parse_ids(pos[0], &ids), N = gen ? atoi(pos[1]) : 0;
    if (T < 1) return die("no ids", pos[0]);
    struct llama_context *ctx = make_ctx(model, T + N + 1, T, 1, threads);
    if (!ctx) return die("cannot make a context", NULL);
    if (set_lora(ctx, n_loras ? ad[0] : NULL) != 0) return die("cannot set the adapter", NULL);
    struct llama_batch b = llama_batch_init(T, 0, 1);
    for (int t = 0; t < T; t++) batch_add(&b, ids[t], t, 0, gen ? t == T - 1 : 1);
    if (llama_decode(ctx, b) != 0) return die("llama_decode failed", NULL);
    if (!gen) {
      FILE *f = fopen(pos[1], "wb");
      if (!f) return die("cannot write", pos[1]);
      for (int t = 0; t < T; t++) fwrite(llama_get_logits_ith(ctx, t), sizeof(float), (size_t)V, f);
      fclose(f);
    } else {
      for (int i = 0; i < N; i++) {
        llama_token tok = argmax(llama_get_logits_ith(ctx, -1), V);
        printf("%s%d", i ? "," : "", tok);
        b.n_tokens = 0;
        batch_add(&b, tok, T + i, 0, 1);
        if (llama_decode(ctx, b) != 0) return die("llama_decode failed", NULL);
      }
      printf("\n");
    }
    llama_batch_free(b);
    llama_free(ctx);
    free(ids);
  } else if (!strcmp(mode, "adapters")) {
    int N = n_loras ? n_loras : 1, g_max = (R + N - 1) / N;
    int n_batch = g_max * P > g_max ? g_max * P : g_max;
    struct llama_context *ctx = make_ctx(model, g_max * (P + O) + 16, n_batch, g_max, threads);
    if (!ctx) return die("cannot make a context", NULL);
    struct llama_batch b = llama_batch_init(n_batch, 0, 1);
    /* warm-up, untimed: one forward of 16 tokens (as llama-batched-bench and
     * preft bench adapters do before timing) */
    for (int t = 0; t < 16; t++) batch_add(&b, (llama_token)(t % V), t, 0, t == 15);
    if (llama_decode(ctx, b) != 0) return die("llama_decode (warm-up) failed", NULL);
    llama_memory_clear(llama_get_memory(ctx), true);
    double t_prefill = 0, t_decode = 0, t0 = now();
    long out_tokens = 0;
    unsigned seed = 12345;
    for (int a = 0; a < N && rc == 0; a++) {
      int g = R / N + (a < R % N); /* requests of adapter a (request r uses adapter r % N) */
      if (g == 0) continue;
      if (set_lora(ctx, n_loras ? ad[a] : NULL) != 0) return die("cannot set the adapter", loras[a]);
      llama_memory_clear(llama_get_memory(ctx), true);
      double ts = now();
      b.n_tokens = 0;
      for (int s = 0; s < g; s++)
        for (int t = 0; t < P; t++) {
          seed = seed * 1103515245u + 12345u;
          batch_add(&b, (llama_token)((seed >> 8) % (unsigned)V), t, s, t == P - 1);
        }
      if (llama_decode(ctx, b) != 0) return die("llama_decode (prefill) failed", NULL);
      llama_token *next = malloc(sizeof *next * (size_t)g);
      for (int s = 0; s < g; s++) next[s] = argmax(llama_get_logits_ith(ctx, s * P + P - 1), V);
      double td = now();
      t_prefill += td - ts;
      /* the prefill gave each request its first output token; O-1 steps follow */
      out_tokens += g;
      for (int i = 0; i + 1 < O; i++) {
        b.n_tokens = 0;
        for (int s = 0; s < g; s++) batch_add(&b, next[s], P + i, s, 1);
        if (llama_decode(ctx, b) != 0) return die("llama_decode (decode) failed", NULL);
        for (int s = 0; s < g; s++) next[s] = argmax(llama_get_logits_ith(ctx, s), V);
        out_tokens += g;
      }
      t_decode += now() - td;
      free(next);
    }
    double wall = now() - t0;
    printf(
        "llama.cpp adapters %d requests %d prompt %d output %d: wall %.3f s, out tok/s %.2f, prefill tok/s "
        "%.1f, "
        "decode tok/s %.2f\n",
        n_loras, R, P, O, wall, out_tokens / wall, (double)R * P / t_prefill,
        t_decode > 0 ? (double)(out_tokens - R) / t_decode : 0.0);
    llama_batch_free(b);
    llama_free(ctx);
  } else {
    rc = die("unknown mode", mode);
  }
  llama_model_free(model);
  llama_backend_free();
  return rc;
}
