/* constrain.c - a generation's grammar matchers: the vocabulary trie
 * (built once per server, on the first constrained request), the tool-call
 * grammar of tool_choice "required" or a named function, and one matcher
 * per choice (server_int.h).
 *
 * The matchers of every choice and every request with the same grammar text
 * and stop ids share one automaton (engine/grammar.h), so a state's mask is
 * walked once for all of them: the server keeps the GRAMMAR_CACHE most
 * recently used automata by their text. One that has grown past
 * GRAMMAR_MAX_STATES states (or filled its mask cache) is replaced by a
 * fresh one for the requests that follow; running matchers keep the old. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/timer.h"
#include "engine/grammar.h"
#include "server/server_int.h"
#include "server/tool_calls.h"

static const preft_token_trie *server_trie(preft_server *s, srv_api_error *e) {
  pthread_mutex_lock(&s->trie_mu);
  if (!s->trie) {
    double t0 = preft_now();
    preft_token_trie *t = preft_xcalloc(1, sizeof *t);
    preft_error err;
    if (preft_token_trie_from_tokenizer(t, s->tok, s->vocab, &err) != 0) {
      free(t);
      pthread_mutex_unlock(&s->trie_mu);
      return preft_srv_fail(e, 500, "server_error", NULL, NULL, "building the token trie: %s", err.msg), NULL;
    }
    PREFT_INFO("server: token trie for constrained decoding: %d tokens, %d nodes, %.0f ms", t->n_text_tokens,
               t->n_nodes, (preft_now() - t0) * 1e3);
    s->trie = t;
  }
  pthread_mutex_unlock(&s->trie_mu);
  return s->trie;
}

int preft_srv_prepare_constraint(preft_server *s, srv_gen_request *q, srv_api_error *e) {
  if (q->kind == SRV_CHAT && (q->tool_choice == SRV_TOOLS_REQUIRED || q->tool_choice == SRV_TOOLS_NAMED)) {
    char *text;
    preft_error err;
    if (preft_srv_tool_grammar(preft_srv_tool_family(s), q->tools,
                               q->tool_choice == SRV_TOOLS_NAMED ? q->tool_name : NULL, &text, &err) != 0)
      return preft_srv_bad(e, "tools", "%s", err.msg);
    q->grammar_text = text;
    snprintf(q->grammar_param, sizeof q->grammar_param, "tools");
    if (preft_grammar_parse(text, &q->grammar, &err) != 0)
      return preft_srv_bad(e, "tools", "the tools' grammar: %s", err.msg);
  }
  if (!q->grammar) return 0;
  if (!s->tok)
    return preft_srv_bad(e, q->grammar_param, "'%s' needs the model's tokenizer, and this server has none",
                         q->grammar_param);
  return server_trie(s, e) ? 0 : -1;
}

#define GRAMMAR_CACHE 8
#define GRAMMAR_MAX_STATES 20000

typedef struct srv_grammar_entry {
  char *text;
  int *stop_ids;
  int n_stop;
  preft_gauto *a;
  unsigned long used; /* s->grammar_clock at the last use */
} srv_grammar_entry;

static void entry_free(srv_grammar_entry *g) {
  free(g->text);
  free(g->stop_ids);
  preft_gauto_unref(g->a);
  memset(g, 0, sizeof *g);
}

void preft_srv_grammar_cache_free(preft_server *s) {
  for (int i = 0; i < s->n_grammars; i++) entry_free(&s->grammars[i]);
  free(s->grammars);
  s->grammars = NULL;
  s->n_grammars = 0;
}

/* The shared automaton of q's grammar with these stop ids (a new reference). */
static preft_gauto *shared_automaton(preft_server *s, const srv_gen_request *q, const int *stop_ids,
                                     int n_stop) {
  pthread_mutex_lock(&s->trie_mu);
  if (!s->grammars) s->grammars = preft_xcalloc(GRAMMAR_CACHE, sizeof *s->grammars);
  srv_grammar_entry *hit = NULL, *lru = &s->grammars[0];
  for (int i = 0; i < s->n_grammars && !hit; i++) {
    srv_grammar_entry *g = &s->grammars[i];
    if (g->n_stop == n_stop && !memcmp(g->stop_ids, stop_ids, sizeof(int) * (size_t)n_stop) &&
        !strcmp(g->text, q->grammar_text))
      hit = g;
    if (g->used < lru->used) lru = g;
  }
  if (hit && preft_gauto_full(hit->a, GRAMMAR_MAX_STATES)) { /* start afresh for what follows */
    preft_gauto_unref(hit->a);
    hit->a = preft_gauto_new(q->grammar, s->trie, stop_ids, n_stop);
  }
  if (!hit) {
    if (s->n_grammars < GRAMMAR_CACHE)
      hit = &s->grammars[s->n_grammars++];
    else
      entry_free(hit = lru);
    hit->text = preft_xstrdup(q->grammar_text);
    hit->stop_ids = preft_xmalloc(sizeof(int) * (size_t)(n_stop ? n_stop : 1));
    memcpy(hit->stop_ids, stop_ids, sizeof(int) * (size_t)n_stop);
    hit->n_stop = n_stop;
    hit->a = preft_gauto_new(q->grammar, s->trie, stop_ids, n_stop);
  }
  hit->used = ++s->grammar_clock;
  preft_gauto *a = preft_gauto_ref(hit->a);
  pthread_mutex_unlock(&s->trie_mu);
  return a;
}

struct preft_gmatch *preft_srv_constraint_new(preft_server *s, const srv_gen_request *q, const int *stop_ids,
                                              int n_stop) {
  if (!q->grammar) return NULL;
  preft_gauto *a = shared_automaton(s, q, stop_ids, n_stop);
  preft_gmatch *m = preft_gmatch_new_shared(a);
  preft_gauto_unref(a);
  return m;
}
