/* tokenizer.c - loading (model directory, tokenizer.json, vocab.txt,
 * tokenizer_config.json, generation_config.json; a GGUF file goes to
 * tokenizer_gguf.c), the encode pipeline,
 * post-processing, decode and streaming decode. The stages live in their own
 * files; see tokenizer_int.h for the pipeline. */
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "io/gguf.h"
#include "text/tokenizer_int.h"

void preft_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 256;
    *ids = preft_xrealloc(*ids, *cap * sizeof **ids);
  }
  (*ids)[(*n)++] = id;
}

void preft_tokenizer_set_token(preft_tokenizer *t, int32_t id, const char *s, size_t len) {
  PREFT_ASSERT(id >= 0 && id < t->vocab_size);
  free(t->id_to_token[id]);
  char *c = preft_xmalloc(len + 1);
  memcpy(c, s, len);
  c[len] = 0;
  t->id_to_token[id] = c;
}

static const char *jstr(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jid(const cJSON *v, int32_t *out) {
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2147483647.0 ||
      v->valuedouble != (double)v->valueint)
    return false;
  *out = v->valueint;
  return true;
}

/* ---- post-processor ---- */

static void tmpl_clear(preft_template *tp) {
  for (int i = 0; i < tp->n; i++) free(tp->items[i].ids);
  free(tp->items);
  memset(tp, 0, sizeof *tp);
}

static void tmpl_free(preft_tokenizer *t) {
  tmpl_clear(&t->tmpl_single);
  tmpl_clear(&t->tmpl_pair);
}

/* sequence: -1 for the special tokens ids[n], else 0 (A) or 1 (B) */
static void tmpl_add(preft_template *tp, int sequence, int32_t type_id, const int32_t *ids, int n) {
  tp->items = preft_xrealloc(tp->items, (size_t)(tp->n + 1) * sizeof *tp->items);
  preft_template_item *it = &tp->items[tp->n++];
  it->sequence = sequence;
  it->type_id = type_id;
  it->n_ids = n;
  it->ids = n ? preft_xmalloc((size_t)n * sizeof *ids) : NULL;
  if (n) memcpy(it->ids, ids, (size_t)n * sizeof *ids);
  tp->present = true;
}

/* BERT's: [CLS] A [SEP] (types 0) and [CLS] A [SEP] B [SEP] (B and the last
 * [SEP] type 1); RoBERTa's pair is <s> A </s> </s> B </s>, all type 0. */
static void tmpl_bert(preft_tokenizer *t, int32_t cls, int32_t sep, bool roberta) {
  tmpl_free(t);
  tmpl_add(&t->tmpl_single, -1, 0, &cls, 1);
  tmpl_add(&t->tmpl_single, 0, 0, NULL, 0);
  tmpl_add(&t->tmpl_single, -1, 0, &sep, 1);
  int32_t b_type = roberta ? 0 : 1;
  tmpl_add(&t->tmpl_pair, -1, 0, &cls, 1);
  tmpl_add(&t->tmpl_pair, 0, 0, NULL, 0);
  tmpl_add(&t->tmpl_pair, -1, 0, &sep, 1);
  if (roberta) tmpl_add(&t->tmpl_pair, -1, 0, &sep, 1);
  tmpl_add(&t->tmpl_pair, 1, b_type, NULL, 0);
  tmpl_add(&t->tmpl_pair, -1, b_type, &sep, 1);
}

static int32_t item_type_id(const cJSON *item) {
  const cJSON *ty = cJSON_GetObjectItemCaseSensitive(item, "type_id");
  return cJSON_IsNumber(ty) && ty->valuedouble >= 0 && ty->valuedouble < 1e6 ? (int32_t)ty->valuedouble : 0;
}

/* One TemplateProcessing template ("single" or "pair") into tp. */
static int template_from_json(preft_tokenizer *t, const cJSON *arr, const cJSON *specials, const char *which,
                              preft_template *tp, preft_error *err) {
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
    if (sq) {
      const char *id = jstr(sq, "id");
      bool pair = !strcmp(which, "pair");
      if (!id || (strcmp(id, "A") && !(pair && !strcmp(id, "B"))))
        return preft_fail(err, "post_processor TemplateProcessing.%s[%d]: sequence id must be %s", which, i,
                          pair ? "A or B" : "A");
      tmpl_add(tp, id[0] == 'B', item_type_id(sq), NULL, 0);
    } else if (sp) {
      const char *name = jstr(sp, "id");
      const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
      const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL;
      if (!cJSON_IsArray(ids))
        return preft_fail(
            err, "post_processor TemplateProcessing.%s[%d]: special token '%s' not in special_tokens", which,
            i, name ? name : "?");
      int n = cJSON_GetArraySize(ids), k = 0;
      int32_t *v = preft_xmalloc((size_t)(n + 1) * sizeof *v);
      const cJSON *x;
      cJSON_ArrayForEach(x, ids) {
        if (!jid(x, &v[k]) || v[k] >= t->vocab_size) {
          free(v);
          return preft_fail(
              err, "post_processor TemplateProcessing: special token '%s' has an id outside the vocabulary",
              name);
        }
        k++;
      }
      tmpl_add(tp, -1, item_type_id(sp), v, n);
      free(v);
    } else {
      return preft_fail(err, "post_processor TemplateProcessing.%s[%d]: expected SpecialToken or Sequence",
                        which, i);
    }
    i++;
  }
  return 0;
}

