/* constrain.c - a generation's grammar matchers: the vocabulary trie
 * (built once per server, on the first constrained request), the tool-call
 * grammar of tool_choice "required" or a named function, and one matcher
 * per choice (server_int.h). */
#include <stdlib.h>

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

struct preft_gmatch *preft_srv_constraint_new(preft_server *s, const srv_gen_request *q, const int *stop_ids,
                                              int n_stop) {
  if (!q->grammar) return NULL;
  return preft_gmatch_new(q->grammar, s->trie, stop_ids, n_stop);
}
