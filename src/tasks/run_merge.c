/* run_merge.c - one job result from the shards of a sharded job (run.h):
 * JOB/result-shard-<I>-of-<N>.json for I = 1..N in, JOB/result.json out,
 * the file a single run of the whole job writes: the trials in the job's
 * order, mean reward, errors and pass@k recomputed over all of them, the
 * earliest start, the latest finish, "shards": N. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "io/json_util.h"
#include "tasks/run.h"

/* What the merge keeps of one finished trial. */
typedef struct {
  int slot;
  preft_run_trial t;
  double overhead, total;
} merged_trial;

typedef struct {
  int count;      /* N, from the first shard read */
  cJSON **shards; /* [N] parsed files, by index (1-based index - 1) */
  cJSON *names;   /* the job's task names (first shard's) */
  int n_attempts;
  merged_trial *trials;
  int n, cap;
} merge;

static int cmp_slot(const void *a, const void *b) {
  const merged_trial *x = a, *y = b;
  return (x->slot > y->slot) - (x->slot < y->slot);
}

static int task_index(const cJSON *names, const char *name) {
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, names) {
    if (cJSON_IsString(it) && !strcmp(it->valuestring, name)) return i;
    i++;
  }
  return -1;
}

/* Reads one shard file into m (its trials appended). */
static int read_shard(merge *m, const char *path, int index, int count, preft_error *err) {
  cJSON *j;
  if (preft_json_load(path, &j, err) != 0) return -1;
  const cJSON *sh = cJSON_GetObjectItem(j, "shard"), *names = cJSON_GetObjectItem(j, "task_names"),
              *trials = cJSON_GetObjectItem(j, "trials"), *slots = cJSON_GetObjectItem(j, "slots");
  long att, idx, cnt;
  if (!cJSON_IsObject(sh) || preft_json_int(sh, path, "index", true, 1, 1 << 20, 0, &idx, err) != 0 ||
      preft_json_int(sh, path, "count", true, 2, 1 << 20, 0, &cnt, err) != 0 ||
      preft_json_int(j, path, "n_attempts", true, 1, 1 << 20, 0, &att, err) != 0)
    goto bad;
  if (idx != index || cnt != count) {
    preft_fail(err, "%s: says it is shard %ld of %ld", path, idx, cnt);
    goto bad;
  }
  if (!cJSON_IsArray(names) || !cJSON_IsArray(trials) || !cJSON_IsArray(slots) ||
      cJSON_GetArraySize(trials) != cJSON_GetArraySize(slots)) {
    preft_fail(err, "%s: not a shard result (task_names, trials and slots of one length expected)", path);
    goto bad;
  }
  if (!m->names) {
    m->names = cJSON_Duplicate(names, true);
    m->n_attempts = (int)att;
  } else if (!cJSON_Compare(m->names, names, true) || m->n_attempts != att) {
    preft_fail(err, "%s: another job's shard (other tasks or attempts than shard 1's)", path);
    goto bad;
  }
  int total = cJSON_GetArraySize(names) * m->n_attempts;
  for (int k = 0; k < cJSON_GetArraySize(trials); k++) {
    const cJSON *t = cJSON_GetArrayItem(trials, k), *s = cJSON_GetArrayItem(slots, k);
    const char *task = NULL, *error = NULL;
    long slot, attempt;
    double reward, overhead, tot;
    if (preft_json_str(t, path, "task", true, &task, err) != 0 ||
        preft_json_int(t, path, "attempt", true, 1, m->n_attempts, 0, &attempt, err) != 0 ||
        preft_json_num(t, path, "reward", true, 0, &reward, err) != 0 ||
        preft_json_str(t, path, "error", false, &error, err) != 0 ||
        preft_json_int(s, path, "slot", true, 0, total - 1, 0, &slot, err) != 0 ||
        preft_json_num(s, path, "overhead", false, 0, &overhead, err) != 0 ||
        preft_json_num(s, path, "total", false, 0, &tot, err) != 0)
      goto bad;
    int ti = task_index(names, task);
    if (ti < 0 || slot != (long)ti * m->n_attempts + attempt - 1 || slot % count != index - 1) {
      preft_fail(err, "%s: trial %s #%ld does not belong at slot %ld of shard %d", path, task, attempt, slot,
                 index);
      goto bad;
    }
    if (m->n == m->cap) {
      m->cap = m->cap ? 2 * m->cap : 64;
      m->trials = preft_xrealloc(m->trials, sizeof *m->trials * (size_t)m->cap);
    }
    m->trials[m->n++] = (merged_trial){
        .slot = (int)slot,
        .t = {.task = ti, .attempt = (int)attempt, .reward = reward, .error = error ? error : ""},
        .overhead = overhead,
        .total = tot};
  }
  m->shards[index - 1] = j;
  return 0;
bad:
  cJSON_Delete(j);
  return -1;
}