static int post_from_json(preft_tokenizer *t, const cJSON *j, preft_error *err) {
  if (!j || cJSON_IsNull(j)) return 0;
  const char *type = jstr(j, "type");
  if (!type) return preft_fail(err, "post_processor: missing string field 'type'");
  if (!strcmp(type, "ByteLevel")) return 0; /* only adjusts offsets */
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "processors"), *c;
    if (!cJSON_IsArray(arr)) return preft_fail(err, "post_processor Sequence: missing array 'processors'");
    int i = 0;
    cJSON_ArrayForEach(c, arr) {
      if (post_from_json(t, c, err)) return preft_fail_prefix(err, "post_processor Sequence[%d]", i);
      i++;
    }
    return 0;
  }
  if (!strcmp(type, "TemplateProcessing")) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *pair = cJSON_GetObjectItemCaseSensitive(j, "pair");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single))
      return preft_fail(err, "post_processor TemplateProcessing: missing array 'single'");
    tmpl_free(t);
    if (template_from_json(t, single, specials, "single", &t->tmpl_single, err)) return -1;
    t->tmpl_single.present = true;
    /* an empty or absent pair template: pairs cannot be encoded with specials */
    if (cJSON_IsArray(pair) && cJSON_GetArraySize(pair) > 0 &&
        template_from_json(t, pair, specials, "pair", &t->tmpl_pair, err))
      return -1;
    return 0;
  }
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "cls"),
                *sep = cJSON_GetObjectItemCaseSensitive(j, "sep");
    int32_t cid, sid;
    if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || !jid(cJSON_GetArrayItem(cls, 1), &cid) ||
        !jid(cJSON_GetArrayItem(sep, 1), &sid) || cid >= t->vocab_size || sid >= t->vocab_size)
      return preft_fail(
          err, "post_processor %s: 'cls' and 'sep' must be [token, id] with ids in the vocabulary", type);
    tmpl_bert(t, cid, sid, type[0] == 'R');
    return 0;
  }
  return preft_fail(err,
                    "post_processor: unsupported type '%s' (supported: TemplateProcessing ByteLevel "
                    "BertProcessing RobertaProcessing Sequence)",
                    type);
}

/* ---- loading ---- */

static int add_added_token(preft_tokenizer *t, int32_t id, const char *content, bool special, bool lstrip,
                           bool rstrip, bool single_word, bool normalized) {
  t->added = preft_xrealloc(t->added, (size_t)(t->n_added + 1) * sizeof *t->added);
  preft_added_token *a = &t->added[t->n_added++];
  a->content = preft_xstrdup(content);
  a->len = strlen(content);
  a->id = id;
  a->special = special;
  a->lstrip = lstrip;
  a->rstrip = rstrip;
  a->single_word = single_word;
  a->normalized = normalized;
  preft_tokenizer_set_token(t, id, content, a->len);
  t->is_added[id] = 1;
  if (special) t->is_special[id] = 1;
  preft_strmap_put(&t->added_by_content, content, a->len, id);
  return 0;
}

static int load_tokenizer_json(preft_tokenizer *t, const char *path, preft_error *err) {
  char *data;
  size_t size;
  if (preft_read_file(path, &data, &size, err)) return -1;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(data, size, &end, false);
  if (!root) {
    size_t off = end ? (size_t)(end - data) : 0;
    free(data);
    return preft_fail(err, "%s: malformed JSON near byte offset %zu", path, off);
  }
  free(data);
  int rc = preft_tokenizer_from_json(t, root, path, err);
  cJSON_Delete(root);
  return rc;
}

