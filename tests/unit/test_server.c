/* test_server.c - the HTTP layer's pieces alone and together: JSON strings
 * are always valid JSON whatever bytes they hold; request bodies parse into
 * the fields they say, and every bad field is refused with an OpenAI error
 * naming it; and a server started in-process, driven by the project's own
 * client, answers greedy completions (whole and streamed) with the tokens
 * single-sequence generation produces, counts what it did in /metrics, and
 * drains idle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "model/llama.h"
#include "server/client.h"
#include "server/http_server.h"
#include "server/request_parse.h"
#include "server/sse.h"
#include "text/tokenizer.h"
#include "testutil.h"

/* ---- JSON strings ------------------------------------------------------------------ */

static char *json_of(const char *s, size_t n) {
  srv_buf b = {0};
  preft_srv_buf_json_str(&b, s, n);
  return b.p;
}

static void json_strings_round_trip_through_a_json_parser(void **st) {
  const char text[] =
      "plain \"quoted\" back\\slash\nnew\ttab\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  char *j = json_of(text, sizeof text - 1);
  cJSON *v = cJSON_Parse(j);
  assert_non_null(v);
  assert_true(cJSON_IsString(v));
  assert_string_equal(v->valuestring, text);
  cJSON_Delete(v);
  free(j);
}

static void invalid_utf8_becomes_replacement_characters(void **st) {
  /* a lone continuation byte, a truncated sequence, an overlong '/', a surrogate */
  const char bad[] =
      "a\x80"
      "b\xe2\x82"
      "c\xc0\xaf"
      "d\xed\xa0\x80"
      "e";
  char *j = json_of(bad, sizeof bad - 1);
  cJSON *v = cJSON_Parse(j);
  assert_non_null(v);
  const char *fffd = "\xef\xbf\xbd";
  char want[64];
  snprintf(want, sizeof want, "a%sb%s%sc%s%sd%s%s%se", fffd, fffd, fffd, fffd, fffd, fffd, fffd, fffd);
  assert_string_equal(v->valuestring, want);
  cJSON_Delete(v);
  free(j);
  assert_int_equal(preft_srv_utf8_chars("caf\xc3\xa9", 5), 4);
  assert_int_equal(preft_srv_utf8_chars("\x80\x80", 2), 2);
}

static void non_finite_numbers_stay_valid_json(void **st) {
  srv_buf b = {0};
  preft_srv_buf_puts(&b, "[");
  preft_srv_buf_json_num(&b, -1.5);
  preft_srv_buf_puts(&b, ",");
  preft_srv_buf_json_num(&b, -1.0 / 0.0);
  preft_srv_buf_puts(&b, "]");
  cJSON *v = cJSON_Parse(b.p);
  assert_non_null(v);
  assert_true(cJSON_GetArrayItem(v, 0)->valuedouble == -1.5);
  assert_true(cJSON_GetArrayItem(v, 1)->valuedouble == -9999.0);
  cJSON_Delete(v);
  preft_srv_buf_free(&b);
}

/* ---- request parsing --------------------------------------------------------------- */

static int parse(const char *body, srv_kind kind, srv_gen_request *r, srv_api_error *e) {
  return preft_srv_parse_gen_request(body, strlen(body), kind, r, e);
}

