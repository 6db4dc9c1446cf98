/* task_load.c - reads a task folder (task.h): the TB 2.x layout with
 * task.toml, the TB 1.0 layout with task.yaml, and lists of tasks. */
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "tasks/task.h"
#include "tasks/task_fields.h"
#include "tasks/toml.h"
#include "tasks/yaml.h"

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int64_t preft_task_parse_size_mb(const char *s) {
  char *end;
  while (isspace((unsigned char)*s)) s++;
  if (!isdigit((unsigned char)*s) && *s != '.') return -1;
  double x = strtod(s, &end);
  if (!isfinite(x) || x < 0) return -1;
  double mult = 1.0 / (1024.0 * 1024.0); /* a bare number is bytes */
  char unit = (char)tolower((unsigned char)*end);
  if (unit && strchr("kmgt", unit)) {
    mult = unit == 'k' ? 1.0 / 1024.0 : unit == 'm' ? 1.0 : unit == 'g' ? 1024.0 : 1024.0 * 1024.0;
    end++;
    if (*end == 'i') end++;
    if (tolower((unsigned char)*end) == 'b') end++;
  } else if (unit == 'b') {
    end++;
  }
  while (isspace((unsigned char)*end)) end++;
  if (*end) return -1;
  double mb = ceil(x * mult);
  if (mb > 1e12) return -1;
  return (int64_t)mb;
}

/* ---- typed fields ---- */

/* "an integer", "a string", ... */
static const char *a_kind(preft_tv_kind k) {
  static const char *const names[] = {"a table", "an array",  "a string", "an integer",
                                      "a float", "a boolean", "null"};
  return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "a value";
}

int task_field_fail(const task_fields *f, const preft_tv *v, const char *key, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *sep = f->table ? "] " : "";
  if (v)
    return preft_fail(f->err, "%s:%d: %s%s%s%s: %s", f->file, v->line, f->table ? "[" : "",
                      f->table ? f->table : "", sep, key, msg);
  return preft_fail(f->err, "%s: %s%s%s%s: %s", f->file, f->table ? "[" : "", f->table ? f->table : "", sep,
                    key, msg);
}

int task_field_num(const task_fields *f, const preft_tv *tbl, const char *key, double lo, double *out) {
  const preft_tv *v = preft_tv_get(tbl, key);
  if (!v || v->kind == PREFT_TV_NULL) return 0;
  double x;
  if (!preft_tv_number(v, &x))
    return task_field_fail(f, v, key, "expected a number, found %s", a_kind(v->kind));
  if (!isfinite(x) || x < lo) return task_field_fail(f, v, key, "%g is out of range (at least %g)", x, lo);
  *out = x;
  return 0;
}

int task_field_str(const task_fields *f, const preft_tv *tbl, const char *key, char **out) {
  const preft_tv *v = preft_tv_get(tbl, key);
  if (!v || v->kind == PREFT_TV_NULL) return 0;
  if (v->kind != PREFT_TV_STRING)
    return task_field_fail(f, v, key, "expected a string, found %s", a_kind(v->kind));
  free(*out);
  *out = preft_xstrdup(v->str);
  return 0;
}

int task_field_bool(const task_fields *f, const preft_tv *tbl, const char *key, bool *out) {
  const preft_tv *v = preft_tv_get(tbl, key);
  if (!v || v->kind == PREFT_TV_NULL) return 0;
  if (v->kind != PREFT_TV_BOOL)
    return task_field_fail(f, v, key, "expected true or false, found %s", a_kind(v->kind));
  *out = v->b;
  return 0;
}