int preft_tokenizer_from_json(preft_tokenizer *t, const cJSON *root, const char *path, preft_error *err) {
  int rc = -1;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsObject(root) || !cJSON_IsObject(model)) {
    preft_fail(err, "%s: not a tokenizer.json (no 'model' object)", path);
    goto out;
  }
  if (preft_normalizer_from_json(&t->normalizer, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err) ||
      preft_pretokenizer_from_json(&t->pretok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                                   err) ||
      preft_decoder_from_json(&t->decoder, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err)) {
    preft_fail_prefix(err, "%s", path);
    goto out;
  }
  t->byte_level = preft_pretokenizer_is_bytelevel(t->pretok);

  /* vocabulary size: one past the largest id of the model and added tokens */
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
    preft_fail(err, "%s: 'added_tokens' must be an array", path);
    goto out;
  }
  int32_t max_id = -1, id;
  const cJSON *e;
  if (cJSON_IsObject(vocab)) cJSON_ArrayForEach(e, vocab) if (jid(e, &id) && id > max_id) max_id = id;
  int i = 0;
  cJSON_ArrayForEach(e, added) {
    if (!jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !jstr(e, "content")) {
      preft_fail(err, "%s: added_tokens[%d] needs an integer 'id' and a string 'content'", path, i);
      goto out;
    }
    if (id > max_id) max_id = id;
    i++;
  }
  if (max_id >= (1 << 30)) {
    preft_fail(err, "%s: token id %d is implausibly large", path, max_id);
    goto out;
  }
  t->vocab_size = max_id + 1;
  t->id_to_token = preft_xcalloc((size_t)t->vocab_size + 1, sizeof *t->id_to_token);
  t->is_special = preft_xcalloc((size_t)t->vocab_size + 1, 1);
  t->is_added = preft_xcalloc((size_t)t->vocab_size + 1, 1);

  const char *type = jstr(model, "type");
  if (!type) type = cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE" : "WordPiece";
  if (!strcmp(type, "BPE")) {
    t->model_type = MODEL_BPE;
    if (preft_bpe_from_json(t, model, err)) goto fail_model;
  } else if (!strcmp(type, "WordPiece")) {
    t->model_type = MODEL_WORDPIECE;
    if (preft_wordpiece_from_json(t, model, err)) goto fail_model;
  } else {
    preft_fail(err, "%s: unsupported model type '%s' (supported: BPE, WordPiece)", path, type);
    goto out;
  }

  preft_strmap_init(&t->added_by_content, 64);
  i = 0;
  cJSON_ArrayForEach(e, added) {
    id = 0;
    jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id); /* validated above */
    bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(e, "normalized");
    add_added_token(t, id, jstr(e, "content"), special,
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "single_word")),
                    cJSON_IsBool(nz) ? cJSON_IsTrue(nz) : !special);
    i++;
  }
  if (post_from_json(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err)) {
    preft_fail_prefix(err, "%s", path);
    goto out;
  }
  rc = 0;
  goto out;
fail_model:
  preft_fail_prefix(err, "%s", path);
out:
  return rc;
}

/* Defaults of a bare vocab.txt: BERT uncased pipeline. */
static int load_vocab(preft_tokenizer *t, const char *path, preft_error *err) {
  if (preft_wordpiece_load_vocab(t, path, err)) return -1;
  t->model_type = MODEL_WORDPIECE;
  /* uncased unless the vocabulary has upper-case ASCII word tokens */
  bool cased = false;
  for (int32_t i = 0; i < t->vocab_size && !cased; i++) {
    const char *s = t->id_to_token[i];
    if (s && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z') cased = true;
  }
  t->normalizer = preft_xcalloc(1, sizeof *t->normalizer);
  t->normalizer->type = NORM_BERT;
  t->normalizer->clean_text = t->normalizer->handle_chinese = true;
  t->normalizer->lowercase = t->normalizer->strip_accents = !cased;
  t->pretok = preft_xcalloc(1, sizeof *t->pretok);
  t->pretok->type = PRE_BERT;
  t->decoder = preft_xcalloc(1, sizeof *t->decoder);
  t->decoder->type = DEC_WORDPIECE;
  t->decoder->content = preft_xstrdup("##");
  t->decoder->cleanup = true;
  t->is_special = preft_xcalloc((size_t)t->vocab_size + 1, 1);
  t->is_added = preft_xcalloc((size_t)t->vocab_size + 1, 1);
  preft_strmap_init(&t->added_by_content, 16);
  static const char *specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int k = 0; k < 5; k++) {
    int32_t id;
    if (preft_strmap_get(&t->wp.vocab, specials[k], strlen(specials[k]), &id))
      add_added_token(t, id, specials[k], true, false, false, false, false);
  }
  int32_t cls, sep;
  if (preft_strmap_get(&t->wp.vocab, "[CLS]", 5, &cls) && preft_strmap_get(&t->wp.vocab, "[SEP]", 5, &sep))
    tmpl_bert(t, cls, sep, false);
  t->unk_tok_id = t->wp.unk_id;
  return 0;
}

/* A token field of tokenizer_config.json: "text" or {"content": "text"}. */
static const char *config_token(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsObject(v)) return jstr(v, "content");
  return NULL;
}