static void completion_fields_parse_into_the_request(void **st) {
  srv_gen_request r;
  srv_api_error e;
  const char *body =
      "{\"model\":\"ad1\",\"prompt\":[[1,2],[7]],\"n\":2,\"max_tokens\":7,\"temperature\":0.5,\"top_p\":"
      "0.9,"
      "\"top_k\":-1,\"min_p\":0.1,\"seed\":-3,\"stop\":[\"a\",\"bc\"],\"stop_token_ids\":[5],\"logprobs\":3,"
      "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"adapter_mode\":\"prefill\","
      "\"ignore_eos\":true,\"presence_penalty\":0,\"user\":\"u\",\"extra_unknown\":{\"x\":1}}";
  assert_int_equal(parse(body, SRV_COMPLETION, &r, &e), 0);
  assert_string_equal(r.model, "ad1");
  assert_int_equal(r.n_prompts, 2);
  assert_int_equal(r.prompts[0].n_ids, 2);
  assert_int_equal(r.prompts[0].ids[1], 2);
  assert_int_equal(r.prompts[1].ids[0], 7);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.max_tokens, 7);
  assert_true(r.has_temperature && r.temperature == 0.5);
  assert_true(r.has_top_k && r.top_k == 0); /* -1 means off, as in vLLM */
  assert_true(r.has_seed && (int64_t)r.seed == -3);
  assert_int_equal(r.n_stop, 2);
  assert_string_equal(r.stop[1], "bc");
  assert_int_equal(r.n_stop_token_ids, 1);
  assert_int_equal(r.logprobs, 3);
  assert_true(r.stream && r.include_usage && r.ignore_eos);
  assert_int_equal(r.adapter_mode, 1);
  preft_srv_gen_request_free(&r);

  assert_int_equal(parse("{\"prompt\":[\"a\",\"text\"]}", SRV_COMPLETION, &r, &e), 0);
  assert_int_equal(r.n_prompts, 2);
  assert_string_equal(r.prompts[1].text, "text");
  preft_srv_gen_request_free(&r);

  assert_int_equal(parse("{\"prompt\":\"x\"}", SRV_COMPLETION, &r, &e), 0);
  assert_null(r.model);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.max_tokens, -1);
  assert_int_equal(r.logprobs, -1);
  assert_int_equal(r.adapter_mode, -1);
  assert_false(r.has_temperature);
  assert_true(r.skip_special_tokens);
  preft_srv_gen_request_free(&r);
}

static void chat_messages_are_normalised_for_the_template(void **st) {
  srv_gen_request r;
  srv_api_error e;
  const char *body =
      "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
      "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"user\",\"content\":\"hi\",\"name\":\"n\"}],"
      "\"logprobs\":true,\"top_logprobs\":2,\"max_completion_tokens\":5,"
      "\"chat_template_kwargs\":{\"enable_thinking\":false}}";
  assert_int_equal(parse(body, SRV_CHAT, &r, &e), 0);
  cJSON *j = cJSON_Parse(r.chat_json);
  assert_non_null(j);
  cJSON *msgs = cJSON_GetObjectItem(j, "messages");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring, "a\nb");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "name")->valuestring, "n");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "enable_thinking")));
  cJSON_Delete(j);
  assert_int_equal(r.logprobs, 2);
  assert_int_equal(r.max_tokens, 5);
  preft_srv_gen_request_free(&r);
  /* every OpenAI role, a well-formed tool and tool_choice "auto" are accepted */
  body =
      "{\"messages\":[{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"user\",\"content\":\"u\"},"
      "{\"role\":\"assistant\",\"content\":null},{\"role\":\"tool\",\"content\":\"t\"}],\"tools\":[{"
      "\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],\"tool_choice\":\"auto\"}";
  assert_int_equal(parse(body, SRV_CHAT, &r, &e), 0);
  assert_true(r.add_generation_prompt);
  preft_srv_gen_request_free(&r);
}

typedef struct {
  srv_kind kind;
  const char *body, *param; /* param "" = none */
  int status;
} bad_case;

