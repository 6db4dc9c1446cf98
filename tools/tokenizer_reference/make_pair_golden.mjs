// make_pair_golden.mjs - writes tests/data/tokenizer/bert_pairs.golden.jsonl:
// text pairs encoded by Hugging Face tokenizers in JavaScript
// (@huggingface/tokenizers) with the bert-base-uncased equivalent of
// bert_json.mjs, as transformers' tokenizer(a, b) gives them: input ids and
// token type ids of "[CLS] a [SEP] b [SEP]", and the ids of the pair
// without special tokens. Each line: {"a", "b", "ids", "type_ids", "plain"}.
// Also tests/data/tokenizer/bert_normalizer_config.golden.jsonl (below).
// Run: cd tools/tokenizer_reference && npm install && node make_pair_golden.mjs
// The C tests read only the file written here (no Node at test time).
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { corpus } from "./corpus.mjs";
import { bertTokenizerJson } from "./bert_json.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const out = process.argv[2] ?? path.join(here, "..", "..", "tests", "data", "tokenizer");
const tok = new Tokenizer(bertTokenizerJson(path.join(here, "node_modules")), { clean_up_tokenization_spaces: true });

// pairs that exercise lower-casing, accent stripping, Chinese characters,
// punctuation, control characters, an empty first text and [SEP] written
// in a text. (No empty second text: this library takes text_pair "" as no
// pair at all, where transformers encodes "[CLS] a [SEP] [SEP]".)
const pairs = [
  ["Hello, World!", "How are YOU today?"],
  ["Café naïve RÉSUMÉ", "Zürich façade Ærøskøbing"],
  ["中文测试：你好，世界！", "日本語のテキストです。"],
  ["What can you get as a customer of Star Alliance?", "What are some ways to register with Star Alliance?"],
  ["", "only the second text"],
  ["tabs\tand\nnewlines\r\nand\u0007controls", "  leading and trailing spaces  "],
  ["a [SEP] written in the text", "and [CLS] [MASK] too"],
  ["Two black dogs are playing on the grass.", "Two black dogs are playing in a grassy plain."],
  ["supercalifragilisticexpialidocious antidisestablishmentarianism", "x".repeat(120)],
];
for (let i = 0; i + 1 < corpus.length; i += 2) pairs.push([corpus[i], corpus[i + 1]]);

const rows = pairs.map(([a, b]) => {
  const e = tok.encode(a, { text_pair: b, return_token_type_ids: true });
  const plain = tok.encode(a, { text_pair: b, add_special_tokens: false, return_token_type_ids: true });
  return JSON.stringify({ a, b, ids: e.ids, type_ids: e.token_type_ids, plain: plain.ids, plain_type_ids: plain.token_type_ids });
});
fs.writeFileSync(path.join(out, "bert_pairs.golden.jsonl"), rows.join("\n") + "\n");
console.log(`bert pairs: ${rows.length} lines`);

// tokenizer_config.json of a BertTokenizer(Fast) sets the BertNormalizer as
// transformers' BertTokenizerFast.__init__ does: lowercase = do_lower_case
// (default true), strip_accents as given (null: follows lowercase),
// handle_chinese_chars = tokenize_chinese_chars (default true); without a
// tokenizer_class the defaults are the tokenizer.json's own. Each line:
// {"config": tokenizer_config.json, "text", "ids"}.
const configs = [
  { tokenizer_class: "BertTokenizer" },
  { tokenizer_class: "BertTokenizer", do_lower_case: false },
  { tokenizer_class: "BertTokenizerFast", strip_accents: false },
  { tokenizer_class: "BertTokenizerFast", do_lower_case: false, strip_accents: true },
  { tokenizer_class: "BertTokenizer", tokenize_chinese_chars: false },
  { do_lower_case: false, model_max_length: 512 }, // no tokenizer_class, as bert-base-cased's
];
const flagTexts = ["Hello Café 中文", "ÉCOLE naïve Zürich 東京"];
const flagRows = [];
for (const config of configs) {
  const j = bertTokenizerJson(path.join(here, "node_modules"));
  j.normalizer.lowercase = config.do_lower_case ?? true;
  j.normalizer.strip_accents = config.strip_accents ?? null;
  j.normalizer.handle_chinese_chars = config.tokenize_chinese_chars ?? true;
  const t = new Tokenizer(j, {});
  for (const text of flagTexts) flagRows.push(JSON.stringify({ config, text, ids: t.encode(text).ids }));
}
fs.writeFileSync(path.join(out, "bert_normalizer_config.golden.jsonl"), flagRows.join("\n") + "\n");
console.log(`bert normalizer configs: ${flagRows.length} lines`);