static void add_eos(preft_tokenizer *t, int32_t id) {
  if (id < 0 || id >= t->vocab_size) return;
  for (int i = 0; i < t->n_eos; i++)
    if (t->eos_ids[i] == id) return;
  t->eos_ids = preft_xrealloc(t->eos_ids, (size_t)(t->n_eos + 1) * sizeof *t->eos_ids);
  t->eos_ids[t->n_eos++] = id;
}

static int load_config(preft_tokenizer *t, const char *dir, preft_error *err) {
  char *path = preft_path_join(dir, "tokenizer_config.json");
  t->clean_up_spaces = false;
  if (preft_file_exists(path)) {
    char *data;
    size_t size;
    if (preft_read_file(path, &data, &size, err)) {
      free(path);
      return -1;
    }
    const char *end = NULL;
    cJSON *cfg = cJSON_ParseWithLengthOpts(data, size, &end, false);
    if (!cJSON_IsObject(cfg)) {
      preft_fail(err, "%s: malformed JSON near byte offset %zu", path, end ? (size_t)(end - data) : 0);
      cJSON_Delete(cfg);
      free(data);
      free(path);
      return -1;
    }
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    const char *pad = config_token(cfg, "pad_token");
    if (bos) t->bos_token = preft_xstrdup(bos);
    if (eos) t->eos_token = preft_xstrdup(eos);
    t->bos_id = bos ? preft_tokenizer_token_to_id(t, bos) : -1;
    add_eos(t, eos ? preft_tokenizer_token_to_id(t, eos) : -1);
    t->pad_id = pad ? preft_tokenizer_token_to_id(t, pad) : -1;
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(cfg, "clean_up_tokenization_spaces");
    t->clean_up_spaces = cJSON_IsBool(cl) ? cJSON_IsTrue(cl) : true; /* transformers v4 default */
    /* transformers' Llama / Gemma fast tokenizers rebuild the template from
     * add_bos_token / add_eos_token. */
    const char *cls = jstr(cfg, "tokenizer_class");
    /* transformers' BertTokenizer(Fast) sets the BertNormalizer from its own
     * arguments: do_lower_case (default true), strip_accents (null: follows
     * lower-casing), tokenize_chinese_chars (default true). Without a
     * tokenizer_class (bert-base-uncased's config has none), the settings
     * given still apply. */
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(cfg, "tokenize_chinese_chars");
    bool bert_class = cls && !strncmp(cls, "Bert", 4);
    if (t->normalizer && t->normalizer->type == NORM_BERT &&
        (bert_class || (!cls && (cJSON_IsBool(lc) || cJSON_IsBool(sa) || cJSON_IsBool(cc))))) {
      preft_normalizer *nz = t->normalizer;
      if (cJSON_IsBool(lc) || bert_class) nz->lowercase = cJSON_IsBool(lc) ? cJSON_IsTrue(lc) : true;
      nz->strip_accents = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : nz->lowercase;
      if (cJSON_IsBool(cc) || bert_class) nz->handle_chinese = cJSON_IsBool(cc) ? cJSON_IsTrue(cc) : true;
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cls && (!strncmp(cls, "Llama", 5) || !strncmp(cls, "Gemma", 5) || !strncmp(cls, "CodeLlama", 9)) &&
        (cJSON_IsBool(ab) || cJSON_IsBool(ae))) {
      bool add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : true, add_eos_tok = cJSON_IsTrue(ae);
      /* single: bos? A eos?; pair: bos? A eos? bos? B eos? (B's part type 1) */
      tmpl_free(t);
      for (int seq = 0; seq < 2; seq++) {
        preft_template *tp = seq ? &t->tmpl_pair : &t->tmpl_single;
        for (int part = 0; part <= seq; part++) {
          if (add_bos && t->bos_id >= 0) tmpl_add(tp, -1, part, &t->bos_id, 1);
          tmpl_add(tp, part, part, NULL, 0);
          if (add_eos_tok && t->n_eos) tmpl_add(tp, -1, part, &t->eos_ids[0], 1);
        }
      }
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) {
      t->chat_template = preft_xstrdup(ct->valuestring);
    } else if (cJSON_IsArray(ct)) {
      const cJSON *c, *pick = NULL;
      cJSON_ArrayForEach(c, ct) {
        const char *name = jstr(c, "name");
        if (!pick || (name && !strcmp(name, "default"))) pick = c;
      }
      if (pick && jstr(pick, "template")) t->chat_template = preft_xstrdup(jstr(pick, "template"));
    }
    if (t->chat_template) {
      static const char what[] = ": chat_template";
      t->chat_template_source = preft_xmalloc(strlen(path) + sizeof what);
      memcpy(t->chat_template_source, path, strlen(path));
      memcpy(t->chat_template_source + strlen(path), what, sizeof what);
    }
    cJSON_Delete(cfg);
    free(data);
  } else {
    /* no config: transformers' BERT tokenizers clean up, byte-level BPE
     * files trained by preft (bare tokenizer.json) do not */
    t->clean_up_spaces = t->model_type == MODEL_WORDPIECE;
  }
  free(path);
  /* a separate chat_template.jinja (newer transformers) */
  path = preft_path_join(dir, "chat_template.jinja");
  if (!t->chat_template && preft_file_exists(path)) {
    char *data;
    size_t size;
    if (!preft_read_file(path, &data, &size, err)) {
      t->chat_template = data;
      t->chat_template_source = preft_xstrdup(path);
    }
  }
  free(path);
  path = preft_path_join(dir, "generation_config.json");
  if (preft_file_exists(path)) {
    char *data;
    size_t size;
    if (!preft_read_file(path, &data, &size, err)) {
      cJSON *g = cJSON_ParseWithLength(data, size);
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "eos_token_id"), *x;
      int32_t id;
      if (jid(e, &id))
        add_eos(t, id);
      else if (cJSON_IsArray(e))
        cJSON_ArrayForEach(x, e) if (jid(x, &id)) add_eos(t, id);
      if (t->bos_id < 0 && jid(cJSON_GetObjectItemCaseSensitive(g, "bos_token_id"), &id) &&
          id < t->vocab_size)
        t->bos_id = id;
      cJSON_Delete(g);
      free(data);
    }
  }
  free(path);
  return 0;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int preft_tokenizer_load(preft_tokenizer **out, const char *path, preft_error *err) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st)) return preft_fail(err, "%s: no such file or directory", path);
  preft_tokenizer *t = preft_xcalloc(1, sizeof *t);
  t->path = preft_xstrdup(path);
  t->bos_id = t->pad_id = t->unk_tok_id = -1;
  char *dir = NULL, *file = NULL;
  if (S_ISDIR(st.st_mode)) {
    dir = preft_xstrdup(path);
    file = preft_path_join(path, "tokenizer.json");
    if (!preft_file_exists(file)) {
      free(file);
      file = preft_path_join(path, "vocab.txt");
      if (!preft_file_exists(file)) {
        preft_fail(err, "%s: no tokenizer.json or vocab.txt in this directory", path);
        goto fail;
      }
    }
  } else {
    if (preft_gguf_is_file(path)) {
      if (preft_tokenizer_load_gguf(t, path, err)) goto fail;
      *out = t;
      return 0;
    }
    file = preft_xstrdup(path);
    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : preft_xstrdup(".");
  }
  bool is_vocab = ends_with(file, ".txt");
  if (!is_vocab && ends_with(file, ".json")) {
    FILE *fp = fopen(file, "rb");
    int c = ' ';
    if (fp) {
      while ((c = fgetc(fp)) == ' ' || c == '\n' || c == '\r' || c == '\t') {
      }
      fclose(fp);
    }
    is_vocab = c == '[';
  }
  if (is_vocab ? load_vocab(t, file, err) : load_tokenizer_json(t, file, err)) goto fail;
  preft_added_build(t);
  if (load_config(t, dir, err)) goto fail;
  free(dir);
  free(file);
  *out = t;
  return 0;
