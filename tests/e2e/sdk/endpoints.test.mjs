// endpoints.test.mjs - /v1/embeddings through the SDK (its default base64
// transfer and float) against the PyTorch golden of
// tools/make_reference_embeddings.py; vLLM's /tokenize and /detokenize
// against `preft tokenize` and the chat request's own prompt count;
// /version; CORS preflight and headers for the allowed origin only.
import { readFileSync } from 'node:fs';
import { OpenAI, check, checkError, client, env, equal, finish, preft, tokenize } from './lib.mjs';

const c = client();
const golden = JSON.parse(readFileSync(`${env.data}/embeddings/golden.json`, 'utf8')).cases;
const maxDiff = (a, b) => (a.length !== b.length ? Infinity : Math.max(...a.map((x, i) => Math.abs(x - b[i]))));
const close = (got, want, tol = 2e-5) => {
  const d = maxDiff(got, want);
  return d <= tol || `max |diff| ${d}`;
};

// ---- embeddings -----------------------------------------------------------------------
const inputs = golden.map((g) => g.ids);
const e64 = await c.embeddings.create({ model: env.model, input: inputs }); // the SDK asks for base64 and decodes it
await check('embeddings (base64, as the SDK asks): = PyTorch golden, normalised', () => {
  const bad = e64.data.map((d, i) => close(Array.from(d.embedding), golden[i].normalized)).filter((r) => r !== true);
  return (bad.length === 0 && e64.data.length === golden.length) || bad;
});
await check('embeddings: object, indices, usage', () =>
  equal([e64.object, e64.data.map((d) => d.index), e64.usage.prompt_tokens, e64.model],
    ['list', [0, 1, 2], inputs.flat().length, env.model]));
await check('embeddings float = base64', async () => {
  const r = await c.embeddings.create({ model: env.model, input: inputs[1], encoding_format: 'float' });
  return close(r.data[0].embedding, Array.from(e64.data[1].embedding), 1e-7);
});
await check('embeddings normalize: false = the raw mean (golden)', async () => {
  const r = await c.embeddings.create({ model: env.model, input: inputs[0], encoding_format: 'float', normalize: false });
  return close(r.data[0].embedding, golden[0].mean, 1e-4);
});
await check('embeddings of text = of its token ids', async () => {
  const text = 'The Congress shall';
  const ids = tokenize(text);
  const [a, b] = await Promise.all([
    c.embeddings.create({ model: env.model, input: text, encoding_format: 'float' }),
    c.embeddings.create({ model: env.model, input: ids, encoding_format: 'float' })]);
  return close(a.data[0].embedding, b.data[0].embedding, 0);
});
await check('embeddings of a list of strings', async () => {
  const r = await c.embeddings.create({ model: env.model, input: ['Taxes', 'The army'] });
  return (r.data.length === 2 && r.data[0].embedding.length === 384) || r.data.length;
});
const badEmb = (name, body, Class, status, param) =>
  checkError(`embeddings ${name}`, () => c.embeddings.create({ model: env.model, ...body }), Class, { status, param });
await badEmb('with an adapter: 400 model', { model: env.adapters[0], input: 'x' }, OpenAI.BadRequestError, 400, 'model');
await badEmb('of an unknown model: 404', { model: 'nope', input: 'x' }, OpenAI.NotFoundError, 404, 'model');
await badEmb('of []: 400 input', { input: [] }, OpenAI.BadRequestError, 400, 'input');
await badEmb('of an id outside the vocabulary', { input: [8192] }, OpenAI.BadRequestError, 400, 'input');
await badEmb('of a mixed list', { input: ['a', [1]] }, OpenAI.BadRequestError, 400, 'input');
await badEmb('encoding_format hex', { input: 'x', encoding_format: 'hex' }, OpenAI.BadRequestError, 400, 'encoding_format');
await badEmb('dimensions 7', { input: 'x', dimensions: 7 }, OpenAI.BadRequestError, 400, 'dimensions');
await badEmb('without input', {}, OpenAI.BadRequestError, 400, 'input');

