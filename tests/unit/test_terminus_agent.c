/* test_terminus_agent.c - the terminus agent end to end: a scripted chat
 * endpoint (a small libmicrohttpd server in this test that answers each
 * /v1/chat/completions request with the next of a fixed list of replies)
 * drives the agent in a real sandbox over the host's root. Checked: the
 * keystrokes run inside the sandbox (a file appears there, not on the
 * host), the pane's output reaches the model, a malformed reply's errors
 * are fed back and the agent recovers, completion needs two task_complete
 * replies in a row, tokens and episodes are counted, the logs and the
 * asciicast recording are written, an endpoint's 400 is surfaced (a 503
 * retried), the
 * timeout and the episode limit stop the run, and a sandbox without tmux is
 * a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "server/client.h"
#include "tasks/agent.h"
#include "tasks/sandbox.h"
#include "testutil.h"

/* ---- the scripted endpoint ------------------------------------------------------ */

#define MAX_REQUESTS 64

typedef struct script {
  const char *const *replies; /* the assistant's texts, in order; the last repeats */
  int n_replies;
  int status;     /* 200, or an error status answered to every request */
  int fail_first; /* the first this many requests are answered 503 */
  pthread_mutex_t mu;
  char *requests[MAX_REQUESTS]; /* bodies received */
  int n_requests;
} script;