fail:
  free(dir);
  free(file);
  preft_tokenizer_free(t);
  return -1;
}

void preft_tokenizer_free(preft_tokenizer *t) {
  if (!t) return;
  preft_bpe_free(&t->bpe);
  preft_wordpiece_free(&t->wp);
  preft_normalizer_free(t->normalizer);
  preft_pretokenizer_free(t->pretok);
  preft_decoder_free(t->decoder);
  if (t->id_to_token)
    for (int32_t i = 0; i < t->vocab_size; i++) free(t->id_to_token[i]);
  free(t->id_to_token);
  free(t->is_special);
  free(t->is_added);
  for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
  free(t->added);
  if (t->added_by_content.slots) preft_strmap_free(&t->added_by_content);
  preft_added_free(&t->match_raw);
  preft_added_free(&t->match_norm);
  tmpl_free(t);
  free(t->eos_ids);
  free(t->bos_token);
  free(t->eos_token);
  free(t->chat_template);
  free(t->chat_template_source);
  free(t->gguf_pre);
  free(t->path);
  free(t);
}

/* ---- encode ---- */

typedef struct enc {
  const preft_tokenizer *t;
  int32_t *ids;
  size_t n, cap;
  size_t max_ids; /* stop encoding pieces once this many ids are out; 0: no limit */
  preft_buf norm, work;
  preft_spans pieces;
} enc;

static void model_piece(enc *e, const char *s, size_t n) {
  const preft_tokenizer *t = e->t;
  if (e->max_ids && e->n >= e->max_ids) return;
  if (t->model_type == MODEL_BPE)
    preft_bpe_encode((preft_bpe *)&t->bpe, t->byte_level, s, n, &e->ids, &e->n, &e->cap);
  else
    preft_wordpiece_encode(&t->wp, s, n, &e->ids, &e->n, &e->cap);
}