static void every_bad_field_is_refused_by_name(void **st) {
  static const bad_case cases[] = {
      {SRV_COMPLETION, "", "", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],", "", 400},
      {SRV_COMPLETION, "{\"prompt\":[1]} x", "", 400},
      {SRV_COMPLETION, "[1]", "", 400},
      {SRV_COMPLETION, "\"str\"", "", 400},
      {SRV_COMPLETION, "{}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":5}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[1,2.5]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[1,-1]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[[1],[]]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[[1,2],\"x\"]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[\"x\",[1,2]]}", "prompt", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"model\":3}", "model", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"n\":0}", "n", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"n\":1e300}", "n", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"max_tokens\":-1}", "max_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"max_tokens\":1e20}", "max_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"max_tokens\":true}", "max_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"temperature\":-0.1}", "temperature", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"temperature\":\"hot\"}", "temperature", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"top_p\":1.5}", "top_p", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"top_k\":-2}", "top_k", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"min_p\":2}", "min_p", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"seed\":0.5}", "seed", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"stream\":1}", "stream", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"stream_options\":{\"include_usage\":1}}",
       "stream_options.include_usage", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"stop\":[\"\"]}", "stop", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"stop\":[\"a\",1]}", "stop", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"stop_token_ids\":[\"a\"]}", "stop_token_ids", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"logprobs\":21}", "logprobs", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"logprobs\":true}", "logprobs", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"adapter_mode\":\"both\"}", "adapter_mode", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"adapter_mode\":1}", "adapter_mode", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"frequency_penalty\":2.5}", "frequency_penalty", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"presence_penalty\":-3}", "presence_penalty", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"repetition_penalty\":0}", "repetition_penalty", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"logit_bias\":{\"5\":101}}", "logit_bias", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"logit_bias\":{\"x\":1}}", "logit_bias", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"logit_bias\":{\"5\":1,\"05\":2}}", "logit_bias", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"min_tokens\":-1}", "min_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"max_tokens\":2,\"min_tokens\":3}", "min_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"echo\":\"yes\"}", "echo", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"max_tokens\":0}", "max_tokens", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"prompt_logprobs\":21}", "prompt_logprobs", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"best_of\":3}", "best_of", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"suffix\":\"x\"}", "suffix", 400},
      {SRV_COMPLETION, "{\"prompt\":[1],\"ignore_eos\":\"yes\"}", "ignore_eos", 400},
      {SRV_CHAT, "{}", "messages", 400},
      {SRV_CHAT, "{\"messages\":[]}", "messages", 400},
      {SRV_CHAT, "{\"messages\":[\"hi\"]}", "messages[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", "messages[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs",
       400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "tools", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[1]}", "tools[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\"}]}",
       "tools[0]", 400},
      {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}",
       "tool_choice", 400},
      {SRV_CHAT,
       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":{\"type\":\"function\","
       "\"function\":{\"name\":\"f\"}}}",
       "tool_choice", 400},
      {SRV_CHAT,
       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"xml\"}"
       "}",
       "response_format.type", 400},
      {SRV_COMPLETION,
       "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\","
       "\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":3}}}}}}",
       "response_format.json_schema.schema", 400},
      {SRV_COMPLETION, "{\"prompt\":\"x\",\"guided_regex\":\"(ab\"}", "guided_regex", 400},
      {SRV_COMPLETION, "{\"prompt\":\"x\",\"guided_choice\":[]}", "guided_choice", 400},
      {SRV_COMPLETION, "{\"prompt\":\"x\",\"grammar\":\"root ::= x\"}", "grammar", 400},
      {SRV_COMPLETION, "{\"prompt\":\"x\",\"guided_json\":{},\"grammar\":\"root ::= \\\"a\\\"\"}", "grammar",
       400},
      {SRV_CHAT,
       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":"
       "{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}",
       "tool_choice", 400},
      {SRV_CHAT,
       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":"
       "{\"name\":\"f\"}}],\"tool_choice\":\"required\",\"guided_json\":{}}",
       "tool_choice", 400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    srv_gen_request r;
    srv_api_error e;
    memset(&e, 0, sizeof e);
    int rc = parse(cases[i].body, cases[i].kind, &r, &e);
    if (rc != -1 || e.status != cases[i].status || strcmp(e.param, cases[i].param) != 0 || !e.message[0])
      fail_msg("case %zu %s: rc %d status %d param '%s' (want '%s'): %s", i, cases[i].body, rc, e.status,
               e.param, cases[i].param, e.message);
    srv_buf b = {0};
    preft_srv_error_json(&e, &b);
    cJSON *j = cJSON_Parse(b.p);
    cJSON *err = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(err, "message")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(err, "type")));
    assert_non_null(cJSON_GetObjectItem(err, "param"));
    assert_non_null(cJSON_GetObjectItem(err, "code"));
    cJSON_Delete(j);
    preft_srv_buf_free(&b);
  }
}

