// basics.test.mjs - the OpenAI SDK against preft serve: the model list,
// completions and chat (whole and streamed) equal to `preft generate`,
// adapters chosen by `model`, n and seeds, logprobs, usage, and errors
// surfacing as the SDK's exception classes.
import { OpenAI, check, checkError, client, collect, env, equal, finish, generate, qwenClient } from './lib.mjs';

const c = client();
const [lora, reft] = env.adapters;

// ---- models ---------------------------------------------------------------------------
const ids = [];
for await (const m of c.models.list()) ids.push(m.id);
await check('models.list: the base model and both adapters', () => equal(ids.sort(), [env.model, ...env.adapters].sort()));
await check('models.retrieve(adapter): parent is the base model', async () => {
  const m = await c.models.retrieve(lora);
  return m.id === lora && m.parent === env.model ? true : m;
});

// ---- completions ------------------------------------------------------------------------
const prompt = 'The quick brown fox';
const greedy = { max_tokens: 12, temperature: 0, ignore_eos: true };
const whole = await c.completions.create({ model: env.model, prompt, ...greedy });
await check('completion text = preft generate', () => equal(whole.choices[0].text, generate({ prompt, n: 12 })));
await check('completion object, finish_reason length, usage', () =>
  equal([whole.object, whole.choices[0].finish_reason, whole.usage.completion_tokens], ['text_completion', 'length', 12]));
for (const a of [lora, reft])
  await check(`adapter ${a} by model: completion = preft generate -a`, async () => {
    const r = await c.completions.create({ model: a, prompt, ...greedy });
    return equal(r.choices[0].text, generate({ prompt, n: 12, adapter: a }));
  });
await check(`adapter ${reft} changes the text`, async () => {
  const r = await c.completions.create({ model: reft, prompt, ...greedy });
  return r.choices[0].text !== whole.choices[0].text || r.choices[0].text;
});
await check(`adapter ${lora} changes the logprobs`, async () => {
  const lp = async (model) =>
    (await c.completions.create({ model, prompt, max_tokens: 1, temperature: 0, logprobs: 1 })).choices[0].logprobs.token_logprobs[0];
  const [a, b] = [await lp(env.model), await lp(lora)];
  return a !== b || [a, b];
});
await check('streamed completion = whole completion', async () => {
  const chunks = await collect(await c.completions.create({ model: env.model, prompt, ...greedy, stream: true }));
  return equal(chunks.map((x) => x.choices[0]?.text ?? '').join(''), whole.choices[0].text);
});
await check('completion logprobs: 12 tokens, 3 alternatives each, <= 0', async () => {
  const r = await c.completions.create({ model: env.model, prompt, ...greedy, logprobs: 3 });
  const lp = r.choices[0].logprobs;
  const ok = lp.tokens.length === 12 && lp.token_logprobs.every((x) => x <= 0) &&
    lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3);
  return ok || lp;
});
await check('n=2 with a seed: two samples, reproducible', async () => {
  const req = { model: env.model, prompt, max_tokens: 8, temperature: 1, seed: 5, n: 2, ignore_eos: true };
  const a = await c.completions.create(req), b = await c.completions.create(req);
  const ta = a.choices.map((x) => x.text), tb = b.choices.map((x) => x.text);
  return (ta.length === 2 && ta[0] !== ta[1] && equal(ta, tb) === true) || [ta, tb];
});

// ---- chat -------------------------------------------------------------------------------
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
const chatWant = generate({ prompt: 'Hi', system: 'Be brief.', chat: true, n: 6 });
const chat = await c.chat.completions.create({ model: env.model, messages, max_tokens: 6, temperature: 0, ignore_eos: true });
await check('chat content = preft generate --chat', () => equal(chat.choices[0].message.content, chatWant));
await check('chat object and role', () => equal([chat.object, chat.choices[0].message.role], ['chat.completion', 'assistant']));
await check('chat with an adapter = preft generate --chat -a', async () => {
  const r = await c.chat.completions.create({ model: reft, messages, max_tokens: 6, temperature: 0, ignore_eos: true });
  return equal(r.choices[0].message.content, generate({ prompt: 'Hi', system: 'Be brief.', chat: true, n: 6, adapter: reft }));
});
await check('chat stream: role first, content = whole, usage last', async () => {
  const chunks = await collect(await c.chat.completions.create({
    model: env.model, messages, max_tokens: 6, temperature: 0, ignore_eos: true, stream: true,
    stream_options: { include_usage: true },
  }));
  const text = chunks.map((x) => x.choices[0]?.delta?.content ?? '').join('');
  const last = chunks[chunks.length - 1];
  return equal([chunks[0].choices[0].delta.role, text, last.usage?.completion_tokens], ['assistant', chatWant, 6]);
});
await check('chat stream helper (runner) assembles the message', async () => {
  const s = c.chat.completions.stream({ model: env.model, messages, max_tokens: 6, temperature: 0, ignore_eos: true });
  const done = await s.finalChatCompletion();
  return equal(done.choices[0].message.content, chatWant);
});
await check('chat logprobs: 6 entries with 2 alternatives', async () => {
  const r = await c.chat.completions.create({ model: env.model, messages, max_tokens: 6, temperature: 0, ignore_eos: true,
    logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs.content;
  return (content.length === 6 && content.every((t) => t.top_logprobs.length === 2 && t.logprob <= 0)) || content;
});

await check('the qwen server: chat = preft generate --chat (Qwen3 template)', async () => {
  const r = await qwenClient().chat.completions.create({ model: env.qwenModel, messages, max_tokens: 6, temperature: 0,
    ignore_eos: true });
  return equal(r.choices[0].message.content, generate({ prompt: 'Hi', system: 'Be brief.', chat: true, n: 6, model: env.qwenDir }));
});

// ---- errors as the SDK's classes ----------------------------------------------------------
await checkError('a wrong API key: AuthenticationError',
  () => client({ apiKey: 'wrong' }).models.list(), OpenAI.AuthenticationError, { status: 401 });
await checkError('an unknown model: NotFoundError naming model',
  () => c.completions.create({ model: 'nope', prompt: 'x' }), OpenAI.NotFoundError, { status: 404, param: 'model' });
await checkError('temperature 3: BadRequestError naming temperature',
  () => c.completions.create({ model: env.model, prompt: 'x', temperature: 3 }), OpenAI.BadRequestError,
  { status: 400, param: 'temperature' });
await checkError('chat without messages: BadRequestError naming messages',
  () => c.chat.completions.create({ model: env.model }), OpenAI.BadRequestError, { status: 400, param: 'messages' });
await checkError('a streamed request with a bad field fails before the stream',
  () => c.chat.completions.create({ model: env.model, messages, stream: true, top_p: 0 }), OpenAI.BadRequestError,
  { status: 400, param: 'top_p' });
await checkError('models.retrieve of an unknown id: NotFoundError',
  () => c.models.retrieve('nope'), OpenAI.NotFoundError, { status: 404 });
await checkError('a server that is not there: APIConnectionError',
  () => client({ baseURL: 'http://127.0.0.1:1/v1' }).models.list(), OpenAI.APIConnectionError);

finish();