/* Pre-tokenizes and encodes normalized text (no added tokens inside). */
static void encode_plain(enc *e, const char *s, size_t n, bool first) {
  if (n == 0) return;
  e->work.len = 0;
  preft_buf_append(&e->work, s, n);
  preft_pretokenize(e->t->pretok, &e->work, (preft_span){0, n}, first, &e->pieces);
  for (size_t i = 0; i < e->pieces.n && !(e->max_ids && e->n >= e->max_ids); i++)
    model_piece(e, e->work.data + e->pieces.v[i].off, e->pieces.v[i].len);
}

/* One section between unnormalized added tokens: normalize, split on
 * normalized added tokens, encode the rest. */
static void encode_valid(enc *e, const char *s, size_t n, bool first) {
  const preft_tokenizer *t = e->t;
  const char *x = s;
  size_t xn = n;
  if (t->normalizer) {
    preft_normalize(t->normalizer, s, n, &e->norm);
    x = e->norm.data;
    xn = e->norm.len;
  }
  if (t->match_norm.n_tokens == 0) {
    encode_plain(e, x, xn, first);
    return;
  }
  char *copy = preft_xmalloc(xn + 1); /* e->norm is reused below */
  memcpy(copy, x, xn);
  size_t pos = 0, ms, me;
  while (pos < xn) {
    int k = preft_added_find(t, &t->match_norm, copy, xn, pos, &ms, &me);
    if (k < 0) ms = me = xn;
    encode_plain(e, copy + pos, ms - pos, first && pos == 0);
    if (k >= 0 && !(e->max_ids && e->n >= e->max_ids))
      preft_ids_push(&e->ids, &e->n, &e->cap, t->added[k].id);
    pos = me;
  }
  free(copy);
}

static void encode_section(enc *e, const char *s, size_t n, bool first) {
  if (!e->t->byte_level) {
    encode_valid(e, s, n, first);
    return;
  }
  /* byte-level: invalid UTF-8 runs become pieces of raw bytes */
  size_t pos = 0;
  while (pos < n) {
    size_t v = pos + preft_utf8_validate((const uint8_t *)s + pos, n - pos);
    if (v > pos) encode_valid(e, s + pos, v - pos, first && pos == 0);
    if (v >= n) break;
    size_t w = v + preft_utf8_invalid_run((const uint8_t *)s + v, n - v);
    model_piece(e, s + v, w - v);
    pos = w;
  }
}

int preft_tokenizer_encode(const preft_tokenizer *t, const char *text, size_t len, bool add_special,
                           int32_t **ids, size_t *n, preft_error *err) {
  return preft_tokenizer_encode_max(t, text, len, add_special, 0, ids, n, err);
}

/* The ids of one text, no special tokens added (max_ids as in
 * preft_tokenizer_encode_max). */
static int encode_text(const preft_tokenizer *t, const char *text, size_t len, size_t max_ids, enc *e,
                       preft_error *err) {
  if (!t->byte_level) {
    size_t bad = preft_utf8_validate((const uint8_t *)text, len);
    if (bad < len) return preft_fail(err, "input text is not valid UTF-8 at byte offset %zu", bad);
  }
  *e = (enc){.t = t, .max_ids = max_ids};
  size_t pos = 0, ms, me;
  int section = 0;
  while (pos < len && !(max_ids && e->n >= max_ids)) {
    int k = preft_added_find(t, &t->match_raw, text, len, pos, &ms, &me);
    if (k < 0) ms = me = len;
    if (ms > pos) encode_section(e, text + pos, ms - pos, section++ == 0);
    if (k >= 0 && !(max_ids && e->n >= max_ids)) {
      preft_ids_push(&e->ids, &e->n, &e->cap, t->added[k].id);
      section++;
    }
    pos = me;
  }
  preft_buf_free(&e->norm);
  preft_buf_free(&e->work);
  preft_spans_free(&e->pieces);
  return 0;
}

/* Lays out the sequences' ids (seq[1] NULL for a single text) by the
 * template, or back to back (types 0 then 1) without one. */
