/* rl_task.c - the prompts of reinforcement learning: the built-in seeded
 * generators (addition, reverse, count) and JSONL task files (see
 * rl_task.h). The verifiers are rl_verify.c; reward commands reward_cmd.c.
 *
 * Built-in prompts share one format, the question after "Q: " and the answer
 * after the fixed marker "A:", so one model can learn all three:
 *   addition:D  "Q: 73+54= A: "             -> "28"   (37+45 = 82: two D-digit numbers
 *                                                    and their sum, every number
 *                                                    written least significant
 *                                                    digit first)
 *   reverse:W   "Q: reverse cat dog sun A:" -> "sun dog cat" (W distinct words)
 *   count:L     "Q: count b in abcbd A: "   -> "2"    (a word of L letters a-e, the
 *                                                    count uniform in [0, (L+1)/2])
 * A prompt ends where the answer's first token starts, so that the row that
 * picks it is a prompt row (where a prefill-only adapter acts): after the
 * marker's space for numbers (a byte-level BPE with the Llama 3 pre-tokenizer
 * makes digits tokens of their own, the space before them another), before it
 * for words (that pre-tokenizer joins a word to the space before it, and the
 * task model's BPE merges the space with some first letters: " r", " c").
 * The text of a prompt and its answer is the same either way ("... A: 28",
 * "... A: sun dog cat").
 * They are checked by the first line of the completion (a model trained on
 * "prompt answer" lines goes on with the next question after a newline).
 * The numbers of `addition` are written backwards (37 as "73") because that
 * is the order in which a small model can add: each digit of the sum follows
 * from the two digits at the same place, a fixed distance back, and the carry
 * of the digit just written; in the usual order the first digit needs the
 * carries of all the others (Lee et al. 2023, "Teaching arithmetic to small
 * transformers", found reversed sums learnt far faster). */
#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "rl/rl_task.h"
#include "train/rng.h"

typedef enum { TASK_ADDITION, TASK_REVERSE, TASK_COUNT, TASK_FILE } task_kind;

typedef struct {
  const char *name;
  int lo, hi, dflt; /* the difficulty parameter's range and default */
  const char *param, *example;
} builtin;

/* The defaults: for addition and reverse the hardest levels at which
 * assets/task-model starts with a non-zero greedy accuracy, for count (at
 * guessing level at every length) a short word (its README.md: 0.1-0.3). */
static const builtin BUILTINS[] = {
    {"addition", 1, 9, 2, "digits of each number",
     "\"Q: 73+54= A: \" -> \"28\" (37+45 = 82, every number backwards)"},
    {"reverse", 1, 8, 2, "words", "\"Q: reverse cat dog sun A:\" -> \"sun dog cat\""},
    {"count", 1, 32, 4, "letters of the word", "\"Q: count b in abcbde A: \" -> \"2\""},
};
enum { N_BUILTINS = sizeof BUILTINS / sizeof BUILTINS[0] };

static const char *const NAMES[] = {"addition", "reverse", "count", NULL};

/* Short words the model can learn as single tokens. */
static const char *const WORDS[] = {"cat", "dog", "sun", "red", "box", "cup", "hat", "pen",
                                    "map", "egg", "bus", "car", "fox", "owl", "bee", "ant",
                                    "pig", "cow", "toy", "key", "bed", "jar", "net", "rug",
                                    "fan", "ink", "log", "mud", "nut", "oak", "pot", "tea"};
enum { N_WORDS = sizeof WORDS / sizeof WORDS[0] };

struct preft_rl_task {
  task_kind kind;
  int level;
  char *name;
  preft_rl_prompt *lines; /* TASK_FILE */
  int64_t n_lines;
  bool partial; /* addition scored digit by digit (match "digits"), not by exact match */
};

const char *const *preft_rl_task_names(void) { return NAMES; }

