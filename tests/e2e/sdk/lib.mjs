// lib.mjs - what every OpenAI SDK test file shares (tests/e2e/openai_sdk.sh
// runs each sdk/*.test.mjs with the environment it describes).
//   client(opts)                 an OpenAI client for the main server (no retries)
//   qwenClient(opts)             one for the qwen server (Qwen3's tokenizer and template)
//   check(name, fn)              runs fn (may be async); ok when it returns true,
//                                FAIL (with the value or the exception) otherwise
//   checkError(name, fn, Class, {status, param})
//                                fn must throw an instance of the SDK's Class
//                                with that status and error.param
//   preft(args)                  runs preft (references) and returns its stdout
//   logits(ids)                  `preft logits` of the main model: one Float32Array per position
//   tokenize(text)               the main model's token ids of text (`preft tokenize`)
//   finish()                     exits 1 when a check failed
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

export { OpenAI };
export const env = {
  url: process.env.PREFT_URL,
  qwenUrl: process.env.PREFT_QWEN_URL,
  qwenModel: process.env.PREFT_QWEN_MODEL,
  qwenDir: process.env.PREFT_QWEN_DIR,
  key: process.env.PREFT_API_KEY,
  model: process.env.PREFT_MODEL,
  modelDir: process.env.PREFT_MODEL_DIR,
  adapters: (process.env.PREFT_ADAPTERS || '').split(',').filter((a) => a),
  adapterDir: process.env.PREFT_ADAPTER_DIR,
  bin: process.env.PREFT_BIN,
  corsOrigin: process.env.PREFT_CORS_ORIGIN,
  data: process.env.PREFT_TEST_DATA,
};
// the server's root (for the endpoints outside /v1: /tokenize, /version, ...)
env.root = env.url.replace(/\/v1$/, '');
for (const [k, v] of Object.entries(env)) if (v === undefined) throw new Error(`lib.mjs: ${k} is not set`);

let fails = 0;

export function client(opts = {}) {
  return new OpenAI({ baseURL: env.url, apiKey: env.key, maxRetries: 0, timeout: 60000, ...opts });
}

export function qwenClient(opts = {}) {
  return client({ baseURL: env.qwenUrl, ...opts });
}

function show(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s && s.length > 300 ? s.slice(0, 300) + '...' : s;
}

export async function check(name, fn) {
  try {
    const r = await fn();
    if (r === true) {
      console.log(`ok   ${name}`);
      return true;
    }
    console.log(`FAIL ${name}: got ${show(r)}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
  fails++;
  return false;
}

export async function checkError(name, fn, Class, { status, param } = {}) {
  return check(name, async () => {
    try {
      await fn();
    } catch (e) {
      const got = { class: e.constructor.name, status: e.status, param: e.param ?? null };
      if (!(e instanceof Class)) return got;
      if (status !== undefined && e.status !== status) return got;
      if (param !== undefined && (e.param ?? null) !== param) return got;
      return true;
    }
    return 'no exception';
  });
}

// equal(a, b): true, or a description of the difference (for check)
export function equal(a, b) {
  const x = JSON.stringify(a), y = JSON.stringify(b);
  return x === y ? true : `${show(a)}, want ${show(b)}`;
}

export function preft(args) {
  return execFileSync(env.bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// The greedy reference of `preft generate` (its text, without the newline
// it ends with), optionally with an adapter; model: a model directory (default: the main one).
export function generate({ prompt, n, adapter, chat = false, system, model = env.modelDir }) {
  const args = ['generate', '-m', model, '-p', prompt, '-n', String(n), '--temperature', '0',
    '--ignore-eos', '--threads', '1'];
  if (chat) args.push('--chat');
  if (system) args.push('--system', system);
  if (adapter) args.push('-a', `${env.adapterDir}/${adapter}`);
  const out = preft(args);
  return out.endsWith('\n') ? out.slice(0, -1) : out;
}

export function logits(ids, { model = env.modelDir, adapter } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'preft-sdk-'));
  try {
    const args = ['logits', '-m', model, '--ids', ids.join(','), '-o', join(dir, 'l.f32'), '--threads', '1'];
    if (adapter) args.push('-a', `${env.adapterDir}/${adapter}`);
    preft(args);
    const buf = readFileSync(join(dir, 'l.f32'));
    const all = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const vocab = all.length / ids.length;
    return ids.map((_, t) => all.slice(t * vocab, (t + 1) * vocab));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function tokenize(text, { model = env.modelDir } = {}) {
  return JSON.parse(preft(['tokenize', '--tokenizer', model, '--text', text]));
}

// log-softmax of row at id (float64 sums)
export function logprob(row, id) {
  let mx = -Infinity;
  for (const x of row) if (x > mx) mx = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - mx);
  return row[id] - mx - Math.log(sum);
}

// Every chunk of a stream, in order.
export async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

export function finish() {
  console.log(fails ? `${fails} check(s) failed` : 'all checks passed');
  process.exit(fails ? 1 : 0);
}