typedef struct upload {
  char *p;
  size_t n;
} upload;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *data, size_t *data_size, void **con_cls) {
  script *sc = cls;
  upload *u = *con_cls;
  if (!u) {
    *con_cls = calloc(1, sizeof(upload));
    return MHD_YES;
  }
  if (*data_size) {
    u->p = realloc(u->p, u->n + *data_size + 1);
    memcpy(u->p + u->n, data, *data_size);
    u->n += *data_size;
    u->p[u->n] = 0;
    *data_size = 0;
    return MHD_YES;
  }
  if (!strcmp(method, "GET") && !strcmp(url, "/v1/models")) {
    static const char models[] =
        "{\"object\":\"list\",\"data\":[{\"id\":\"other\",\"max_model_len\":99},"
        "{\"id\":\"scripted\",\"max_model_len\":6000}]}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(models), (void *)models, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  pthread_mutex_lock(&sc->mu);
  int i = sc->n_requests;
  if (i < MAX_REQUESTS) {
    sc->requests[i] = u->p ? u->p : strdup("");
    u->p = NULL;
    sc->n_requests++;
  }
  pthread_mutex_unlock(&sc->mu);
  char *body;
  int status = i < sc->fail_first ? 503 : sc->status;
  if (strcmp(url, "/v1/chat/completions")) {
    status = 404;
    body = strdup("{\"error\":{\"message\":\"no such route\"}}");
  } else if (status == 503) {
    body = strdup("{\"error\":{\"message\":\"overloaded\"}}");
  } else if (status != 200) {
    body = strdup(
        "{\"error\":{\"message\":\"this model's tokenizer has no chat template\",\"type\":"
        "\"invalid_request_error\"}}");
  } else {
    int k = i - sc->fail_first;
    const char *text = sc->replies[k < sc->n_replies ? k : sc->n_replies - 1];
    cJSON *r = cJSON_CreateObject();
    cJSON *choices = cJSON_AddArrayToObject(r, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON *msg = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", text);
    cJSON_AddStringToObject(c0, "finish_reason", "stop");
    cJSON_AddItemToArray(choices, c0);
    cJSON *usage = cJSON_AddObjectToObject(r, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", 100 + i);
    cJSON_AddNumberToObject(usage, "completion_tokens", 10);
    body = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(resp, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  upload *u = *con_cls;
  if (u) free(u->p);
  free(u);
  *con_cls = NULL;
}

typedef struct endpoint {
  struct MHD_Daemon *d;
  char url[64];
} endpoint;

static void endpoint_start(endpoint *e, script *sc) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  pthread_mutex_init(&sc->mu, NULL);
  e->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, sc,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_NOTIFY_COMPLETED,
                          on_completed, NULL, MHD_OPTION_END);
  assert_non_null(e->d);
  unsigned port = MHD_get_daemon_info(e->d, MHD_DAEMON_INFO_BIND_PORT)->port;
  snprintf(e->url, sizeof e->url, "http://127.0.0.1:%u/v1", port);
}

static void endpoint_stop(endpoint *e, script *sc) {
  MHD_stop_daemon(e->d);
  for (int i = 0; i < sc->n_requests; i++) free(sc->requests[i]);
  pthread_mutex_destroy(&sc->mu);
}

/* The content of the last message of request i (heap). */
static char *last_message(script *sc, int i) {
  assert_true(i < sc->n_requests);
  cJSON *j = cJSON_Parse(sc->requests[i]);
  assert_non_null(j);
  const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
  int n = cJSON_GetArraySize(msgs);
  assert_true(n >= 2);
  const cJSON *last = cJSON_GetArrayItem(msgs, n - 1);
  assert_string_equal(cJSON_GetObjectItem(last, "role")->valuestring, "user");
  char *s = strdup(cJSON_GetObjectItem(last, "content")->valuestring);
  cJSON_Delete(j);
  return s;
}

/* ---- the sandbox --------------------------------------------------------------- */

typedef struct trial {
  char *dir, *log_dir;
  preft_sandbox *sb;
} trial;

/* env: the sandbox's environment (NULL: its default). */
static void trial_start_env(trial *t, const char *const *env) {
  t->dir = test_tmpdir();
  t->log_dir = preft_path_join(t->dir, "agent");
  preft_sandbox_opts o = {.layer_dir = "/", .trial_dir = t->dir, .workdir = "/root", .env = env};
  preft_error err = {{0}};
  if (preft_sandbox_start(&o, &t->sb, &err) != 0) fail_msg("sandbox: %s", err.msg);
}

static void trial_start(trial *t) { trial_start_env(t, NULL); }

static void trial_stop(trial *t) {
  preft_sandbox_stop(t->sb);
  free(t->log_dir);
  free(t->dir);
}

/* Runs `sh -c cmd` in the sandbox; returns its exit code. */
static int sandbox_sh(trial *t, const char *cmd) {
  const char *argv[] = {"sh", "-c", cmd, NULL};
  preft_exec_result r;
  preft_error err = {{0}};
  if (preft_sandbox_exec(t->sb, argv, 10, NULL, &r, &err) != 0) fail_msg("exec: %s", err.msg);
  return r.exit_code;
}

static char *read_log(trial *t, const char *name) {
  char *p = preft_path_join(t->log_dir, name);
  size_t n;
  char *text = test_read_all(p, &n);
  if (!text) fail_msg("%s is missing", p);
  text = realloc(text, n + 1);
  text[n] = 0;
  free(p);
  return text;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* ---- the tests ------------------------------------------------------------------- */

#define HOST_FILE "/tmp/preft-terminus-test-made-in-sandbox.txt"

static void agent_types_commands_recovers_and_confirms(void **state) {
  /* trailing semicolons (tmux would take them as separators) must arrive too */
  char make[1024];
  snprintf(make, sizeof make,
           "Let me create it.\n```json\n{\"analysis\": \"empty shell\", \"plan\": \"write the file\", "
           "\"commands\": [{\"keystrokes\": \"echo made-by-agent > %s; cat %s;\\n\", \"duration\": 0.3}, "
           "{\"keystrokes\": \"find /etc/hostname -exec echo found-{} \\\\;\\n\", \"duration\": 0.3}], "
           "\"task_complete\": false}\n```",
           HOST_FILE, HOST_FILE);
  const char *replies[] = {
      "I will now run ls.", /* no JSON: fed back, nothing typed */
      make,
      "{\"analysis\": \"file written\", \"plan\": \"done\", \"commands\": [], \"task_complete\": true}",
      "{\"analysis\": \"sure\", \"plan\": \"done\", \"commands\": [], \"task_complete\": true}",
  };
  script sc = {.replies = replies, .n_replies = 4, .status = 200};
  endpoint e;
  endpoint_start(&e, &sc);
  trial t;
  trial_start(&t);
  unlink(HOST_FILE);

  preft_terminus_opts o = {.url = e.url, .model = "scripted", .log_dir = t.log_dir, .temperature = 0.5};
  preft_agent_result res;
  preft_error err = {{0}};
  int rc = preft_terminus_run(t.sb, "Write made-by-agent into " HOST_FILE ".", &o, 60, &res, &err);
  if (rc != 0) fail_msg("terminus: %s", err.msg);
  if (res.error[0]) fail_msg("stopped early: %s", res.error);
  assert_false(res.timed_out);
  assert_int_equal(res.episodes, 4);
  assert_int_equal(sc.n_requests, 4);
  assert_int_equal(res.prompt_tokens, 100 + 101 + 102 + 103);
  assert_int_equal(res.completion_tokens, 40);
  assert_true(res.seconds > 0.3 && res.seconds < 30);

  /* the file is in the sandbox, with what was typed, and not on the host */
  assert_int_equal(sandbox_sh(&t, "grep -qx made-by-agent " HOST_FILE), 0);
  assert_false(preft_file_exists(HOST_FILE));

  /* what the model read: the task and the screen first, then the parse
   * error, then the command's output, then the confirmation question */
  char *m = last_message(&sc, 0);
  assert_non_null(strstr(m, "Write made-by-agent into"));
  assert_non_null(strstr(m, "Current terminal state"));
  free(m);
  m = last_message(&sc, 1);
  assert_non_null(strstr(m, "could not be used: no JSON object found"));
  free(m);
  m = last_message(&sc, 2);
  assert_non_null(strstr(m, "New terminal output"));
  assert_non_null(strstr(m, "\nmade-by-agent")); /* cat's output, read back from the pane */
  assert_non_null(strstr(m, "\nfound-/etc/hostname"));
  free(m);
  m = last_message(&sc, 3);
  assert_non_null(strstr(m, "Are you sure the task is complete"));
  free(m);
  /* every request carries the system prompt and the model's name */
  cJSON *j = cJSON_Parse(sc.requests[3]);
  assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "scripted");
  const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
  assert_int_equal(cJSON_GetArraySize(msgs), 8); /* system, task, 3 x (assistant, user) */
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "system");
  cJSON_Delete(j);

  /* logs: the conversation (system, task, 4 replies, 3 answers), the agent
   * log, and a recording with the keys typed and the pane's output */
  char *conv = read_log(&t, "conversation.jsonl");
  assert_int_equal(count_lines(conv), 9);
  free(conv);
  char *log = read_log(&t, "agent.log");
  assert_non_null(strstr(log, "task complete (confirmed)"));
  /* the context came from the endpoint's model list, for the model asked for */
  assert_non_null(strstr(log, "context 6000 tokens (from the endpoint's max_model_len)"));
  free(log);
  char *cast = read_log(&t, "recording.cast");
  assert_non_null(strstr(cast, "\"version\": 2"));
  assert_non_null(strstr(cast, "\"i\", \"echo made-by-agent"));
  assert_non_null(strstr(cast, "\"o\", "));
  assert_non_null(strstr(cast, "made-by-agent\\r\\n"));
  free(cast);

  trial_stop(&t);
  endpoint_stop(&e, &sc);
}

static void a_false_after_the_first_complete_keeps_going(void **state) {
  const char *replies[] = {
      "{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": true}",
      "{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": false}",
      "{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": true}",
      "{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": true}",
  };
  script sc = {.replies = replies, .n_replies = 4, .status = 200};
  endpoint e;
  endpoint_start(&e, &sc);
  trial t;
  trial_start(&t);
  preft_terminus_opts o = {.url = e.url, .model = "m", .log_dir = t.log_dir};
  preft_agent_result res;
  preft_error err = {{0}};
  assert_int_equal(preft_terminus_run(t.sb, "Nothing.", &o, 60, &res, &err), 0);
  assert_string_equal(res.error, "");
  assert_int_equal(res.episodes, 4); /* not 2: the false reset the confirmation */
  trial_stop(&t);
  endpoint_stop(&e, &sc);
}