// ---- /tokenize, /detokenize, /version -------------------------------------------------
const post = async (path, body, headers = {}) => {
  const r = await fetch(env.root + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
await check('/tokenize a prompt = preft tokenize, with count and max_model_len', async () => {
  const r = await post('/tokenize', { model: env.model, prompt: 'The Congress shall' });
  return equal(r.body, { count: 3, max_model_len: 512, tokens: tokenize('The Congress shall'), token_strs: null });
});
await check('/tokenize return_token_strs', async () => {
  const r = await post('/tokenize', { prompt: 'The Congress', return_token_strs: true });
  return equal(r.body.token_strs, ['The', 'ĠCongress']);
});
await check('/tokenize messages = the prompt tokens a chat request counts', async () => {
  const messages = [{ role: 'system', content: 'On the economy.' }, { role: 'user', content: 'What of our debt?' }];
  const t = await post('/tokenize', { model: env.adapters[0], messages, add_generation_prompt: true });
  const chat = await c.chat.completions.create({ model: env.model, messages, max_tokens: 1 });
  const noPrompt = await post('/tokenize', { messages, add_generation_prompt: false });
  return equal([t.body.count, t.body.tokens.length, noPrompt.body.count < t.body.count],
    [chat.usage.prompt_tokens, chat.usage.prompt_tokens, true]);
});
await check('/detokenize(/tokenize(text)) = text', async () => {
  const text = 'Fellow-Citizens of the Senate';
  const t = await post('/tokenize', { prompt: text });
  const d = await post('/detokenize', { tokens: t.body.tokens });
  return equal(d.body, { prompt: text });
});
const badTok = async (name, path, body, status, param) =>
  check(`${path} ${name}: ${status} naming ${param}`, async () => {
    const r = await post(path, body);
    return equal([r.status, r.body.error?.param ?? null], [status, param]);
  });
await badTok('without prompt', '/tokenize', {}, 400, 'prompt');
await badTok('add_special_tokens "no"', '/tokenize', { prompt: 'x', add_special_tokens: 'no' }, 400, 'add_special_tokens');
await badTok('of an unknown model', '/tokenize', { model: 'nope', prompt: 'x' }, 404, 'model');
await badTok('of bad messages', '/tokenize', { messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0]');
await badTok('of "x"', '/detokenize', { tokens: 'x' }, 400, 'tokens');
await badTok('of an id outside the vocabulary', '/detokenize', { tokens: [1, 8192] }, 400, 'tokens');
await check('/version = preft --version', async () => {
  const v = await (await fetch(`${env.root}/version`)).json();
  return preft(['--version']).includes(v.version) || v;
});

// ---- CORS ---------------------------------------------------------------------------------
await check('preflight from the allowed origin: 204, no key needed, the Access-Control-* headers', async () => {
  const r = await fetch(`${env.url}/chat/completions`, { method: 'OPTIONS', headers: {
    Origin: env.corsOrigin, 'Access-Control-Request-Method': 'POST',
    'Access-Control-Request-Headers': 'authorization,content-type' } });
  const h = (k) => r.headers.get(k);
  return equal([r.status, h('access-control-allow-origin'), h('access-control-allow-methods'),
    h('access-control-allow-headers'), h('vary')],
  [204, env.corsOrigin, 'GET, POST, OPTIONS', 'authorization,content-type', 'Origin']);
});
await check('preflight from another origin: 403 naming --cors-origin, no Access-Control-Allow-Origin', async () => {
  const r = await fetch(`${env.url}/models`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example',
    'Access-Control-Request-Method': 'GET' } });
  const b = await r.json();
  return equal([r.status, r.headers.get('access-control-allow-origin'), /--cors-origin/.test(b.error.message)],
    [403, null, true]);
});
await check('a request from the allowed origin carries Access-Control-Allow-Origin (also a 401)', async () => {
  const ok = await fetch(`${env.url}/models`, { headers: { Origin: env.corsOrigin, Authorization: `Bearer ${env.key}` } });
  const denied = await fetch(`${env.url}/models`, { headers: { Origin: env.corsOrigin } });
  return equal([ok.status, ok.headers.get('access-control-allow-origin'), denied.status,
    denied.headers.get('access-control-allow-origin')], [200, env.corsOrigin, 401, env.corsOrigin]);
});
await check('no Origin or another origin: no CORS headers', async () => {
  const a = await fetch(`${env.url}/models`, { headers: { Authorization: `Bearer ${env.key}` } });
  const b = await fetch(`${env.url}/models`, { headers: { Origin: 'http://evil.example', Authorization: `Bearer ${env.key}` } });
  return equal([a.headers.get('access-control-allow-origin'), b.headers.get('access-control-allow-origin')], [null, null]);
});
await check('a streamed response from the allowed origin carries the header too', async () => {
  const r = await fetch(`${env.url}/completions`, { method: 'POST', headers: { Origin: env.corsOrigin,
    Authorization: `Bearer ${env.key}`, 'Content-Type': 'application/json' },
  body: JSON.stringify({ prompt: 'Taxes', max_tokens: 2, stream: true }) });
  await r.text();
  return equal([r.status, r.headers.get('access-control-allow-origin')], [200, env.corsOrigin]);
});

finish();
