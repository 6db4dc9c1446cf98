#!/usr/bin/env bash
# End-to-end: structured output and tool calls over HTTP on small random
# models with real tokenizers and chat templates (Qwen3's: Hermes-style
# <tool_call> tags; Llama 3.1's: a bare JSON call). Random weights write
# nonsense, so every check is on what the grammar guarantees: the reply
# parses and validates against the schema, regex, choice list or tool
# schema, whatever the sampled tokens; streamed tool calls assemble to the
# whole response's; bad schemas and grammars are 400s naming the field.
source "$(dirname "$0")/server_lib.bash"
command -v jq >/dev/null || { echo "jq is missing: run scripts/install-deps.sh"; exit 1; }
tok=$data/.cache/qwen3
[ -s "$tok/tokenizer.json" ] || { echo "missing $tok/tokenizer.json: run scripts/fetch-test-data.sh"; exit 1; }
tmp=$(mktemp -d)
trap 'kill_server; [ $fails -gt 0 ] && for l in "$tmp"/log*; do echo "== $l"; tail -40 "$l"; done; rm -rf "$tmp"' EXIT
m=$tmp/qwen-tiny
"$bin" make-model --shape tiny --vocab 151936 --seed 2 -o "$m" 2>/dev/null
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$m/"
start_server "$tmp/log" -m "$m" --threads 2 || exit 1
sse() { sed -n 's/^data: //p' | grep -v '^\[DONE\]'; }
post() { curl -s "$SRV_URL/v1/$1" -d "$2"; }
# JSON FILTER: the filter gives true; it may call valid (the person schema) and args_valid (the tools)
jq_ok() { printf '%s' "$1" | jq -e "def valid: ${valid:-true}; def args_valid: ${args_valid:-true}; $2" >/dev/null; }

# ---- response_format json_schema: every choice validates -------------------------------------
schema='{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"},
 "color":{"enum":["red","green",null]},"tags":{"type":"array","items":{"type":"boolean"},"maxItems":3},
 "nick":{"type":"string","maxLength":4}},"required":["name","age","color","tags"],"additionalProperties":false}'