static void apply_template(const preft_template *tp, const enc *seq[2], int32_t **ids, int32_t **types,
                           size_t *n) {
  int32_t *out = NULL, *ty = NULL;
  size_t on = 0, oc = 0, tn = 0, tc = 0;
  if (!tp) {
    for (int s = 0; s < 2 && seq[s]; s++)
      for (size_t k = 0; k < seq[s]->n; k++) {
        preft_ids_push(&out, &on, &oc, seq[s]->ids[k]);
        preft_ids_push(&ty, &tn, &tc, s);
      }
  } else {
    for (int i = 0; i < tp->n; i++) {
      const preft_template_item *it = &tp->items[i];
      const int32_t *src = it->sequence < 0 ? it->ids : seq[it->sequence]->ids;
      size_t count = it->sequence < 0 ? (size_t)it->n_ids : seq[it->sequence]->n;
      for (size_t k = 0; k < count; k++) {
        preft_ids_push(&out, &on, &oc, src[k]);
        preft_ids_push(&ty, &tn, &tc, it->type_id);
      }
    }
  }
  *ids = out ? out : preft_xmalloc(sizeof *out);
  if (types)
    *types = ty ? ty : preft_xmalloc(sizeof *ty);
  else
    free(ty);
  *n = on;
}

int preft_tokenizer_encode_max(const preft_tokenizer *t, const char *text, size_t len, bool add_special,
                               size_t max_ids, int32_t **ids, size_t *n, preft_error *err) {
  *ids = NULL;
  *n = 0;
  enc e;
  if (encode_text(t, text, len, max_ids, &e, err) != 0) return -1;
  if (add_special && t->tmpl_single.present) {
    const enc *seq[2] = {&e, NULL};
    apply_template(&t->tmpl_single, seq, ids, NULL, n);
    free(e.ids);
    return 0;
  }
  *ids = e.ids ? e.ids : preft_xmalloc(sizeof *e.ids);
  *n = e.n;
  return 0;
}

int preft_tokenizer_encode_pair(const preft_tokenizer *t, const char *a, size_t a_len, const char *b,
                                size_t b_len, bool add_special, int32_t **ids, int32_t **type_ids, size_t *n,
                                preft_error *err) {
  *ids = NULL;
  if (type_ids) *type_ids = NULL;
  *n = 0;
  enc ea, eb;
  if (encode_text(t, a, a_len, 0, &ea, err) != 0) return preft_fail_prefix(err, "first text");
  if (b && encode_text(t, b, b_len, 0, &eb, err) != 0) {
    free(ea.ids);
    return preft_fail_prefix(err, "second text");
  }
  const preft_template *tp = NULL;
  if (add_special) {
    tp = b ? &t->tmpl_pair : &t->tmpl_single;
    if (b && !tp->present && t->tmpl_single.present) {
      free(ea.ids);
      free(eb.ids);
      return preft_fail(err,
                        "the tokenizer's post-processor has no pair template: cannot add special tokens to a "
                        "pair of texts");
    }
    if (!tp->present) tp = NULL;
  }
  const enc *seq[2] = {&ea, b ? &eb : NULL};
  apply_template(tp, seq, ids, type_ids, n);
  free(ea.ids);
  if (b) free(eb.ids);
  return 0;
}

/* ---- decode ---- */

int preft_tokenizer_decode(const preft_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                           char **text, size_t *len, preft_error *err) {
  *text = NULL;
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->id_to_token[ids[i]])
      return preft_fail(err, "token id %d at position %zu is outside the vocabulary (size %d)", ids[i], i,
                        t->vocab_size);
  preft_buf *toks = preft_xcalloc(n + 1, sizeof *toks);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if ((flags & PREFT_DECODE_SKIP_SPECIAL) && t->is_special[ids[i]]) continue;
    preft_buf_puts(&toks[m], t->id_to_token[ids[i]]);
    m++;
  }
  preft_buf out = {0};
  preft_decode_chain(t->decoder, toks, m, &out);
  free(toks);
  if (t->clean_up_spaces && !(flags & PREFT_DECODE_NO_CLEANUP)) preft_cleanup_spaces(&out);
  *text = preft_buf_take(&out, len);
  return 0;
}

struct preft_decode_stream {
  const preft_tokenizer *t;
  unsigned flags;
  int32_t *ids;
  size_t n, cap, prefix_index;
  char *prefix;
  size_t prefix_len;
};

preft_decode_stream *preft_decode_stream_new(const preft_tokenizer *t, bool skip_special) {
  preft_decode_stream *s = preft_xcalloc(1, sizeof *s);
  s->t = t;
  s->flags = PREFT_DECODE_NO_CLEANUP | (skip_special ? PREFT_DECODE_SKIP_SPECIAL : 0);
  s->prefix = preft_xstrdup("");
  return s;
}

