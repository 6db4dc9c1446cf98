#!/usr/bin/env python3
"""make_corpus.py - rebuilds the committed seed corpora fuzz/corpus/<target>/
from the repository's test data (tests/data, and the real tokenizer files
scripts/fetch-test-data.sh puts in tests/data/.cache). A development tool:
nothing runs it at build or test time. Usage: python3 fuzz/make_corpus.py"""
import glob, json, os, shutil, struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def slug(path):
    rel = os.path.relpath(path, DATA)
    return rel.replace("/", "_")


def safetensors():
    for p in sorted(glob.glob(os.path.join(DATA, "**", "*.safetensors"), recursive=True)):
        if os.path.getsize(p) <= 10240:
            put("safetensors", slug(p), open(p, "rb").read())


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_file(kvs, tensors, version=3, alignment=32):
    """kvs: (key, type, packed value); tensors: (name, ne, ggml type, bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gguf_str(key) + struct.pack("<I", t) + v
    off = 0
    for name, ne, t, data in tensors:
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", t, off)
        off += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * ((-len(data)) % alignment)
    return out


def gguf():
    u32 = lambda k, v: (k, 4, struct.pack("<I", v))
    f32 = lambda k, v: (k, 6, struct.pack("<f", v))
    s = lambda k, v: (k, 8, gguf_str(v))
    arr_s = lambda k, vs: (k, 9, struct.pack("<IQ", 8, len(vs)) + b"".join(gguf_str(x) for x in vs))
    arr_i = lambda k, vs: (k, 9, struct.pack("<IQ", 5, len(vs)) + b"".join(struct.pack("<i", x) for x in vs))
    arr_f = lambda k, vs: (k, 9, struct.pack("<IQ", 6, len(vs)) + b"".join(struct.pack("<f", x) for x in vs))
    cfg = json.load(open(os.path.join(DATA, "models", "llama-gqa-rope3", "config.json")))
    kvs = [s("general.architecture", "llama"), s("general.name", "tiny"),
           u32("llama.block_count", cfg["num_hidden_layers"]), u32("llama.context_length", 64),
           u32("llama.embedding_length", cfg["hidden_size"]), u32("llama.feed_forward_length", cfg["intermediate_size"]),
           u32("llama.attention.head_count", cfg["num_attention_heads"]),
           u32("llama.attention.head_count_kv", cfg["num_key_value_heads"]),
           f32("llama.rope.freq_base", 10000.0), f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
           (("general.file_type"), 4, struct.pack("<I", 0)), ("tokenizer.ggml.add_bos_token", 7, b"\1"),
           s("tokenizer.ggml.model", "gpt2"), arr_s("tokenizer.ggml.tokens", ["a", "b", "ab", "<s>"]),
           arr_i("tokenizer.ggml.token_type", [1, 1, 1, 3]), arr_f("tokenizer.ggml.scores", [0, 0, -1, 0]),
           arr_s("tokenizer.ggml.merges", ["a b"]), u32("tokenizer.ggml.bos_token_id", 3),
           s("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")]
    f32d = struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, -7)
    f16d = struct.pack("<6e", 1, -2, 3.5, 0, 1e-3, -7)
    bf16d = b"".join(struct.pack("<f", x)[2:] for x in (1, -2, 3.5, 0, 1e-3, -7))
    t = [("token_embd.weight", [3, 2], 0, f32d), ("blk.0.attn_q.weight", [2, 3], 1, f16d),
         ("output_norm.weight", [6], 30, bf16d)]
    put("gguf", "llama-f32-f16-bf16.gguf", gguf_file(kvs, t))
    put("gguf", "v2-no-tensors.gguf", gguf_file(kvs[:4], [], version=2))
    put("gguf", "aligned-64.gguf", gguf_file(kvs[:3] + [u32("general.alignment", 64)], t[:1], alignment=64))
    put("gguf", "scalars.gguf", gguf_file([("u8", 0, b"\7"), ("i8", 1, b"\xff"), ("u16", 2, b"\1\2"), ("i16", 3, b"\1\x80"),
                                          ("i32", 5, b"\1\0\0\x80"), ("u64", 10, struct.pack("<Q", 1 << 40)),
                                          ("i64", 11, struct.pack("<q", -5)), ("f64", 12, struct.pack("<d", 0.25)),
                                          ("b", 7, b"\0"), s("s", "x"), arr_s("empty", [])], []))


def hf_config():
    for p in sorted(glob.glob(os.path.join(DATA, "models", "*", "config.json"))):
        put("hf_config", slug(p), open(p, "rb").read())
    base = json.load(open(os.path.join(DATA, "models", "llama-gqa-rope3", "config.json")))
    for name, extra in [("rope-llama3", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
                        ("rope-linear", {"rope_scaling": {"type": "linear", "factor": 2.0}}),
                        ("eos-list", {"eos_token_id": [1, 2], "tie_word_embeddings": True}),
                        ("qwen2", {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "sliding_window": 4})]:
        put("hf_config", name + ".json", json.dumps(dict(base, **extra), indent=1))


def bert_config():
    for p in sorted(glob.glob(os.path.join(DATA, "bert", "*", "config.json"))):
        put("bert_config", slug(p), open(p, "rb").read())
    base = json.load(open(os.path.join(DATA, "bert", "bert-model-f32", "config.json")))
    for name, extra in [("no-model-type", {"model_type": None}),
                        ("act-gelu-new", {"hidden_act": "gelu_new"}),
                        ("relative-key", {"position_embedding_type": "relative_key"}),
                        ("heads-not-dividing", {"num_attention_heads": 5})]:
        put("bert_config", name + ".json", json.dumps(dict(base, **extra), indent=1))


def adapter_configs():
    for p in sorted(glob.glob(os.path.join(DATA, "**", "adapter_config.json"), recursive=True)):
        put("peft_config", slug(p), open(p, "rb").read())
    for p in sorted(glob.glob(os.path.join(DATA, "**", "reft_config.json"), recursive=True)):
        put("reft_config", slug(p), open(p, "rb").read())


def trim_tokenizer(t, keep):
    """The tokenizer with ids < keep (merges among them) and its first added tokens renumbered after them."""
    m = t["model"]
    vocab = {k: v for k, v in m["vocab"].items() if v < keep}
    merges = []
    for mg in m.get("merges", []):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
        if len(merges) >= 60:
            break
    m = dict(m, vocab=vocab, merges=merges)
    added, remap = [], {}
    for i, a in enumerate(t.get("added_tokens", [])[:6]):
        remap[a["id"]] = keep + i
        added.append(dict(a, id=keep + i))
    out = dict(t, model=m, added_tokens=added)
    pp = json.dumps(out.get("post_processor"))
    for old, new in remap.items():
        pp = pp.replace("[%d]" % old, "[%d]" % new).replace(": %d}" % old, ": %d}" % new)
    out["post_processor"] = json.loads(pp)
    return out


def tokenizers():
    p = os.path.join(DATA, "tokenizer", "trained", "tokenizer.json")
    put("tokenizer_json", "trained.json", json.dumps(trim_tokenizer(json.load(open(p)), 200), ensure_ascii=False))
    for name in ("llama3_1", "qwen3", "gemma3"):
        p = os.path.join(DATA, ".cache", name, "tokenizer.json")
        if os.path.exists(p):
            t = trim_tokenizer(json.load(open(p)), 300)
            put("tokenizer_json", name + ".json", json.dumps(t, ensure_ascii=False))


def templates():
    put("jinja", "smollm.jinja", open(os.path.join(DATA, "tokenizer", "chat", "smollm_template.jinja"), "rb").read())
    for name in ("llama3_1", "qwen3", "gemma3"):
        p = os.path.join(DATA, ".cache", name, "tokenizer_config.json")
        if os.path.exists(p):
            put("jinja", name + ".jinja", json.load(open(p))["chat_template"])
    snippets = {
        "loop": "{% for x in messages if x.role != 'tool' %}{{ loop.index }}{{ x.content|trim }}{% if not loop.last %},{% endif %}{% else %}none{% endfor %}",
        "ns": "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i * 2 // 3 % 5 ** 2 %}{% endfor %}{{ ns.n }}",
        "macro": "{% macro f(a, b='x') -%}{{ a ~ b }}{%- endmacro %}{{ f(1) }}{{ f('y', b=2) }}",
        "filters": "{{ messages|map(attribute='role')|join(',') }}{{ tools|tojson(indent=2) }}{{ 'AbC'|lower|upper }}{{ [3,1,2]|sort|list|length }}",
        "methods": "{{ 'a,b'.split(',') }}{{ ' x '.strip() }}{{ 'abc'.startswith('a') }}{{ {'k': 1}.items()|list }}{{ 'x'.replace('x', 'y') }}",
        "slices": "{{ messages[1:][::-1]|length }}{{ 'hello'[1:-1] }}{{ messages[-1]['content'] }}",
        "ints": "{{ 9007199254740993 + 0 }}{{ -7 // 2 }}{{ 2 ** 62 }}{{ 7 / 2 }}{{ n % 1000 }}",
        "raise": "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
        "set-block": "{% set x %}a{{ bos_token }}b{% endset %}{{ x }}{# comment #}{%- if add_generation_prompt -%} go {%- endif -%}",
        "tests": "{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ 3 is number }}{{ messages is iterable }}{{ 'a' in 'abc' }}",
    }
    for k, v in snippets.items():
        put("jinja", k + ".jinja", v)


def requests():
    comp = [{"model": "m", "prompt": "Hello", "max_tokens": 4},
            {"prompt": ["a", "b"], "n": 2, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 3,
             "stop": ["\n", "."], "logprobs": 2, "stream": True, "stream_options": {"include_usage": True}},
            {"prompt": [[1, 2, 3], [4]], "max_tokens": 1, "stop_token_ids": [2], "ignore_eos": True,
             "return_token_ids": True, "skip_special_tokens": False, "adapter_mode": "prefill"},
            {"prompt": [5, 6], "stop": "x", "echo": False, "user": "u"}]
    chat = [{"model": "alice", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "t"}]},
                          {"role": "assistant", "content": "a"}], "max_completion_tokens": 3, "logprobs": True,
             "top_logprobs": 3, "add_generation_prompt": False, "chat_template_kwargs": {"enable_thinking": False}},
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
             "tool_choice": "none", "stream": True, "response_format": {"type": "text"}}]
    for i, r in enumerate(comp):
        put("request", "completion-%d.json" % i, b"\0" + json.dumps(r).encode())
    for i, r in enumerate(chat):
        put("request", "chat-%d.json" % i, b"\1" + json.dumps(r).encode())


def jsonl():
    put("jsonl", "prompt-completion.jsonl", "".join(json.dumps(x) + "\n" for x in [
        {"prompt": "Hello", "completion": " world"}, {"prompt": "", "completion": "x" * 50},
        {"prompt": "long " * 40, "completion": "tail"}]))
    put("jsonl", "messages.jsonl", "".join(json.dumps(x) + "\n" for x in [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a2"}]}]))
    put("jsonl", "ids.jsonl", "".join(json.dumps(x) + "\n" for x in [
        {"prompt_ids": [1, 2, 3], "completion_ids": [4, 5]}, {"prompt_ids": [], "completion_ids": [7]}]))
    put("jsonl", "mixed-crlf.jsonl", '{"prompt": "a\\u00e9", "completion": "b"}\r\n{"prompt_ids": [9], "completion_ids": [8, 7]}\r\n')
    lines = open(os.path.join(DATA, "tokenizer", "corpus.jsonl"), encoding="utf-8").read().split("\n")[:20]
    put("jsonl", "from-tokenizer-corpus.jsonl", "".join(json.dumps({"prompt": json.loads(l), "completion": json.loads(l)}) + "\n" for l in lines))


def task_files():
    """The TOML and YAML fixtures of the task-file readers, good and malformed, and the task files of the
    fixture tasks."""
    for target, ext in (("toml", ".toml"), ("yaml", ".yaml")):
        for p in sorted(glob.glob(os.path.join(DATA, target, "*" + ext)) +
                        glob.glob(os.path.join(DATA, target, "bad", "*" + ext))):
            put(target, slug(p), open(p, "rb").read())
    for p in sorted(glob.glob(os.path.join(DATA, "tasks", "*", "task.toml"))):
        put("toml", slug(p), open(p, "rb").read())
    for p in sorted(glob.glob(os.path.join(DATA, "tasks", "*", "task.yaml"))):
        put("yaml", slug(p), open(p, "rb").read())


def terminus_replies():
    """Model replies as the terminus agent reads them (bare, fenced, among prose, malformed fields,
    invalid JSON, UTF-8 in an unclosed fence), a chat completion body, and pane text with an earlier
    capture after a NUL."""
    put("terminus_reply", "bare.txt", json.dumps({"analysis": "empty dir", "plan": "make a file", "commands": [
        {"keystrokes": "touch a\n", "duration": 0.5}, {"keystrokes": "C-c"}], "task_complete": False}))
    put("terminus_reply", "fenced.txt", 'Here is my answer:\n```json\n{"analysis": "a", "plan": "p", "commands": [], '
        '"task_complete": true}\n```\nThanks.')
    put("terminus_reply", "prose.txt", 'I think {this} matters. {"analysis": "x", "plan": "y", "commands": '
        '[{"keystrokes": "echo \'{}\'\\n", "duration": 0}]} done')
    put("terminus_reply", "bad_fields.txt", '{"commands": [{"keystrokes": "make\\n", "duration": 600}, {"duration": -1}, '
        '"ls", {"keystrokes": 5}], "task_complete": "false", "plan": 1}')
    put("terminus_reply", "bad_json.txt", '{"analysis": "a",\n "plan": "b" "commands": []}')
    put("terminus_reply", "chat_body.json", json.dumps({"id": "c1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": '{"analysis":"","plan":"","commands":[]}'},
         "finish_reason": "length"}], "usage": {"prompt_tokens": 120, "completion_tokens": 7}}, separators=(",", ":")))
    put("terminus_reply", "pane_diff.txt", "$ ls\nfile\n$ cat file\nhello  \n$ \n\n\n\0$ ls\nfile\n$")
    put("terminus_reply", "utf8_unclosed_fence.txt", '```\n{"analysis": "caf\u00e9 \u2713", "plan": "\\u00e9", "commands": '
        '[{"keystrokes": "echo \\"x\\";;\\n", "duration": 1e2}], "task_complete": true}')


def grammars():
    """The constrained-decoding front-ends: the first byte picks GBNF (0),
    a regex (1), a JSON schema (2) or a tool-call reply (3, the second byte
    picks the family); the rest is the text (fuzz_grammar.c)."""
    put("grammar", "gbnf_json.txt", b"\0" + b'root ::= object\nobject ::= "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}"\n'
        b'value ::= object | string | [0-9]+ ("." [0-9]{1,3})? | "true" | "null"\nstring ::= "\\"" ([^"\\\\] | "\\\\" ["nt])* "\\""\n'
        b'ws ::= [ \\t\\n]{0,4} # comment\n')
    put("grammar", "gbnf_unicode.txt", b"\0" + 'root ::= [α-ω\\u00e9]+ . [^\\x00-\\x7F]? "😀"{1,2}\n'.encode())
    put("grammar", "gbnf_bad.txt", b"\0" + b'root ::= a*\na ::= "x"? | root\n')
    put("grammar", "regex_email.txt", b"\1" + rb"^[a-z]+@(?:\w+\.)+(com|org){1,2}$")
    put("grammar", "regex_misc.txt", b"\1" + rb"(?P<x>\d{3})-\D*|[^\s\]]+?.\.x{2,}")
    put("grammar", "schema.json", b"\2" + json.dumps({"type": "object", "properties": {
        "a": {"type": "string", "maxLength": 4}, "b": {"type": ["integer", "null"]},
        "c": {"type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 1, "maxItems": 3},
        "d": {"anyOf": [{"const": "x"}, {"enum": [1, True, None]}]}}, "required": ["a"],
        "additionalProperties": False, "$defs": {"n": {"type": "object", "properties": {"k": {"$ref": "#/$defs/n"}}}}}).encode())
    put("grammar", "hermes_reply.txt", b"\3\0" + b'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>')
    put("grammar", "llama3_reply.txt", b"\3\1" + b'<|python_tag|>{"name": "f", "parameters": {}}; {"name": "g"}')
    put("grammar", "mistral_reply.txt", b"\3\2" + b'[TOOL_CALLS][{"name": "f", "arguments": "{\\"x\\": 2}"}]')


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    safetensors(); gguf(); hf_config(); bert_config(); adapter_configs(); tokenizers(); templates(); requests(); jsonl(); task_files(); terminus_replies(); grammars()
    for d in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, d))
        print("%-16s %2d files, %6d bytes, largest %d" % (d, len(files), sum(os.path.getsize(os.path.join(OUT, d, f)) for f in files),
                                                        max(os.path.getsize(os.path.join(OUT, d, f)) for f in files)))
