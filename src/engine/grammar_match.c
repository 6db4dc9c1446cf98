/* grammar_match.c - following a grammar byte by byte and the tokens allowed
 * next (grammar.h).
 *
 * A stack is a node (pos, parent): pos is the element to match now (a byte
 * set) or, for a parent, where to continue once the rule above returns.
 * Nodes are interned, so equal stacks are one id; a state is the sorted set
 * of its stacks' ids plus whether the grammar may end there, interned too.
 * A reference that ends its alternative continues straight at the parent
 * (a tail call), so right-recursive repetition keeps stacks flat and its
 * states recur, which is what makes the per-state caches hit.
 *
 * Nodes, states, transitions and masks live in an automaton (preft_gauto)
 * that any number of matchers share under its mutex: a state's mask is
 * walked once for all of them. A matcher is its automaton and its state. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/sampler.h"
#include "text/strmap.h"

#define MAX_DEPTH 2048    /* nesting of rule references in one stack */
#define MAX_MASKS 1024    /* cached masks per automaton; past it masks are walked per matcher, uncached */
#define MAX_STATES 200000 /* states per automaton before new transitions are refused */

typedef struct {
  uint32_t *bits; /* [vocab / 32] allowed tokens */
  int n_allowed;
} gmask;

typedef struct {
  int32_t *nodes;
  int n;
  bool accept;
  int32_t *next; /* [256] lazily: -2 unknown, -1 dead, else a state */
  gmask *mask;   /* cached allowed tokens, or NULL */
} gstate;

struct preft_gauto {
  int refs;           /* atomic */
  pthread_mutex_t mu; /* guards everything below but the constants */
  preft_grammar *g;
  const preft_token_trie *trie;
  int *stop_ids;
  int n_stop;
  int start; /* the state at the start of the grammar */
  int32_t *node_pos, *node_parent, *node_depth;
  int n_nodes, cap_nodes;
  preft_u64map node_map;
  gstate *states;
  int n_states, cap_states;
  preft_strmap state_map;
  int32_t *tmp; /* expansion output */
  int n_tmp, cap_tmp;
  uint32_t *mark; /* [cap_nodes] generation marks for dedup */
  uint32_t gen;
  int n_masks, n_walks;
};

struct preft_gmatch {
  preft_gauto *a;
  int cur;         /* the state now */
  bool cur_accept; /* its accept flag and stack count, copied out of the lock */
  int cur_n;
  gmask own;    /* the mask walked for this matcher when the automaton's cache is full */
  float *cl;    /* [vocab] the allowed tokens' logits, for the draw */
  int32_t *cid; /* [vocab] their ids */
};

static int intern_node(preft_gauto *m, int pos, int parent) {
  uint64_t key = (uint64_t)(uint32_t)pos << 32 | (uint32_t)(parent + 1), v;
  if (preft_u64map_get(&m->node_map, key, &v)) return (int)v;
  int depth = parent >= 0 ? m->node_depth[parent] + 1 : 1;
  if (depth > MAX_DEPTH) return -2;
  if (m->n_nodes == m->cap_nodes) {
    m->cap_nodes = m->cap_nodes ? 2 * m->cap_nodes : 256;
    m->node_pos = preft_xrealloc(m->node_pos, sizeof(int32_t) * (size_t)m->cap_nodes);
    m->node_parent = preft_xrealloc(m->node_parent, sizeof(int32_t) * (size_t)m->cap_nodes);
    m->node_depth = preft_xrealloc(m->node_depth, sizeof(int32_t) * (size_t)m->cap_nodes);
    m->mark = preft_xrealloc(m->mark, sizeof(uint32_t) * (size_t)m->cap_nodes);
  }
  int id = m->n_nodes++;
  m->node_pos[id] = pos;
  m->node_parent[id] = parent;
  m->node_depth[id] = depth;
  m->mark[id] = 0;
  preft_u64map_put(&m->node_map, key, (uint64_t)id);
  return id;
}

/* Adds to m->tmp every stack that starts at element pos with parent below
 * it, with rule references opened; reaching the end with no parent sets
 * *accept. */