/* The shard files of dir: N and each index seen once, 1..N. */
static int find_shards(merge *m, const char *dir, preft_error *err) {
  DIR *d = opendir(dir);
  if (!d) return preft_fail(err, "%s: cannot open the job folder", dir);
  struct dirent *e;
  int rc = 0;
  bool *seen = NULL;
  while ((e = readdir(d)) && rc == 0) {
    int i, n, used = 0;
    if (sscanf(e->d_name, "result-shard-%d-of-%d.json%n", &i, &n, &used) != 2 || e->d_name[used] != 0)
      continue;
    if (n < 2 || i < 1 || i > n) {
      rc = preft_fail(err, "%s/%s: not a shard of a sharded job", dir, e->d_name);
    } else if (m->count && n != m->count) {
      rc = preft_fail(err, "%s: shards of %d and of %d shards in one job folder", dir, m->count, n);
    } else {
      if (!m->count) {
        m->count = n;
        m->shards = preft_xcalloc((size_t)n, sizeof *m->shards);
        seen = preft_xcalloc((size_t)n, sizeof *seen);
      }
      seen[i - 1] = true;
    }
  }
  closedir(d);
  if (rc == 0 && !m->count) rc = preft_fail(err, "%s: no result-shard-*-of-*.json (not a sharded job?)", dir);
  for (int i = 0; rc == 0 && i < m->count; i++)
    if (!seen[i])
      rc = preft_fail(err, "%s: shard %d of %d is missing (result-shard-%d-of-%d.json)", dir, i + 1, m->count,
                      i + 1, m->count);
  free(seen);
  return rc;
}

static const char *str_of(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The job-wide fields: the agent, interrupted if any shard was, the first
 * start, the last finish, the longest shard's seconds, the trials' overhead. */
static void add_job_fields(const merge *m, const char *dir, cJSON *res) {
  const char *agent = str_of(m->shards[0], "agent"), *start = NULL, *finish = NULL;
  bool interrupted = false;
  double seconds = 0, ov_sum = 0, ov_max = 0;
  int ov_n = 0;
  for (int i = 0; i < m->count; i++) {
    const cJSON *s = m->shards[i];
    const char *a = str_of(s, "started_at"), *b = str_of(s, "finished_at");
    if (a && (!start || strcmp(a, start) < 0)) start = a; /* ISO 8601 in UTC: text order is time order */
    if (b && (!finish || strcmp(b, finish) > 0)) finish = b;
    interrupted |= cJSON_IsTrue(cJSON_GetObjectItem(s, "interrupted"));
    const cJSON *sec = cJSON_GetObjectItem(s, "seconds");
    if (cJSON_IsNumber(sec) && sec->valuedouble > seconds) seconds = sec->valuedouble;
  }
  for (int k = 0; k < m->n; k++)
    if (m->trials[k].total > 0) {
      ov_sum += m->trials[k].overhead;
      if (m->trials[k].overhead > ov_max) ov_max = m->trials[k].overhead;
      ov_n++;
    }
  cJSON_AddStringToObject(res, "job", dir);
  cJSON_AddStringToObject(res, "agent", agent ? agent : "");
  cJSON_AddBoolToObject(res, "interrupted", interrupted);
  cJSON_AddStringToObject(res, "started_at", start ? start : "");
  cJSON_AddStringToObject(res, "finished_at", finish ? finish : "");
  cJSON_AddNumberToObject(res, "seconds", seconds);
  cJSON *ov = cJSON_AddObjectToObject(res, "overhead_seconds");
  cJSON_AddNumberToObject(ov, "mean", ov_n ? ov_sum / ov_n : 0);
  cJSON_AddNumberToObject(ov, "max", ov_max);
  cJSON_AddNumberToObject(res, "shards", m->count);
}

int preft_run_merge(const char *job_dir, cJSON **summary, preft_error *err) {
  merge m = {0};
  int rc = find_shards(&m, job_dir, err);
  for (int i = 0; rc == 0 && i < m.count; i++) {
    char name[64];
    snprintf(name, sizeof name, "result-shard-%d-of-%d.json", i + 1, m.count);
    char *path = preft_path_join(job_dir, name);
    rc = read_shard(&m, path, i + 1, m.count, err);
    free(path);
  }
  if (rc == 0) {
    qsort(m.trials, (size_t)m.n, sizeof *m.trials, cmp_slot);
    for (int k = 1; k < m.n && rc == 0; k++)
      if (m.trials[k].slot == m.trials[k - 1].slot)
        rc = preft_fail(err, "%s: two shards hold trial slot %d", job_dir, m.trials[k].slot);
  }
  if (rc == 0) {
    int n_tasks = cJSON_GetArraySize(m.names);
    const char **names = preft_xcalloc((size_t)n_tasks + 1, sizeof *names);
    for (int k = 0; k < n_tasks; k++) names[k] = cJSON_GetArrayItem(m.names, k)->valuestring;
    preft_run_trial *t = preft_xcalloc((size_t)m.n + 1, sizeof *t);
    for (int k = 0; k < m.n; k++) t[k] = m.trials[k].t;
    cJSON *s = preft_run_summary(t, m.n, names, n_tasks, m.n_attempts);
    free(t);
    free(names);
    cJSON *res = cJSON_Duplicate(s, true);
    add_job_fields(&m, job_dir, res);
    char *path = preft_path_join(job_dir, "result.json");
    rc = preft_json_save(path, res, err);
    free(path);
    cJSON_Delete(res);
    if (rc == 0)
      *summary = s;
    else
      cJSON_Delete(s);
  }
  for (int i = 0; i < m.count; i++) cJSON_Delete(m.shards[i]);
  free(m.shards);
  cJSON_Delete(m.names);
  free(m.trials);
  return rc;
}