int preft_decode_stream_step(preft_decode_stream *s, int32_t id, char **text, preft_error *err) {
  *text = NULL;
  if (id < 0 || id >= s->t->vocab_size || !s->t->id_to_token[id])
    return preft_fail(err, "token id %d is outside the vocabulary (size %d)", id, s->t->vocab_size);
  preft_ids_push(&s->ids, &s->n, &s->cap, id);
  char *str;
  size_t len;
  if (preft_tokenizer_decode(s->t, s->ids, s->n, s->flags, &str, &len, err)) return -1;
  bool ends_fffd = len >= 3 && !memcmp(str + len - 3, "\xEF\xBF\xBD", 3);
  if (len > s->prefix_len && !ends_fffd) {
    *text = preft_xstrdup(str + s->prefix_len);
    size_t new_prefix_index = s->n - s->prefix_index;
    memmove(s->ids, s->ids + s->prefix_index, new_prefix_index * sizeof *s->ids);
    s->n = new_prefix_index;
    free(s->prefix);
    if (preft_tokenizer_decode(s->t, s->ids, s->n, s->flags, &s->prefix, &s->prefix_len, err)) {
      free(str);
      return -1;
    }
    s->prefix_index = new_prefix_index;
  }
  free(str);
  return 0;
}

char *preft_decode_stream_flush(preft_decode_stream *s) {
  char *str;
  size_t len;
  preft_error err;
  if (!s->n || preft_tokenizer_decode(s->t, s->ids, s->n, s->flags, &str, &len, &err)) return NULL;
  char *out = len > s->prefix_len ? preft_xstrdup(str + s->prefix_len) : NULL;
  free(str);
  s->n = 0;
  s->prefix_index = 0;
  s->prefix[0] = 0;
  s->prefix_len = 0;
  return out;
}

void preft_decode_stream_free(preft_decode_stream *s) {
  if (!s) return;
  free(s->ids);
  free(s->prefix);
  free(s);
}

/* ---- accessors ---- */

int32_t preft_tokenizer_vocab_size(const preft_tokenizer *t) { return t->vocab_size; }

/* True when no pre-tokenizer step drops text (whitespace splitters and Split
 * with the "Removed" behaviour do). */
static bool pretok_keeps_text(const preft_pretokenizer *p) {
  if (!p) return true;
  if (p->type == PRE_WHITESPACE || p->type == PRE_WHITESPACE_SPLIT || p->type == PRE_BERT) return false;
  if (p->type == PRE_SPLIT && p->behavior == SPLIT_REMOVED) return false;
  for (int i = 0; i < p->n_children; i++)
    if (!pretok_keeps_text(p->children[i])) return false;
  return true;
}

size_t preft_tokenizer_max_bytes_per_token(const preft_tokenizer *t) {
  /* Byte-level BPE maps every input byte to one character of a token
   * string, and a token string spells each such character in 1 or 2 bytes,
   * so a token covers at most strlen(its string) input bytes (added tokens:
   * their content). NFC may shrink text 3:1 (three Hangul jamo compose into
   * one syllable); other normalizers and text-dropping pre-tokenizers have
   * no bound. */
  if (!t->byte_level || t->model_type != MODEL_BPE || !pretok_keeps_text(t->pretok)) return 0;
  if (t->normalizer && t->normalizer->type != NORM_NFC) return 0;
  for (int b = 0; b < 256; b++)
    if (t->bpe.byte_ids[b] < 0) return 0; /* an unknown byte could fuse into one unk token */
  size_t longest = 1;
  for (int32_t id = 0; id < t->vocab_size; id++)
    if (t->id_to_token[id] && strlen(t->id_to_token[id]) > longest) longest = strlen(t->id_to_token[id]);
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].len > longest) longest = t->added[i].len;
  return t->normalizer ? 3 * longest : longest;
}

const char *preft_tokenizer_id_to_token(const preft_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->vocab_size ? t->id_to_token[id] : NULL;
}

int32_t preft_tokenizer_token_to_id(const preft_tokenizer *t, const char *token) {
  int32_t id;
  size_t n = strlen(token);
  if (t->added_by_content.slots && preft_strmap_get(&t->added_by_content, token, n, &id)) return id;
  const preft_strmap *v = t->model_type == MODEL_BPE ? &t->bpe.vocab : &t->wp.vocab;
  if (!v->slots) return -1;
  if (t->byte_level) {
    preft_buf b = {0};
    bool ok = preft_bytelevel_to_bytes(token, n, &b) && preft_strmap_get(v, b.data ? b.data : "", b.len, &id);
    preft_buf_free(&b);
    return ok ? id : -1;
  }
  return preft_strmap_get(v, token, n, &id) ? id : -1;
}

int32_t preft_tokenizer_bos_id(const preft_tokenizer *t) { return t->bos_id; }
int32_t preft_tokenizer_pad_id(const preft_tokenizer *t) { return t->pad_id; }

int preft_tokenizer_eos_ids(const preft_tokenizer *t, const int32_t **ids) {
  *ids = t->eos_ids;
  return t->n_eos;
}

const char *preft_tokenizer_bos_token(const preft_tokenizer *t) { return t->bos_token; }
const char *preft_tokenizer_eos_token(const preft_tokenizer *t) { return t->eos_token; }
const char *preft_tokenizer_chat_template(const preft_tokenizer *t) { return t->chat_template; }