/* a size in MB: an integer (key_mb) or a Docker size string (key) */
int task_field_size(const task_fields *f, const preft_tv *tbl, const char *key_mb, const char *key,
                    int64_t *out) {
  const preft_tv *v = preft_tv_get(tbl, key_mb);
  if (v && v->kind != PREFT_TV_NULL) {
    double x;
    if (task_field_num(f, tbl, key_mb, 0, &x) != 0) return -1;
    if (x != floor(x) || x > 1e12)
      return task_field_fail(f, v, key_mb, "expected a whole number of megabytes");
    *out = (int64_t)x;
    return 0;
  }
  v = preft_tv_get(tbl, key);
  if (!v || v->kind == PREFT_TV_NULL) return 0;
  if (v->kind != PREFT_TV_STRING)
    return task_field_fail(f, v, key, "expected a size such as \"2G\", found %s", a_kind(v->kind));
  int64_t mb = preft_task_parse_size_mb(v->str);
  if (mb < 0) return task_field_fail(f, v, key, "'%s' is not a size (such as \"512M\" or \"2G\")", v->str);
  *out = mb;
  return 0;
}

static bool env_name_ok(const char *s) {
  if (!*s || isdigit((unsigned char)*s)) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

/* NAME=VALUE strings from a table of strings; *out stays a NULL-terminated array */
int task_field_env(const task_fields *f, const preft_tv *tbl, const char *key, char ***out) {
  const preft_tv *v = preft_tv_get(tbl, key);
  if (!v || v->kind == PREFT_TV_NULL) return 0;
  if (v->kind != PREFT_TV_TABLE)
    return task_field_fail(f, v, key, "expected a table of NAME = \"value\", found %s", a_kind(v->kind));
  for (int k = 0; k < v->n; k++) {
    const preft_tv *x = v->items[k];
    char field[300];
    snprintf(field, sizeof field, "%s.%s", key, v->keys[k]);
    if (!env_name_ok(v->keys[k]))
      return task_field_fail(f, x, field, "not a valid environment variable name");
    if (x->kind != PREFT_TV_STRING)
      return task_field_fail(f, x, field, "expected a string, found %s", a_kind(x->kind));
  }
  int n = 0;
  while ((*out)[n]) n++;
  *out = preft_xrealloc(*out, (size_t)(n + v->n + 1) * sizeof **out);
  for (int k = 0; k < v->n; k++) {
    size_t len = strlen(v->keys[k]) + strlen(v->items[k]->str) + 2;
    char *s = preft_xmalloc(len);
    snprintf(s, len, "%s=%s", v->keys[k], v->items[k]->str);
    (*out)[n++] = s;
  }
  (*out)[n] = NULL;
  return 0;
}

/* ---- TB 2.x ---- */

static char **empty_env(void) { return preft_xcalloc(1, sizeof(char *)); }

static preft_task *task_new(const char *dir) {
  preft_task *t = preft_xcalloc(1, sizeof *t);
  t->dir = preft_xstrdup(dir);
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  size_t s = n;
  while (s > 0 && dir[s - 1] != '/') s--;
  t->name = preft_xmalloc(n - s + 1);
  memcpy(t->name, dir + s, n - s);
  t->name[n - s] = 0;
  t->verifier_env = empty_env();
  t->env = empty_env();
  t->allow_internet = true;
  t->cpus = 1;
  t->memory_mb = 2048;
  t->storage_mb = 10240;
  t->build_timeout_s = 600;
  return t;
}

/* a required file under dir; err names it when missing */
static char *need_file(const char *dir, const char *rel, const char *what, preft_error *err) {
  char *p = preft_path_join(dir, rel);
  if (!is_file(p)) {
    preft_fail(err, "%s: missing %s (%s)", p, rel, what);
    free(p);
    return NULL;
  }
  return p;
}

static int read_text(const char *path, char **out, preft_error *err) {
  size_t n;
  if (preft_read_file(path, out, &n, err) != 0) return -1;
  if (strlen(*out) != n) {
    free(*out);
    *out = NULL;
    return preft_fail(err, "%s: contains a NUL byte (expected text)", path);
  }
  return 0;
}

static int load_tb2(preft_task *t, const char *toml_path, preft_error *err) {
  char *text = NULL;
  preft_tv *root = NULL;
  int r = -1;
  if (read_text(toml_path, &text, err) != 0) return -1;
  if (preft_toml_parse(text, strlen(text), toml_path, &root, err) != 0) goto done;
  task_fields f = {toml_path, NULL, err};
  const preft_tv *v = preft_tv_get(root, "version");
  if (v && v->kind != PREFT_TV_STRING) {
    task_field_fail(&f, v, "version", "expected a string such as \"1.0\"");
    goto done;
  }
  static const char *const tables[] = {"task", "metadata", "verifier", "agent", "environment"};
  for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
    const preft_tv *x = preft_tv_get(root, tables[k]);
    if (x && x->kind != PREFT_TV_TABLE) {
      task_field_fail(&f, x, tables[k], "expected a table ([%s])", tables[k]);
      goto done;
    }
  }
  const preft_tv *ver = preft_tv_get(root, "verifier"), *ag = preft_tv_get(root, "agent"),
                 *envt = preft_tv_get(root, "environment");
  t->agent_timeout_s = 600;
  t->verifier_timeout_s = 600;
  f.table = "verifier";
  if (task_field_num(&f, ver, "timeout_sec", 0, &t->verifier_timeout_s) != 0) goto done;
  if (task_field_env(&f, ver, "env", &t->verifier_env) != 0) goto done;
  f.table = "agent";
  if (task_field_num(&f, ag, "timeout_sec", 0, &t->agent_timeout_s) != 0) goto done;
  f.table = "environment";
  if (task_field_num(&f, envt, "build_timeout_sec", 0, &t->build_timeout_s) != 0) goto done;
  if (task_field_str(&f, envt, "docker_image", &t->docker_image) != 0) goto done;
  if (task_field_num(&f, envt, "cpus", 0, &t->cpus) != 0) goto done;
  if (task_field_size(&f, envt, "memory_mb", "memory", &t->memory_mb) != 0) goto done;
  if (task_field_size(&f, envt, "storage_mb", "storage", &t->storage_mb) != 0) goto done;
  if (task_field_bool(&f, envt, "allow_internet", &t->allow_internet) != 0) goto done;
  if (task_field_env(&f, envt, "env", &t->env) != 0) goto done;
  if (task_field_str(&f, envt, "workdir", &t->workdir) != 0) goto done;
  if (t->workdir && t->workdir[0] != '/') {
    task_field_fail(&f, preft_tv_get(envt, "workdir"), "workdir", "'%s' is not an absolute path", t->workdir);
    goto done;
  }
  /* metadata: [metadata], plus [task] and version when present */
  const preft_tv *md = preft_tv_get(root, "metadata");
  t->metadata = md ? preft_tv_to_json(md, false) : cJSON_CreateObject();
  const preft_tv *tt = preft_tv_get(root, "task");
  if (tt) cJSON_AddItemToObject(t->metadata, "task", preft_tv_to_json(tt, false));
  if (v) cJSON_AddStringToObject(t->metadata, "version", v->str);
  r = 0;
done:
  preft_tv_free(root);
  free(text);
  return r;
}