static void timeout_and_episode_limit_stop_the_run(void **state) {
  const char *replies[] = {
      "{\"analysis\": \"\", \"plan\": \"wait\", \"commands\": [{\"keystrokes\": \"sleep 30\\n\", "
      "\"duration\": "
      "30}], \"task_complete\": false}",
  };
  script sc = {.replies = replies, .n_replies = 1, .status = 200};
  endpoint e;
  endpoint_start(&e, &sc);
  trial t;
  trial_start(&t);
  preft_terminus_opts o = {.url = e.url, .model = "m", .log_dir = t.log_dir};
  preft_agent_result res;
  preft_error err = {{0}};
  /* 5 s in Release, 12 s under a sanitizer: starting the sandbox's tmux
   * alone can take more than 2 s under a sanitizer or a loaded parallel
   * test run (a 2 s limit then ended the run before its first episode) */
  double limit = 5.0 * test_time_scale();
  if (limit > 12.0) limit = 12.0;
  assert_int_equal(preft_terminus_run(t.sb, "Wait.", &o, limit, &res, &err), 0);
  assert_true(res.timed_out);
  assert_non_null(strstr(res.error, "timed out"));
  assert_int_equal(res.episodes, 1);
  /* the command sleeps 30 s: any run that ends before 28 s was stopped by the
   * timeout (a tighter bound failed under a loaded parallel test run) */
  assert_true(res.seconds >= limit && res.seconds < 28.0);

  /* the episode limit: replies that wait 0 s, three episodes */
  const char *quick[] = {"{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": false}"};
  sc.replies = quick;
  o.max_episodes = 3;
  assert_int_equal(preft_terminus_run(t.sb, "Loop.", &o, 60, &res, &err), 0);
  assert_false(res.timed_out);
  assert_int_equal(res.episodes, 3);
  assert_non_null(strstr(res.error, "after 3 episodes"));
  trial_stop(&t);
  endpoint_stop(&e, &sc);
}