const char *preft_rl_task_help(void) {
  static char buf[1024];
  if (!buf[0]) {
    size_t off = 0;
    for (int i = 0; i < N_BUILTINS; i++)
      off +=
          (size_t)snprintf(buf + off, sizeof buf - off, "  %-9s %s:N, N = %s in [%d, %d], default %d: %s\n",
                           BUILTINS[i].name, BUILTINS[i].name, BUILTINS[i].param, BUILTINS[i].lo,
                           BUILTINS[i].hi, BUILTINS[i].dflt, BUILTINS[i].example);
  }
  return buf;
}

const char *preft_rl_task_name(const preft_rl_task *t) { return t->name; }
int64_t preft_rl_task_size(const preft_rl_task *t) { return t->kind == TASK_FILE ? t->n_lines : 0; }

void preft_rl_prompt_clear(preft_rl_prompt *p) {
  free(p->prompt);
  free(p->answer);
  p->prompt = p->answer = NULL;
}

/* ---- opening --------------------------------------------------------------- */

static int open_builtin(const char *name, preft_rl_task *t, preft_error *err) {
  const char *colon = strchr(name, ':');
  size_t base_len = colon ? (size_t)(colon - name) : strlen(name);
  for (int i = 0; i < N_BUILTINS; i++) {
    const builtin *b = &BUILTINS[i];
    if (strlen(b->name) != base_len || strncmp(name, b->name, base_len) != 0) continue;
    t->kind = (task_kind)i;
    t->level = b->dflt;
    if (colon) {
      char *end;
      long v = strtol(colon + 1, &end, 10);
      if (end == colon + 1 || *end || v < b->lo || v > b->hi)
        return preft_fail(err, "task '%s': the %s after ':' must be an integer in [%d, %d]", name, b->param,
                          b->lo, b->hi);
      t->level = (int)v;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s:%d", b->name, t->level);
    t->name = preft_xstrdup(buf);
    return 0;
  }
  char list[256] = "";
  for (int i = 0; i < N_BUILTINS; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", BUILTINS[i].name);
  return preft_fail(err, "unknown task '%s' (built-in tasks: %s; or --task-file FILE.jsonl)", name, list);
}

/* Checks that the answer can ever match: a pattern that compiles, a number
 * that parses. */
static int check_answer(const char *answer, preft_rl_match m, preft_error *err) {
  if (m == PREFT_RL_MATCH_REGEX) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)answer, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (!re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(code, msg, sizeof msg);
      return preft_fail(err, "field \"answer\" is not a valid regex at offset %zu: %s", (size_t)off,
                        (const char *)msg);
    }
    pcre2_code_free(re);
  } else if (m == PREFT_RL_MATCH_NUMBER || m == PREFT_RL_MATCH_FIRST_NUMBER) {
    char *end;
    (void)strtod(answer, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == answer || *end)
      return preft_fail(err, "field \"answer\" must be a number for match \"%s\"", preft_rl_match_name(m));
  }
  return 0;
}

static int parse_task_line(const char *line, size_t len, preft_rl_prompt *out, preft_error *err) {
  if (len == 0) return preft_fail(err, "empty line");
  cJSON *root = cJSON_ParseWithLength(line, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return preft_fail(err, "not a JSON object");
  }
  const cJSON *prompt = cJSON_GetObjectItem(root, "prompt"), *answer = cJSON_GetObjectItem(root, "answer"),
              *match = cJSON_GetObjectItem(root, "match");
  int rc = 0, m = PREFT_RL_MATCH_EXACT;
  if (!cJSON_IsString(prompt))
    rc = preft_fail(err, "field \"prompt\" must be a string");
  else if (!prompt->valuestring[0])
    rc = preft_fail(err, "field \"prompt\" is empty");
  else if (cJSON_IsNumber(answer) && !cJSON_IsString(answer))
    rc = preft_fail(err, "field \"answer\" must be a string (write \"%g\")", answer->valuedouble);
  else if (!cJSON_IsString(answer))
    rc = preft_fail(err, "field \"answer\" must be a string");
  else if (match && (!cJSON_IsString(match) || (m = preft_rl_match_parse(match->valuestring)) < 0))
    rc = preft_fail(err,
                    "field \"match\" must be one of \"exact\", \"contains\", \"regex\", \"number\", "
                    "\"first_line\", \"first_number\", \"digits\"");
  else
    rc = check_answer(answer->valuestring, (preft_rl_match)m, err);
  if (rc == 0) {
    out->prompt = preft_xstrdup(prompt->valuestring);
    out->answer = preft_xstrdup(answer->valuestring);
    out->match = (preft_rl_match)m;
  }
  cJSON_Delete(root);
  return rc;
}