schema=$(echo "$schema" | jq -c .)
valid='(keys - ["age","color","name","nick","tags"] | length == 0) and (.name | type == "string" and length <= 8)
 and (.age | type == "number" and floor == .) and (.color | . == "red" or . == "green" or . == null)
 and (.tags | type == "array" and length <= 3 and all(type == "boolean")) and ((.nick // "") | type == "string" and length <= 4)'
rf="{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"person\",\"strict\":true,\"schema\":$schema}}"
r=$(post completions "{\"prompt\":\"A person:\",\"max_tokens\":400,\"temperature\":1,\"seed\":7,\"n\":4,\"response_format\":$rf}")
check "json_schema: 4 choices, all finished by the grammar" test "$(echo "$r" | jq '[.choices[] | select(.finish_reason == "stop")] | length')" -eq 4
check "json_schema: every text parses and validates" jq_ok "$r" '[.choices[].text | fromjson | valid] | all'
c=$(post chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"A person\"}],\"max_tokens\":400,\"temperature\":1,\"seed\":8,\"response_format\":$rf}")
check "json_schema (chat): the message validates" jq_ok "$c" '.choices[0].message.content | fromjson | valid'
g=$(post completions "{\"prompt\":\"x\",\"max_tokens\":400,\"temperature\":0,\"guided_json\":$schema}")
check "json_schema, greedy: validates" jq_ok "$g" '.choices[0].text | fromjson | valid'
whole=$(echo "$r" | jq -j '.choices[0].text')
streamed=$(curl -sN "$SRV_URL/v1/completions" -d "{\"prompt\":\"A person:\",\"max_tokens\":400,\"temperature\":1,\"seed\":7,\"response_format\":$rf,\"stream\":true}" | sse | jq -j '.choices[0].text')
check "json_schema streamed = whole (same seed)" test "$streamed" = "$whole"
s2=$(jq -cn --arg s "$schema" '$s')
r=$(post completions "{\"prompt\":\"x\",\"max_tokens\":400,\"temperature\":1,\"seed\":9,\"guided_json\":$s2}")
check "guided_json given as JSON text" jq_ok "$r" '.choices[0].text | fromjson | valid'
r=$(post completions "{\"prompt\":\"x\",\"max_tokens\":60,\"temperature\":1,\"seed\":3,\"response_format\":{\"type\":\"json_object\"}}")
check "json_object: the text starts an object" jq_ok "$r" '.choices[0].text | startswith("{")'

# ---- regex, choice, GBNF ----------------------------------------------------------------------
r=$(post completions '{"prompt":"x","max_tokens":40,"temperature":1,"seed":4,"n":3,"guided_choice":["red","green","blue sky"]}')
check "guided_choice: each text is one of the choices" jq_ok "$r" '[.choices[] | .text == "red" or .text == "green" or .text == "blue sky"] | all'
re='[a-z]{1,6}@[a-z]{2,4}\.(com|org)'
r=$(post completions "{\"prompt\":\"x\",\"max_tokens\":40,\"temperature\":1,\"seed\":5,\"n\":3,\"guided_regex\":$(jq -Rn --arg s "$re" '$s')}")
ok=1
for i in 0 1 2; do [[ $(echo "$r" | jq -r ".choices[$i].text") =~ ^$re$ ]] || ok=0; done
check "guided_regex: each text matches in full" test $ok = 1
r=$(post completions '{"prompt":"x","max_tokens":20,"temperature":1,"seed":6,"grammar":"root ::= (\"yes\" | \"no\") \" \" [0-9]{2}\n"}')
t=$(echo "$r" | jq -r '.choices[0].text')
check "grammar (GBNF): the text matches" bash -c "[[ \"$t\" =~ ^(yes|no)\ [0-9]{2}\$ ]]"
check "grammar: the grammar's end stops the reply" test "$(echo "$r" | jq -r '.choices[0].finish_reason')" = stop

# ---- bad input: 400 naming the field ---------------------------------------------------------
bad() { # NAME BODY PARAM
  local r
  r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/completions" -d "$2")
  check "$1: 400 naming $3" test "$(echo "$r" | tail -1) $(echo "$r" | head -1 | jq -r .error.param)" = "400 $3"
}
bad "schema with minimum" '{"prompt":"x","guided_json":{"type":"integer","minimum":1}}' guided_json
bad "malformed GBNF" '{"prompt":"x","grammar":"root ::= (\"a\""}' grammar
bad "regex with a backreference" '{"prompt":"x","guided_regex":"(a)\\1"}' guided_regex
bad "two constraints" '{"prompt":"x","guided_choice":["a"],"guided_regex":"a"}' guided_choice
bad "response_format type" '{"prompt":"x","response_format":{"type":"yaml"}}' response_format.type

# ---- tool calls (Hermes, Qwen3's template) ---------------------------------------------------
tools='[{"type":"function","function":{"name":"get_weather","description":"Weather in a city",
 "parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["c","f"]}},
 "required":["city","unit"],"additionalProperties":false}}},{"type":"function","function":{"name":"get_time",
 "parameters":{"type":"object","properties":{"zone":{"type":"string","maxLength":6}},"required":["zone"]}}}]'
tools=$(echo "$tools" | jq -c .)
msgs='[{"role":"user","content":"Weather in Paris?"}]'
args_valid='(.name == "get_weather" and (.arguments | fromjson | (.city | type == "string" and length <= 10) and (.unit == "c" or .unit == "f") and (keys == ["city","unit"])))
 or (.name == "get_time" and (.arguments | fromjson | (.zone | type == "string" and length <= 6) and keys == ["zone"]))'