static void expand(preft_gauto *m, int pos, int parent, bool *accept) {
  const preft_grammar *g = m->g;
  const preft_gelem *e = &g->elems[pos];
  if (e->type == GE_END) {
    if (parent < 0)
      *accept = true;
    else
      expand(m, m->node_pos[parent], m->node_parent[parent], accept);
    return;
  }
  if (e->type == GE_RULE) {
    int cont = g->elems[pos + 1].type == GE_END ? parent : intern_node(m, pos + 1, parent);
    if (cont == -2) return; /* too deep: this path is cut */
    for (int a = g->rule_alt[e->arg]; a < g->rule_alt[e->arg + 1]; a++)
      expand(m, g->alt_pos[a], cont, accept);
    return;
  }
  int id = intern_node(m, pos, parent);
  if (id < 0 || m->mark[id] == m->gen) return;
  m->mark[id] = m->gen;
  if (m->n_tmp == m->cap_tmp) {
    m->cap_tmp = m->cap_tmp ? 2 * m->cap_tmp : 64;
    m->tmp = preft_xrealloc(m->tmp, sizeof(int32_t) * (size_t)m->cap_tmp);
  }
  m->tmp[m->n_tmp++] = id;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* The state of the stacks in m->tmp (sorted here); -1 when there are none
 * and the grammar cannot end either. */
static int intern_state(preft_gauto *m, bool accept) {
  if (m->n_tmp == 0 && !accept) return -1;
  if (m->n_tmp > 1) qsort(m->tmp, (size_t)m->n_tmp, sizeof(int32_t), cmp_i32); /* tmp may be NULL */
  if (m->n_tmp + 1 > m->cap_tmp) {
    m->cap_tmp = m->n_tmp + 1;
    m->tmp = preft_xrealloc(m->tmp, sizeof(int32_t) * (size_t)m->cap_tmp);
  }
  memmove(m->tmp + 1, m->tmp, sizeof(int32_t) * (size_t)m->n_tmp);
  m->tmp[0] = accept;
  int32_t v;
  size_t key_len = sizeof(int32_t) * (size_t)(m->n_tmp + 1);
  if (preft_strmap_get(&m->state_map, m->tmp, key_len, &v)) return v;
  if (m->n_states >= MAX_STATES) return -1;
  if (m->n_states == m->cap_states) {
    m->cap_states = m->cap_states ? 2 * m->cap_states : 64;
    m->states = preft_xrealloc(m->states, sizeof *m->states * (size_t)m->cap_states);
  }
  int id = m->n_states++;
  gstate *s = &m->states[id];
  memset(s, 0, sizeof *s);
  s->n = m->n_tmp;
  s->accept = accept;
  s->nodes = preft_xmalloc(sizeof(int32_t) * (size_t)(s->n ? s->n : 1));
  memcpy(s->nodes, m->tmp + 1, sizeof(int32_t) * (size_t)s->n);
  preft_strmap_put(&m->state_map, m->tmp, key_len, id);
  return id;
}

static int advance(preft_gauto *m, int st, uint8_t byte) {
  gstate *s = &m->states[st];
  if (!s->next) {
    s->next = preft_xmalloc(sizeof(int32_t) * 256);
    for (int i = 0; i < 256; i++) s->next[i] = -2;
  }
  if (s->next[byte] != -2) return s->next[byte];
  m->n_tmp = 0;
  m->gen++;
  bool accept = false;
  for (int i = 0; i < m->states[st].n; i++) {
    int node = m->states[st].nodes[i];
    int pos = m->node_pos[node];
    const uint64_t *set = m->g->sets[m->g->elems[pos].arg];
    if (set[byte >> 6] >> (byte & 63) & 1) expand(m, pos + 1, m->node_parent[node], &accept);
  }
  int ns = intern_state(m, accept);
  m->states[st].next[byte] = ns; /* states may have moved */
  return ns;
}

static inline int next_state(preft_gauto *m, int st, uint8_t byte) {
  const int32_t *nx = m->states[st].next;
  if (nx && nx[byte] != -2) return nx[byte];
  return advance(m, st, byte);
}

/* ---- automata ----------------------------------------------------------------------- */

preft_gauto *preft_gauto_new(preft_grammar *g, const preft_token_trie *trie, const int *stop_ids,
                             int n_stop) {
  preft_gauto *m = preft_xcalloc(1, sizeof *m);
  m->refs = 1;
  pthread_mutex_init(&m->mu, NULL);
  m->g = preft_grammar_ref(g);
  m->trie = trie;
  if (n_stop > 0) {
    m->stop_ids = preft_xmalloc(sizeof(int) * (size_t)n_stop);
    memcpy(m->stop_ids, stop_ids, sizeof(int) * (size_t)n_stop);
    m->n_stop = n_stop;
  }
  preft_u64map_init(&m->node_map, 256);
  preft_strmap_init(&m->state_map, 256);
  m->gen = 1;
  bool accept = false;
  for (int a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1]; a++) expand(m, g->alt_pos[a], -1, &accept);
  m->start = intern_state(m, accept);
  PREFT_ASSERT(m->start >= 0); /* a root rule always has an alternative */
  return m;
}