static int open_file(const char *path, preft_rl_task *t, preft_error *err) {
  char *text;
  size_t size;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  t->kind = TASK_FILE;
  t->name = preft_xstrdup(path);
  int64_t cap = 0;
  int line_no = 0, rc = 0;
  for (size_t pos = 0; pos < size && rc == 0;) {
    size_t end = pos;
    while (end < size && text[end] != '\n') end++;
    line_no++;
    size_t len = end - pos;
    if (len && text[pos + len - 1] == '\r') len--;
    preft_rl_prompt p;
    preft_error le;
    if (parse_task_line(text + pos, len, &p, &le) != 0) {
      rc = preft_fail(err, "%s:%d: %s", path, line_no, le.msg);
      break;
    }
    if (t->n_lines == cap) {
      cap = cap ? cap * 2 : 64;
      t->lines = preft_xrealloc(t->lines, sizeof *t->lines * (size_t)cap);
    }
    t->lines[t->n_lines++] = p;
    pos = end + 1;
  }
  free(text);
  if (rc == 0 && t->n_lines == 0) rc = preft_fail(err, "%s: no prompts (one JSON object per line)", path);
  return rc;
}

int preft_rl_task_open(const char *name, const char *file, preft_rl_task **out, preft_error *err) {
  if ((name == NULL) == (file == NULL)) return preft_fail(err, "give either a task name or a task file");
  preft_rl_task *t = preft_xcalloc(1, sizeof *t);
  int rc = name ? open_builtin(name, t, err) : open_file(file, t, err);
  if (rc != 0) {
    preft_rl_task_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

void preft_rl_task_free(preft_rl_task *t) {
  if (!t) return;
  for (int64_t i = 0; i < t->n_lines; i++) preft_rl_prompt_clear(&t->lines[i]);
  free(t->lines);
  free(t->name);
  free(t);
}

/* ---- drawing --------------------------------------------------------------- */

static uint64_t mix(uint64_t seed, int64_t index) {
  preft_rng r;
  preft_rng_seed(&r, seed ^ ((uint64_t)index * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
  return preft_rng_u64(&r);
}

/* FNV-1a of the prompt without its trailing spaces: which side of the split
 * a problem is on (the same side whether the prompt ends before or after the
 * marker's space). */
static int is_heldout(const char *prompt) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t n = strlen(prompt);
  while (n > 0 && prompt[n - 1] == ' ') n--;
  for (const unsigned char *p = (const unsigned char *)prompt; p < (const unsigned char *)prompt + n; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  h ^= h >> 29;
  return h % PREFT_RL_HELDOUT_EVERY == 0;
}

static uint64_t pow10u(int d) {
  uint64_t v = 1;
  while (d-- > 0) v *= 10;
  return v;
}

/* v's decimal digits least significant first: 375 -> "573" (out: 21 bytes). */
static void backwards(uint64_t v, char *out) {
  size_t len = 0;
  do {
    out[len++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  out[len] = 0;
}

/* One problem of the task from r into prompt/answer (buffers of 512). */
static void generate(const preft_rl_task *t, preft_rng *r, char *prompt, char *answer) {
  size_t n = 512;
  if (t->kind == TASK_ADDITION) {
    uint64_t lo = t->level == 1 ? 0 : pow10u(t->level - 1), hi = pow10u(t->level);
    uint64_t a = lo + preft_rng_below(r, hi - lo), b = lo + preft_rng_below(r, hi - lo);
    char ra[24], rb[24];
    backwards(a, ra);
    backwards(b, rb);
    snprintf(prompt, n, "Q: %s+%s= A: ", ra, rb);
    backwards(a + b, answer);
  } else if (t->kind == TASK_REVERSE) {
    int pick[8], w = t->level;
    for (int i = 0; i < w; i++) {
      int again;
      do {
        pick[i] = (int)preft_rng_below(r, N_WORDS);
        again = 0;
        for (int k = 0; k < i; k++) again |= pick[k] == pick[i];
      } while (again);
    }
    size_t pl = (size_t)snprintf(prompt, n, "Q: reverse");
    for (int i = 0; i < w; i++) pl += (size_t)snprintf(prompt + pl, n - pl, " %s", WORDS[pick[i]]);
    snprintf(prompt + pl, n - pl, " A:");
    size_t al = 0;
    answer[0] = 0;
    for (int i = w - 1; i >= 0; i--)
      al += (size_t)snprintf(answer + al, n - al, "%s%s", i == w - 1 ? "" : " ", WORDS[pick[i]]);
  } else {
    /* the count k is uniform in [0, (L+1)/2], so guessing one number is
     * right at most 1 time in 1 + (L+1)/2; the k places are random and the
     * other letters any of the four others */
    char word[33];
    int L = t->level, count = (int)preft_rng_below(r, (uint64_t)(L + 1) / 2 + 1), pos[32];
    char letter = (char)('a' + preft_rng_below(r, 5));
    for (int i = 0; i < L; i++) pos[i] = i;
    for (int i = 0; i < count; i++) { /* partial Fisher-Yates: pos[0..count) */
      int j = i + (int)preft_rng_below(r, (uint64_t)(L - i)), tmp = pos[i];
      pos[i] = pos[j];
      pos[j] = tmp;
    }
    for (int i = 0; i < L; i++) {
      int other = (int)preft_rng_below(r, 4);
      word[i] = (char)('a' + (other >= letter - 'a' ? other + 1 : other));
    }
    for (int i = 0; i < count; i++) word[pos[i]] = letter;
    word[t->level] = 0;
    snprintf(prompt, n, "Q: count %c in %s A: ", letter, word);
    snprintf(answer, n, "%d", count);
  }
}

void preft_rl_task_draw(const preft_rl_task *t, uint64_t seed, int64_t index, preft_rl_prompt *out) {
  if (t->kind == TASK_FILE) {
    /* epoch e = index / n visits every line once, in an order seeded by
     * (seed, e) (Fisher-Yates, O(n) per draw: task files are small) */
    int64_t n = t->n_lines, e = index >= 0 ? index / n : -1 - (-1 - index) / n, k = index - e * n;
    preft_rng r;
    preft_rng_seed(&r, mix(seed, e));
    int64_t *perm = preft_xmalloc(sizeof *perm * (size_t)n);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)preft_rng_below(&r, (uint64_t)i + 1), tmp = perm[i];
      perm[i] = perm[j];
      perm[j] = tmp;
    }
    const preft_rl_prompt *p = &t->lines[perm[k]];
    free(perm);
    out->prompt = preft_xstrdup(p->prompt);
    out->answer = preft_xstrdup(p->answer);
    out->match = p->match;
    return;
  }
  preft_rng r;
  preft_rng_seed(&r, mix(seed, index));
  int want = seed >= PREFT_RL_HELDOUT_SEED;
  char prompt[512], answer[512];
  /* rejection: the first problem on the stream's side of the split (a level
   * with fewer problems than tries could have none: take the last one) */
  for (int tries = 0; tries < 256; tries++) {
    generate(t, &r, prompt, answer);
    if (is_heldout(prompt) == want) break;
  }
  out->prompt = preft_xstrdup(prompt);
  out->answer = preft_xstrdup(answer);
  out->match = t->kind == TASK_ADDITION && t->partial ? PREFT_RL_MATCH_DIGITS : PREFT_RL_MATCH_FIRST_LINE;
}

void preft_rl_task_set_partial(preft_rl_task *t, bool partial) { t->partial = partial; }