static void deep_nesting_is_refused_before_parsing(void **st) {
  size_t depth = 100000;
  char *body = malloc(2 * depth + 16);
  strcpy(body, "{\"prompt\":");
  size_t n = strlen(body);
  memset(body + n, '[', depth);
  memset(body + n + depth, ']', depth);
  strcpy(body + n + 2 * depth, "}");
  srv_gen_request r;
  srv_api_error e;
  assert_int_equal(parse(body, SRV_COMPLETION, &r, &e), -1);
  assert_int_equal(e.status, 400);
  assert_non_null(strstr(e.message, "deeper"));
  free(body);
  /* brackets inside strings do not count */
  char ok[300] = "{\"prompt\":\"";
  memset(ok + strlen(ok), '[', 200);
  strcat(ok, "\"}");
  assert_int_equal(parse(ok, SRV_COMPLETION, &r, &e), 0);
  preft_srv_gen_request_free(&r);
}

/* ---- an in-process server and the project's client ---------------------------------- */

typedef struct {
  int tokens[64];
  int n;
  bool done;
} stream_ids;

static bool collect(void *ctx, const char *data, size_t len) {
  stream_ids *s = ctx;
  if (!strcmp(data, "[DONE]")) {
    s->done = true;
    return true;
  }
  cJSON *j = cJSON_Parse(data);
  cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "token_ids");
  cJSON *t;
  cJSON_ArrayForEach(t, ids) if (s->n < 64) s->tokens[s->n++] = t->valueint;
  cJSON_Delete(j);
  return true;
}

static bool ref_token(void *ctx, int token) {
  stream_ids *s = ctx;
  s->tokens[s->n++] = token;
  return true;
}

static void served_greedy_tokens_equal_single_sequence_generation(void **st) {
  char *dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_load(&m, dir, &err), 0);
  /* the reference: plain generation on the same model */
  int prompt[] = {5, 6, 7, 8, 9};
  stream_ids want = {0};
  preft_generate_opts o = {.max_new_tokens = 10, .sampling = {.temperature = 0, .top_p = 1}};
  int gen;
  assert_int_equal(preft_generate(m, NULL, prompt, 5, &o, ref_token, &want, &gen, &err), 0);

  preft_engine *e;
  preft_engine_config ec = {.threads = 1, .kv_cache_mb = 16, .borrow_model = true};
  assert_int_equal(preft_engine_create(&e, m, &ec, &err), 0);
  preft_server *s;
  preft_server_config sc = {.host = "127.0.0.1", .port = 0, .model_name = "m", .max_context = m->cfg.max_pos};
  if (preft_server_start(&s, e, NULL, NULL, &sc, &err) != 0) fail_msg("%s", err.msg);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", preft_server_port(s));
  preft_client_global_init();
  preft_client *c = preft_client_new(url, NULL, 30);
  const char *body = "{\"model\":\"m\",\"prompt\":[5,6,7,8,9],\"max_tokens\":10,\"ignore_eos\":true%s}";
  char req[256];
  preft_http_response r;

  snprintf(req, sizeof req, body, "");
  assert_int_equal(preft_client_post(c, "/v1/completions", req, NULL, NULL, &r, &err), 0);
  assert_int_equal(r.status, 200);
  cJSON *j = cJSON_Parse(r.body);
  cJSON *ids = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "token_ids");
  assert_int_equal(cJSON_GetArraySize(ids), 10);
  for (int i = 0; i < 10; i++) assert_int_equal(cJSON_GetArrayItem(ids, i)->valueint, want.tokens[i]);
  cJSON_Delete(j);
  preft_http_response_free(&r);

  stream_ids got = {0};
  snprintf(req, sizeof req, body, ",\"stream\":true");
  assert_int_equal(preft_client_post(c, "/v1/completions", req, collect, &got, &r, &err), 0);
  assert_int_equal(r.status, 200);
  assert_true(got.done);
  assert_int_equal(got.n, 10);
  assert_memory_equal(got.tokens, want.tokens, sizeof(int) * 10);
  preft_http_response_free(&r);

  /* an error is a whole JSON body, not a stream, even when streaming was asked */
  assert_int_equal(preft_client_post(c, "/v1/completions", "{\"model\":\"x\",\"prompt\":[1],\"stream\":true}",
                                     collect, &got, &r, &err),
                   0);
  assert_int_equal(r.status, 404);
  assert_non_null(strstr(r.body, "model_not_found"));
  preft_http_response_free(&r);

  assert_int_equal(preft_client_get(c, "/metrics", &r, &err), 0);
  assert_non_null(strstr(r.body, "preft_generation_tokens_total{mode=\"all\"} 20\n"));
  assert_non_null(strstr(r.body, "preft_http_requests_total{code=\"404\"} 1\n"));
  preft_http_response_free(&r);

  assert_int_equal(preft_server_drain(s, 5.0), 0); /* idle: nothing to cancel */
  /* new connections are refused (every response closed its connection: no
   * request comes on an old one) */
  preft_client *fresh = preft_client_new(url, NULL, 5);
  assert_int_equal(preft_client_get(fresh, "/health", &r, &err), -1);
  preft_client_free(fresh);
  preft_client_free(c);
  preft_server_stop(s);
  preft_engine_free(e);
  preft_model_free(m);
  free(dir);
}