preft_gauto *preft_gauto_ref(preft_gauto *a) {
  __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
  return a;
}

void preft_gauto_unref(preft_gauto *m) {
  if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (int i = 0; i < m->n_states; i++) {
    free(m->states[i].nodes);
    free(m->states[i].next);
    if (m->states[i].mask) free(m->states[i].mask->bits);
    free(m->states[i].mask);
  }
  free(m->states);
  preft_strmap_free(&m->state_map);
  preft_u64map_free(&m->node_map);
  free(m->node_pos);
  free(m->node_parent);
  free(m->node_depth);
  free(m->mark);
  free(m->tmp);
  free(m->stop_ids);
  preft_grammar_unref(m->g);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

void preft_gauto_counts(preft_gauto *a, int *states, int *masks, int *walks) {
  pthread_mutex_lock(&a->mu);
  *states = a->n_states;
  *masks = a->n_masks;
  *walks = a->n_walks;
  pthread_mutex_unlock(&a->mu);
}

bool preft_gauto_full(preft_gauto *a, int max_states) {
  pthread_mutex_lock(&a->mu);
  bool full = a->n_states > max_states || a->n_masks >= MAX_MASKS;
  pthread_mutex_unlock(&a->mu);
  return full;
}

/* ---- matchers ----------------------------------------------------------------------- */

static void set_cur(preft_gmatch *m, int st) { /* under the automaton's lock */
  m->cur = st;
  m->cur_accept = m->a->states[st].accept;
  m->cur_n = m->a->states[st].n;
}

preft_gmatch *preft_gmatch_new_shared(preft_gauto *a) {
  preft_gmatch *m = preft_xcalloc(1, sizeof *m);
  m->a = preft_gauto_ref(a);
  pthread_mutex_lock(&a->mu);
  set_cur(m, a->start);
  pthread_mutex_unlock(&a->mu);
  return m;
}

preft_gmatch *preft_gmatch_new(preft_grammar *g, const preft_token_trie *trie, const int *stop_ids,
                               int n_stop) {
  preft_gauto *a = preft_gauto_new(g, trie, stop_ids, n_stop);
  preft_gmatch *m = preft_gmatch_new_shared(a);
  preft_gauto_unref(a);
  return m;
}

void preft_gmatch_free(preft_gmatch *m) {
  if (!m) return;
  preft_gauto_unref(m->a);
  free(m->own.bits);
  free(m->cl);
  free(m->cid);
  free(m);
}

/* Follows bytes from state st: the state after them, -1 when refused. */
static int follow(preft_gauto *a, int st, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n && st >= 0; i++) st = next_state(a, st, p[i]);
  return st;
}

bool preft_gmatch_accept_bytes(preft_gmatch *m, const void *bytes, size_t n) {
  pthread_mutex_lock(&m->a->mu);
  int st = follow(m->a, m->cur, bytes, n);
  if (st >= 0) set_cur(m, st);
  pthread_mutex_unlock(&m->a->mu);
  return st >= 0;
}

static bool is_stop(const preft_gauto *a, int token) {
  for (int i = 0; i < a->n_stop; i++)
    if (a->stop_ids[i] == token) return true;
  return false;
}

bool preft_gmatch_accept_token(preft_gmatch *m, int token) {
  if (is_stop(m->a, token)) return m->cur_accept;
  const preft_token_trie *t = m->a->trie;
  if (!t || token < 0 || token >= t->vocab || t->tok_node[token] < 0) return false;
  uint8_t buf[256] = {0}, *bytes = buf;
  int n = 0;
  for (int v = t->tok_node[token]; v > 0; v = t->parent[v]) n++;
  if (n > (int)sizeof buf) bytes = preft_xmalloc((size_t)n);
  int i = n;
  for (int v = t->tok_node[token]; v > 0; v = t->parent[v]) bytes[--i] = t->byte[v];
  bool ok = preft_gmatch_accept_bytes(m, bytes, (size_t)n);
  if (bytes != buf) free(bytes);
  return ok;
}

bool preft_gmatch_can_end(const preft_gmatch *m) { return m->cur_accept; }

bool preft_gmatch_must_end(const preft_gmatch *m) { return m->cur_accept && m->cur_n == 0; }

void preft_gmatch_counts(const preft_gmatch *m, int *states, int *masks) {
  int walks;
  preft_gauto_counts(m->a, states, masks, &walks);
}

/* ---- masks ------------------------------------------------------------------------- */

/* Marks every token below trie node `node` whose bytes the grammar accepts
 * from state st. */
