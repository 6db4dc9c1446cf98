/* penalties.c - min_tokens, logit_bias and the repetition / frequency /
 * presence penalties on a row of logits (see penalties.h). */
#include "engine/penalties.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static bool counts_needed(const preft_penalty_params *p) {
  return p->presence != 0.0f || p->frequency != 0.0f || (p->repetition > 0.0f && p->repetition != 1.0f);
}

static unsigned hash_id(int token) { return (unsigned)token * 2654435761u; }

static void table_grow(preft_penalties *s);

/* The entry of token, inserted (count 0, not in the prompt) when absent. */
static preft_penalty_entry *entry(preft_penalties *s, int token) {
  if (2 * (s->used + 1) > s->cap) table_grow(s);
  unsigned mask = (unsigned)s->cap - 1, i = hash_id(token) & mask;
  while (s->table[i].token != -1 && s->table[i].token != token) i = (i + 1) & mask;
  if (s->table[i].token == -1) {
    s->table[i] = (preft_penalty_entry){.token = token};
    s->used++;
  }
  return &s->table[i];
}

static void table_grow(preft_penalties *s) {
  preft_penalty_entry *old = s->table;
  int old_cap = s->cap;
  s->cap = old_cap ? 2 * old_cap : 64;
  s->table = preft_xmalloc(sizeof *s->table * (size_t)s->cap);
  for (int i = 0; i < s->cap; i++) s->table[i].token = -1;
  s->used = 0;
  for (int i = 0; i < old_cap; i++)
    if (old[i].token != -1) *entry(s, old[i].token) = old[i];
  free(old);
}

void preft_penalties_init(preft_penalties *s, const preft_penalty_params *params, const int *prompt,
                          int n_prompt) {
  memset(s, 0, sizeof *s);
  s->p = *params;
  s->p.bias_ids = NULL;
  s->p.bias = NULL;
  if (params->n_bias > 0) {
    int *ids = preft_xmalloc(sizeof *ids * (size_t)params->n_bias);
    float *bias = preft_xmalloc(sizeof *bias * (size_t)params->n_bias);
    memcpy(ids, params->bias_ids, sizeof *ids * (size_t)params->n_bias);
    memcpy(bias, params->bias, sizeof *bias * (size_t)params->n_bias);
    s->p.bias_ids = ids;
    s->p.bias = bias;
  }
  bool counts = counts_needed(params);
  s->active = counts || params->n_bias > 0 || params->min_tokens > 0;
  if (!counts) return;
  table_grow(s);
  /* the prompt only matters to the repetition penalty */
  if (params->repetition > 0.0f && params->repetition != 1.0f)
    for (int i = 0; i < n_prompt; i++) entry(s, prompt[i])->in_prompt = true;
}

void preft_penalties_free(preft_penalties *s) {
  free((void *)s->p.bias_ids);
  free((void *)s->p.bias);
  free(s->table);
  free(s->saved_ids);
  free(s->saved);
  memset(s, 0, sizeof *s);
}

void preft_penalties_add(preft_penalties *s, int token) {
  if (s->cap) entry(s, token)->count++;
}

static bool table_has(const preft_penalties *s, int token) {
  if (!s->cap) return false;
  unsigned mask = (unsigned)s->cap - 1, i = hash_id(token) & mask;
  while (s->table[i].token != -1 && s->table[i].token != token) i = (i + 1) & mask;
  return s->table[i].token == token;
}

static void push_saved(preft_penalties *s, const float *logits, int id) {
  if (s->n_saved == s->cap_saved) {
    s->cap_saved = s->cap_saved ? 2 * s->cap_saved : 64;
    s->saved_ids = preft_xrealloc(s->saved_ids, sizeof *s->saved_ids * (size_t)s->cap_saved);
    s->saved = preft_xrealloc(s->saved, sizeof *s->saved * (size_t)s->cap_saved);
  }
  s->saved_ids[s->n_saved] = id;
  s->saved[s->n_saved++] = logits[id];
}

/* Remembers logits[id]'s raw value once per apply: the table's tokens are
 * all saved first (saved[0, n_table)), so only the few ids saved after them
 * (stop and bias ids) need a scan. */
static void save(preft_penalties *s, const float *logits, int id, int n_table) {
  if (table_has(s, id)) return;
  for (int i = n_table; i < s->n_saved; i++)
    if (s->saved_ids[i] == id) return;
  push_saved(s, logits, id);
}

void preft_penalties_apply(preft_penalties *s, float *logits, int vocab, int n_generated, const int *stop_ids,
                           int n_stop) {
  s->n_saved = 0;
  if (!s->active) return;
  const preft_penalty_params *p = &s->p;
  /* the penalties see the logits after min_tokens and logit_bias; a token
   * the table holds is saved here first, then changed below in order */
  for (int i = 0; i < s->cap; i++)
    if (s->table[i].token >= 0 && s->table[i].token < vocab) push_saved(s, logits, s->table[i].token);
  int n_table = s->n_saved;
  if (n_generated < p->min_tokens)
    for (int i = 0; i < n_stop; i++)
      if (stop_ids[i] >= 0 && stop_ids[i] < vocab) {
        save(s, logits, stop_ids[i], n_table);
        logits[stop_ids[i]] = -INFINITY;
      }
  for (int i = 0; i < p->n_bias; i++) {
    int id = p->bias_ids[i];
    if (id < 0 || id >= vocab) continue;
    save(s, logits, id, n_table);
    logits[id] += p->bias[i];
  }
  bool repetition = p->repetition > 0.0f && p->repetition != 1.0f;
  for (int i = 0; i < s->cap; i++) {
    const preft_penalty_entry *t = &s->table[i];
    if (t->token < 0 || t->token >= vocab) continue;
    float x = logits[t->token];
    if (repetition && (t->in_prompt || t->count > 0)) x = x > 0.0f ? x / p->repetition : x * p->repetition;
    x -= p->frequency * (float)t->count + p->presence * (t->count > 0 ? 1.0f : 0.0f);
    logits[t->token] = x;
  }
}

void preft_penalties_restore(preft_penalties *s, float *logits) {
  for (int i = 0; i < s->n_saved; i++) logits[s->saved_ids[i]] = s->saved[i];
  s->n_saved = 0;
}