static int load_tb2_files(preft_task *t, preft_error *err) {
  char *p = need_file(t->dir, "instruction.md", "the task's instruction", err);
  if (!p) return -1;
  int r = read_text(p, &t->instruction, err);
  if (r == 0 && strspn(t->instruction, " \t\r\n") == strlen(t->instruction))
    r = preft_fail(err, "%s: the instruction is empty", p);
  free(p);
  if (r != 0) return -1;
  t->env_dir = preft_path_join(t->dir, "environment");
  if (!(p = need_file(t->dir, "environment/Dockerfile", "the task's environment", err))) return -1;
  free(p);
  t->tests_dir = preft_path_join(t->dir, "tests");
  if (!(t->test_script =
            need_file(t->dir, "tests/test.sh", "the verifier, which writes /logs/verifier/reward.txt", err)))
    return -1;
  p = preft_path_join(t->dir, "solution/solve.sh");
  if (is_file(p)) {
    t->solution_dir = preft_path_join(t->dir, "solution");
    t->solution_script = preft_xstrdup("solve.sh");
  }
  free(p);
  return 0;
}

/* ---- TB 1.0 ---- */

static int load_tb1(preft_task *t, const char *yaml_path, preft_error *err) {
  char *text = NULL;
  preft_tv *root = NULL;
  int r = -1;
  if (read_text(yaml_path, &text, err) != 0) return -1;
  if (preft_yaml_parse(text, strlen(text), yaml_path, &root, err) != 0) goto done;
  task_fields f = {yaml_path, NULL, err};
  if (root->kind != PREFT_TV_TABLE) {
    preft_fail(err, "%s: expected a mapping of task fields, found %s", yaml_path, a_kind(root->kind));
    goto done;
  }
  if (task_field_str(&f, root, "instruction", &t->instruction) != 0) goto done;
  const preft_tv *desc = preft_tv_get(root, "descriptions");
  if (!t->instruction && desc) {
    /* the older form: descriptions: [{key: base, description: ...}] */
    if (desc->kind != PREFT_TV_ARRAY) {
      task_field_fail(&f, desc, "descriptions", "expected a list of {key, description}");
      goto done;
    }
    for (int k = 0; k < desc->n && !t->instruction; k++) {
      const preft_tv *d = desc->items[k], *key = preft_tv_get(d, "key");
      if (d->kind != PREFT_TV_TABLE) {
        task_field_fail(&f, d, "descriptions", "item %d: expected {key, description}", k + 1);
        goto done;
      }
      if (key && key->kind == PREFT_TV_STRING && !strcmp(key->str, "base") &&
          task_field_str(&f, d, "description", &t->instruction) != 0)
        goto done;
    }
  }
  if (!t->instruction || strspn(t->instruction, " \t\r\n") == strlen(t->instruction)) {
    task_field_fail(&f, NULL, "instruction", "missing or empty (neither instruction nor a base description)");
    goto done;
  }
  t->agent_timeout_s = 360;
  t->verifier_timeout_s = 60;
  if (task_field_num(&f, root, "max_agent_timeout_sec", 0, &t->agent_timeout_s) != 0) goto done;
  if (task_field_num(&f, root, "max_test_timeout_sec", 0, &t->verifier_timeout_s) != 0) goto done;
  t->metadata = cJSON_CreateObject();
  for (int k = 0; k < root->n; k++)
    if (strcmp(root->keys[k], "instruction") && strcmp(root->keys[k], "descriptions"))
      cJSON_AddItemToObject(t->metadata, root->keys[k], preft_tv_to_json(root->items[k], false));
  r = 0;
done:
  preft_tv_free(root);
  free(text);
  return r;
}