static void endpoint_errors_are_surfaced(void **state) {
  const char *replies[] = {"unused"};
  script sc = {.replies = replies, .n_replies = 1, .status = 400};
  endpoint e;
  endpoint_start(&e, &sc);
  trial t;
  trial_start(&t);
  preft_terminus_opts o = {.url = e.url, .model = "m", .log_dir = t.log_dir};
  preft_agent_result res;
  preft_error err = {{0}};
  assert_int_equal(preft_terminus_run(t.sb, "Anything.", &o, 60, &res, &err), 0);
  assert_int_equal(sc.n_requests, 1); /* a 400 is not retried */
  assert_int_equal(res.episodes, 0);
  assert_non_null(
      strstr(res.error, "chat endpoint answered 400: this model's tokenizer has no chat template"));

  /* a 503 is retried (twice at most, a second apart) */
  trial_stop(&t);
  endpoint_stop(&e, &sc);
  const char *done[] = {"{\"analysis\": \"\", \"plan\": \"\", \"commands\": [], \"task_complete\": true}"};
  script busy = {.replies = done, .n_replies = 1, .status = 200, .fail_first = 2};
  endpoint_start(&e, &busy);
  trial_start(&t);
  o.url = e.url;
  o.log_dir = t.log_dir;
  if (preft_terminus_run(t.sb, "Anything.", &o, 60, &res, &err) != 0) fail_msg("terminus: %s", err.msg);
  assert_string_equal(res.error, "");
  assert_int_equal(res.episodes, 2);
  assert_int_equal(busy.n_requests, 4); /* 503, 503, then the two replies */
  endpoint_stop(&e, &busy);
  busy.fail_first = 3; /* one more than the retries */
  busy.n_requests = 0;
  endpoint_start(&e, &busy);
  o.url = e.url;
  assert_int_equal(preft_terminus_run(t.sb, "Anything.", &o, 60, &res, &err), 0);
  assert_int_equal(busy.n_requests, 3);
  assert_non_null(strstr(res.error, "chat endpoint answered 503: overloaded"));
  endpoint_stop(&e, &busy);
  sc.n_requests = 0;
  endpoint_start(&e, &sc); /* for the cleanup below */

  /* nothing listening: a transport error naming the URL (the refused
   * connection ends the run at once; the limit only has to be longer than
   * the sandbox's tmux start, which took over 3 s under ASan) */
  preft_terminus_opts gone = {.url = "http://127.0.0.1:1/v1", .model = "m", .log_dir = t.log_dir};
  assert_int_equal(preft_terminus_run(t.sb, "Anything.", &gone, 30, &res, &err), 0);
  assert_non_null(strstr(res.error, "127.0.0.1:1/v1/chat/completions"));
  trial_stop(&t);
  endpoint_stop(&e, &sc);
}

static void missing_tmux_is_a_clear_error(void **state) {
  const char *replies[] = {"unused"};
  script sc = {.replies = replies, .n_replies = 1, .status = 200};
  endpoint e;
  endpoint_start(&e, &sc);
  trial t;
  const char *env[] = {"PATH=/nonexistent", "HOME=/root", NULL}; /* no tmux to be found */
  trial_start_env(&t, env);
  preft_terminus_opts o = {.url = e.url, .model = "m", .log_dir = t.log_dir};
  preft_agent_result res;
  preft_error err = {{0}};
  assert_int_equal(preft_terminus_run(t.sb, "Anything.", &o, 60, &res, &err), -1);
  if (!strstr(err.msg, "tmux is not available inside the sandbox")) fail_msg("error: %s", err.msg);
  assert_int_equal(sc.n_requests, 0);
  trial_stop(&t);
  endpoint_stop(&e, &sc);
}

int main(void) {
  preft_client_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(agent_types_commands_recovers_and_confirms),
      cmocka_unit_test(a_false_after_the_first_complete_keeps_going),
      cmocka_unit_test(timeout_and_episode_limit_stop_the_run),
      cmocka_unit_test(endpoint_errors_are_surfaced),
      cmocka_unit_test(missing_tmux_is_a_clear_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