/* Sends a whole request on a fresh loopback connection, optionally ends the
 * sending side (shutdown(SHUT_WR): a half-close), and returns everything the
 * server sends until it closes (heap string). */
static char *raw_exchange(int port, const char *request, bool half_close) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 30}; /* a bound, never reached when the server works */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
  if (half_close) assert_int_equal(shutdown(fd, SHUT_WR), 0);
  srv_buf got = {0};
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) preft_srv_buf_put(&got, buf, (size_t)n);
  close(fd);
  if (!got.p) preft_srv_buf_puts(&got, "");
  return got.p;
}

/* The status of the final response (after any 1xx interim ones). */
static int final_status(const char *resp) {
  int status = 0;
  for (const char *p = resp; (p = strstr(p, "HTTP/1.1 ")); p += 9) status = atoi(p + 9);
  return status;
}

static void a_half_closed_client_is_still_answered(void **st) {
  char *dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_load(&m, dir, &err), 0);
  preft_engine *e;
  preft_engine_config ec = {.threads = 1, .kv_cache_mb = 16, .borrow_model = true};
  assert_int_equal(preft_engine_create(&e, m, &ec, &err), 0);
  preft_server *s;
  preft_server_config sc = {.host = "127.0.0.1", .port = 0, .model_name = "m", .api_key = "k"};
  if (preft_server_start(&s, e, NULL, NULL, &sc, &err) != 0) fail_msg("%s", err.msg);
  const char *body = "{\"prompt\":[5,6,7],\"max_tokens\":1}";
  char req[512];
  /* (and the Bearer scheme in lower case: RFC 9110 makes it case-insensitive) */
  snprintf(
      req, sizeof req,
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: bearer k\r\nContent-Length: %zu\r\n\r\n%s",
      strlen(body), body);
  char *resp = raw_exchange(preft_server_port(s), req, true);
  if (final_status(resp) != 200 || !strstr(resp, "\"token_ids\":[")) fail_msg("got: %s", resp);
  free(resp);
  /* the same for a streamed answer */
  body = "{\"prompt\":[5,6,7],\"max_tokens\":2,\"stream\":true}";
  snprintf(
      req, sizeof req,
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer  k\r\nContent-Length: %zu\r\n\r\n%s",
      strlen(body), body);
  resp = raw_exchange(preft_server_port(s), req, true);
  if (final_status(resp) != 200 || !strstr(resp, "data: [DONE]")) fail_msg("got: %s", resp);
  free(resp);
  preft_server_stop(s);
  preft_engine_free(e);
  preft_model_free(m);
  free(dir);
}