static int load_tb1_files(preft_task *t, preft_error *err) {
  t->env_dir = preft_xstrdup(t->dir);
  char *p = need_file(t->dir, "Dockerfile", "the task's environment", err);
  if (!p) return -1;
  free(p);
  if (!(t->test_script = need_file(t->dir, "run-tests.sh", "the script that runs the tests", err))) return -1;
  p = preft_path_join(t->dir, "tests");
  if (is_dir(p))
    t->tests_dir = p;
  else
    free(p);
  p = preft_path_join(t->dir, "solution.sh");
  if (is_file(p)) {
    t->solution_dir = preft_xstrdup(t->dir);
    t->solution_script = preft_xstrdup("solution.sh");
  }
  free(p);
  return 0;
}

int preft_task_load(const char *dir, preft_task **out, preft_error *err) {
  if (!is_dir(dir)) return preft_fail(err, "%s: not a task folder (no such folder)", dir);
  char *toml = preft_path_join(dir, "task.toml"), *yaml = preft_path_join(dir, "task.yaml");
  preft_task *t = task_new(dir);
  int r;
  if (is_file(toml)) {
    t->format = PREFT_TASK_TB2;
    r = load_tb2(t, toml, err);
    if (r == 0) r = load_tb2_files(t, err);
  } else if (is_file(yaml)) {
    t->format = PREFT_TASK_TB1;
    r = load_tb1(t, yaml, err);
    if (r == 0) r = load_tb1_files(t, err);
  } else {
    r = preft_fail(err, "%s: not a task folder (neither task.toml nor task.yaml)", dir);
  }
  free(toml);
  free(yaml);
  if (r != 0) {
    preft_task_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

void preft_task_free(preft_task *t) {
  if (!t) return;
  free(t->name);
  free(t->dir);
  free(t->instruction);
  free_strv(t->verifier_env);
  free(t->docker_image);
  free_strv(t->env);
  free(t->workdir);
  free(t->env_dir);
  free(t->solution_dir);
  free(t->solution_script);
  free(t->tests_dir);
  free(t->test_script);
  cJSON_Delete(t->metadata);
  free(t);
}

static bool is_task_dir(const char *dir) {
  char *a = preft_path_join(dir, "task.toml"), *b = preft_path_join(dir, "task.yaml");
  bool yes = is_file(a) || is_file(b);
  free(a);
  free(b);
  return yes;
}

void preft_task_list_free(preft_task **tasks, int n) {
  for (int k = 0; k < n; k++) preft_task_free(tasks[k]);
  free(tasks);
}

int preft_task_list(const char *root, const char *const *names, int n_names, preft_task ***out, int *n_out,
                    preft_error *err) {
  char **subs = NULL;
  int n_subs = 0;
  char **dirs;
  int n_dirs;
  if (is_task_dir(root)) {
    dirs = preft_xmalloc(sizeof *dirs);
    dirs[0] = preft_xstrdup(root);
    n_dirs = 1;
  } else {
    if (!is_dir(root)) return preft_fail(err, "%s: no such folder of tasks", root);
    if ((n_subs = preft_list_subdirs(root, &subs, err)) < 0) return -1;
    dirs = preft_xcalloc((size_t)n_subs + 1, sizeof *dirs);
    n_dirs = 0;
    for (int k = 0; k < n_subs; k++) {
      char *d = preft_path_join(root, subs[k]);
      if (is_task_dir(d))
        dirs[n_dirs++] = d;
      else
        free(d);
    }
  }
  preft_task **tasks = preft_xcalloc((size_t)n_dirs + 1, sizeof *tasks);
  int n = 0, r = 0;
  bool *used = preft_xcalloc((size_t)n_names + 1, sizeof *used);
  for (int k = 0; k < n_dirs && r == 0; k++) {
    const char *base = strrchr(dirs[k], '/') ? strrchr(dirs[k], '/') + 1 : dirs[k];
    bool want = n_names == 0;
    for (int j = 0; j < n_names; j++)
      if (fnmatch(names[j], base, 0) == 0) want = used[j] = true;
    if (!want) continue;
    r = preft_task_load(dirs[k], &tasks[n], err);
    if (r == 0) n++;
  }
  for (int j = 0; j < n_names && r == 0; j++)
    if (!used[j]) r = preft_fail(err, "%s: no task matches '%s'", root, names[j]);
  if (r == 0 && n == 0) r = preft_fail(err, "%s: no tasks (no folder with task.toml or task.yaml)", root);
  for (int k = 0; k < n_dirs; k++) free(dirs[k]);
  free(dirs);
  for (int k = 0; k < n_subs; k++) free(subs[k]);
  free(subs);
  free(used);
  if (r != 0) {
    preft_task_list_free(tasks, n);
    return -1;
  }
  *out = tasks;
  *n_out = n;
  return 0;
}