creq="\"messages\":$msgs,\"tools\":$tools,\"max_tokens\":300,\"temperature\":1"
r=$(post chat/completions "{$creq,\"seed\":11,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}")
check "named tool: finish_reason tool_calls" test "$(echo "$r" | jq -r '.choices[0].finish_reason')" = tool_calls
check "named tool: one call of get_weather, arguments valid" jq_ok "$r" '.choices[0].message.tool_calls | length == 1 and (.[0].function | args_valid) and (.[0].function.name == "get_weather")'
check "named tool: id and type" jq_ok "$r" '.choices[0].message.tool_calls[0] | (.id | startswith("call_")) and .type == "function"'
check "named tool: content null" test "$(echo "$r" | jq -r '.choices[0].message.content')" = null
# streamed: the deltas assemble (by index) to the whole response's calls
stream=$(curl -sN "$SRV_URL/v1/chat/completions" -d "{$creq,\"seed\":11,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},\"stream\":true}" | sse)
assembled=$(echo "$stream" | jq -sc '[.[] | .choices[0].delta.tool_calls // [] | .[]] | group_by(.index) | map({name: (map(.function.name // "") | add), arguments: (map(.function.arguments // "") | add), id: (map(.id // "") | add)})')
check "streamed tool call assembles to the whole call" test "$(echo "$assembled" | jq -c 'map({name, arguments: (.arguments | fromjson)})')" = "$(echo "$r" | jq -c '[.choices[0].message.tool_calls[].function | {name, arguments: (.arguments | fromjson)}]')"
check "streamed tool call: the arguments come in several deltas" test "$(echo "$stream" | jq -s '[.[] | .choices[0].delta.tool_calls // [] | .[] | select((.function.arguments // "") != "")] | length')" -gt 1
check "streamed: finish_reason tool_calls last" test "$(echo "$stream" | jq -sr '[.[] | .choices[0].finish_reason // empty] | last')" = tool_calls
r=$(post chat/completions "{$creq,\"seed\":12,\"n\":3,\"tool_choice\":\"required\"}")
check "required: every choice calls tools with valid arguments" jq_ok "$r" '[.choices[] | select(.finish_reason == "tool_calls") | .message.tool_calls | length >= 1 and all(.function | args_valid)] | length == 3 and all'
r=$(post chat/completions "{$creq,\"seed\":13,\"max_tokens\":8,\"tool_choice\":\"none\"}")
check "tool_choice none: plain content" jq_ok "$r" '.choices[0].message.tool_calls == null and (.choices[0].message.content | type == "string")'
r=$(post chat/completions "{$creq,\"seed\":13,\"max_tokens\":8}")
check "tool_choice auto on a random model: content, no call" jq_ok "$r" '.choices[0].message.content | type == "string"'
# a tool call and its result sent back
back="[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"unit\\\":\\\"c\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"21 C\"}]"
r=$(curl -s -w '\n%{http_code}' "$SRV_URL/v1/chat/completions" -d "{\"messages\":$back,\"tools\":$tools,\"max_tokens\":4}")
check "tool messages accepted back (200)" test "$(echo "$r" | tail -1)" = 200
bad_chat=$(curl -s "$SRV_URL/v1/chat/completions" -d "{\"messages\":$msgs,\"tools\":$tools,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}")
check "named tool not in tools: 400 tool_choice" test "$(echo "$bad_chat" | jq -r .error.param)" = tool_choice
bad_chat=$(curl -s "$SRV_URL/v1/chat/completions" -d "{\"messages\":$msgs,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"format\":\"date\"}}}}}],\"tool_choice\":\"required\"}")
check "required with an unsupported schema: 400 tools" test "$(echo "$bad_chat" | jq -r .error.param)" = tools
stop_server
check "server exits 0" test $? -eq 0

# ---- tool calls (Llama 3.1's template: a bare JSON call with "parameters") ------------------------
ltok=$data/.cache/llama3_1
if [ -s "$ltok/tokenizer.json" ]; then
  lm=$tmp/llama-tiny
  "$bin" make-model --shape tiny --vocab 128256 --seed 3 -o "$lm" 2>/dev/null
  cp "$ltok/tokenizer.json" "$ltok/tokenizer_config.json" "$lm/"
  start_server "$tmp/log2" -m "$lm" --threads 2 || exit 1
  r=$(post chat/completions "{$creq,\"seed\":21,\"tool_choice\":\"required\"}")
  check "llama3: required gives one valid call" jq_ok "$r" '.choices[0].finish_reason == "tool_calls" and (.choices[0].message.tool_calls | length == 1 and all(.function | args_valid))'
  stop_server
else
  echo "skip llama3 family: $ltok/tokenizer.json missing"
fi
[ $fails -eq 0 ]