static void walk(preft_gauto *m, int node, int st, uint32_t *mask) {
  const preft_token_trie *t = m->trie;
  int end = t->first_child[node] + t->n_child[node];
  for (int c = t->first_child[node]; c < end; c++) {
    int ns = next_state(m, st, t->byte[c]);
    if (ns < 0) continue;
    for (int k = t->tok_off[c]; k < t->tok_off[c + 1]; k++) mask[t->toks[k] >> 5] |= 1u << (t->toks[k] & 31);
    if (t->n_child[c]) walk(m, c, ns, mask);
  }
}

/* The allowed tokens of state st into out (bits zeroed by the caller). */
static void compute_mask(preft_gauto *a, int st, gmask *out) {
  walk(a, 0, st, out->bits);
  bool accept = a->states[st].accept;
  for (int i = 0; i < a->n_stop; i++) {
    int id = a->stop_ids[i];
    if (id < 0 || id >= a->trie->vocab) continue;
    if (accept)
      out->bits[id >> 5] |= 1u << (id & 31);
    else
      out->bits[id >> 5] &= ~(1u << (id & 31));
  }
  size_t words = ((size_t)a->trie->vocab + 31) / 32;
  int n = 0;
  for (size_t w = 0; w < words; w++) n += __builtin_popcount(out->bits[w]);
  out->n_allowed = n;
  a->n_walks++;
}

/* The mask of the matcher's state: the automaton's cached one (walked once
 * for every matcher that shares it), or, once the cache is full, one walked
 * into the matcher's own buffer. Masks are never freed while the automaton
 * lives, so the pointer stays valid outside the lock. */
static const gmask *mask_of(preft_gmatch *m) {
  preft_gauto *a = m->a;
  PREFT_ASSERT(a->trie);
  size_t words = ((size_t)a->trie->vocab + 31) / 32;
  pthread_mutex_lock(&a->mu);
  gstate *s = &a->states[m->cur];
  const gmask *mk = s->mask;
  if (!mk && a->n_masks < MAX_MASKS) {
    gmask *nm = preft_xcalloc(1, sizeof *nm);
    nm->bits = preft_xcalloc(words, sizeof *nm->bits);
    compute_mask(a, m->cur, nm);
    a->states[m->cur].mask = nm; /* states may have moved during the walk */
    a->n_masks++;
    mk = nm;
  } else if (!mk) {
    if (!m->own.bits) m->own.bits = preft_xmalloc(words * sizeof *m->own.bits);
    memset(m->own.bits, 0, words * sizeof *m->own.bits);
    compute_mask(a, m->cur, &m->own);
    mk = &m->own;
  }
  pthread_mutex_unlock(&a->mu);
  return mk;
}

const uint32_t *preft_gmatch_mask(preft_gmatch *m) { return mask_of(m)->bits; }

/* Draws among the allowed tokens only: their logits are gathered in id
 * order into a dense row of n and drawn from with the sampler as it is,
 * which gives the token the full row with -inf for every other token gives
 * (the same candidates, ranked the same, the same sums; test_grammar
 * checks it), in O(allowed) instead of O(vocab) once the mask is known. */
int preft_gmatch_sample(preft_gmatch *m, preft_sampler *s, preft_sample_scratch *w, const float *logits,
                        int vocab) {
  const gmask *mk = mask_of(m);
  const uint32_t *mask = mk->bits;
  if (vocab > m->a->trie->vocab) vocab = m->a->trie->vocab;
  const preft_sampling *p = &s->params;
  int words = (vocab + 31) / 32;
  if (p->temperature <= 0.0f || p->top_k == 1) {
    int best = -1;
    for (int wi = 0; wi < words; wi++) {
      for (uint32_t bits = mask[wi]; bits; bits &= bits - 1) {
        int t = wi * 32 + __builtin_ctz(bits);
        if (t < vocab && (best < 0 || logits[t] > logits[best])) best = t;
      }
    }
    return best;
  }
  if (!m->cl) {
    m->cl = preft_xmalloc(sizeof(float) * (size_t)m->a->trie->vocab);
    m->cid = preft_xmalloc(sizeof(int32_t) * (size_t)m->a->trie->vocab);
  }
  int n = 0;
  for (int wi = 0; wi < words; wi++) {
    for (uint32_t bits = mask[wi]; bits; bits &= bits - 1) {
      int t = wi * 32 + __builtin_ctz(bits);
      if (t >= vocab) break;
      m->cid[n] = t;
      m->cl[n++] = logits[t];
    }
  }
  if (n == 0) return -1;
  return m->cid[preft_sample_with(s, w, m->cl, n)];
}