/* The byte bound a prompt is refused by before tokenizing must hold for
 * every token: no token decodes to more bytes than it (the reference is the
 * tokenizer's own decoding, token by token). Tokenizers it does not cover
 * (Gemma's SentencePiece-style one, not byte-level) report 0. */
static void the_prompt_byte_bound_holds_for_every_token(void **st) {
  char *path = test_data_path(".cache/qwen3/tokenizer.json");
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
  size_t bound = preft_tokenizer_max_bytes_per_token(t);
  assert_true(bound > 0);
  size_t longest = 0;
  for (int32_t id = 0; id < preft_tokenizer_vocab_size(t); id++) {
    char *text = NULL;
    size_t len = 0;
    if (preft_tokenizer_decode(t, &id, 1, PREFT_DECODE_NO_CLEANUP, &text, &len, &err) == 0 && len > longest)
      longest = len;
    free(text);
  }
  if (longest > bound) fail_msg("a token decodes to %zu bytes, more than the bound %zu", longest, bound);
  assert_true(longest > 8); /* the reference saw real tokens */
  preft_tokenizer_free(t);
  free(path);
  path = test_data_path(".cache/gemma3/tokenizer.json");
  if (preft_tokenizer_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(preft_tokenizer_max_bytes_per_token(t), 0);
  preft_tokenizer_free(t);
  free(path);
}

/* A long prompt is encoded only as far as it takes to know it does not
 * fit: the ids given are the first ones of the full encoding, at least as
 * many as asked (so "at least max_ids tokens" is exact), and a text shorter
 * than the limit encodes in full. */
static void encoding_stops_early_with_a_prefix_of_the_full_ids(void **st) {
  char *path = test_data_path(".cache/qwen3/tokenizer.json");
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
  srv_buf text = {0};
  for (int i = 0; i < 2000; i++)
    preft_srv_buf_printf(&text, "word%d, <|im_start|> %x caf\xc3\xa9\n", i, i * 7919);
  int32_t *all, *some;
  size_t n_all, n_some;
  assert_int_equal(preft_tokenizer_encode(t, text.p, text.len, true, &all, &n_all, &err), 0);
  for (size_t max = 1; max < n_all; max = max * 3 + 1) {
    assert_int_equal(preft_tokenizer_encode_max(t, text.p, text.len, true, max, &some, &n_some, &err), 0);
    if (n_some < max || n_some > n_all) fail_msg("max %zu: %zu ids of %zu", max, n_some, n_all);
    assert_memory_equal(some, all, sizeof *all * n_some);
    free(some);
  }
  assert_int_equal(preft_tokenizer_encode_max(t, text.p, text.len, true, n_all + 1, &some, &n_some, &err), 0);
  assert_int_equal(n_some, n_all);
  free(some);
  free(all);
  preft_srv_buf_free(&text);
  preft_tokenizer_free(t);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_strings_round_trip_through_a_json_parser),
      cmocka_unit_test(invalid_utf8_becomes_replacement_characters),
      cmocka_unit_test(non_finite_numbers_stay_valid_json),
      cmocka_unit_test(completion_fields_parse_into_the_request),
      cmocka_unit_test(chat_messages_are_normalised_for_the_template),
      cmocka_unit_test(every_bad_field_is_refused_by_name),
      cmocka_unit_test(deep_nesting_is_refused_before_parsing),
      cmocka_unit_test(served_greedy_tokens_equal_single_sequence_generation),
      cmocka_unit_test(a_half_closed_client_is_still_answered),
      cmocka_unit_test(the_prompt_byte_bound_holds_for_every_token),
      cmocka_unit_test(encoding_stops_early_with_a_prefix_of_the_full_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
