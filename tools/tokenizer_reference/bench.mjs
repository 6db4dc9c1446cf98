// bench.mjs - encode throughput of the JavaScript reference
// (@huggingface/tokenizers) on the same files as bench/bench_tokenizer.c,
// with the same checksum of the ids. usage: node bench.mjs TOKENIZER_DIR FILE...
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, ...files] = process.argv.slice(2);
const t0 = performance.now();
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const cfgPath = path.join(dir, "tokenizer_config.json");
const tc = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(tj, tc);
const loadMs = performance.now() - t0;
const texts = files.map((f) => fs.readFileSync(f, "utf8"));
const bytes = files.reduce((s, f) => s + fs.statSync(f).size, 0);
let best = Infinity, first = 0, ntok = 0, sum = 0;
for (let pass = 0; pass < 3; pass++) {
  const s = performance.now();
  let nt = 0, h = 2166136261;
  for (const text of texts) {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0;
    nt += ids.length;
  }
  const dt = (performance.now() - s) / 1e3;
  if (pass === 0) first = dt;
  best = Math.min(best, dt);
  ntok = nt;
  sum = h;
}
console.log(`js: files=${files.length} bytes=${bytes} tokens=${ntok} checksum=${sum.toString(16).padStart(8, "0")} load_ms=${loadMs.toFixed(1)} first_pass_MBps=${(bytes / 1e6 / first).toFixed(2)} best_MBps=${(bytes / 1e6 / best).toFixed(2)}`);
