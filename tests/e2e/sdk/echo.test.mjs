// echo.test.mjs - `echo` and prompt log-probabilities on /v1/completions
// through the SDK: the echoed text and tokens, the prompt tokens'
// logprobs (OpenAI's legacy form, first one null) and vLLM's
// prompt_logprobs (with ranks) against log-softmax of `preft logits`
// rows, with and without an adapter; max_tokens 0 scores the prompt only;
// a stream starts with the prompt; bad combinations are 400s naming the field.
import { OpenAI, check, checkError, client, collect, env, equal, finish, logits, logprob, tokenize } from './lib.mjs';

const c = client();
const [lora] = env.adapters;
const prompt = 'The Congress shall';
const ids = tokenize(prompt);
const rank = (row, id) => 1 + row.filter((x) => x > row[id]).length;
const near = (a, b) => Math.abs(a - b) <= 1e-4;

const plain = await c.completions.create({ model: env.model, prompt, max_tokens: 3, temperature: 0 });
const echoed = await c.completions.create({ model: env.model, prompt, max_tokens: 3, temperature: 0, echo: true, logprobs: 2 });
const ch = echoed.choices[0], lp = ch.logprobs;
await check('echo: text = prompt + the completion', () => equal(ch.text, prompt + plain.choices[0].text));
await check('echo logprobs: the prompt tokens come first, the first without a logprob', () =>
  equal([lp.tokens.length, lp.token_logprobs[0], lp.top_logprobs[0], lp.text_offset.slice(0, 2)], [ids.length + 3, null, null, [0, 3]]));
await check('echo logprobs of the prompt = log-softmax of preft logits', () => {
  const rows = logits(ids);
  const bad = ids.slice(1).map((id, i) => [lp.token_logprobs[i + 1], logprob(rows[i], id)]).filter(([a, b]) => !near(a, b));
  return bad.length === 0 || bad;
});
await check('echo: the completion text offsets count from the start of the prompt', () =>
  equal(lp.text_offset[ids.length], prompt.length));
await check('max_tokens 0 with echo: the prompt scored, nothing generated', async () => {
  const r = await c.completions.create({ model: env.model, prompt: ids, max_tokens: 0, echo: true, logprobs: 1 });
  const x = r.choices[0];
  return equal([x.text, x.logprobs.tokens.length, x.finish_reason, r.usage.completion_tokens, x.logprobs.token_logprobs.slice(1)],
    [prompt, ids.length, 'length', 0, lp.token_logprobs.slice(1, ids.length)]);
});
const promptLp = async (model, adapter) => {
  const r = await c.completions.create({ model, prompt: ids, max_tokens: 1, temperature: 0, prompt_logprobs: 3 });
  const pl = r.choices[0].prompt_logprobs, rows = logits(ids, { adapter });
  if (pl.length !== ids.length || pl[0] !== null) return pl;
  for (let t = 1; t < ids.length; t++) {
    const own = pl[t][ids[t]], row = rows[t - 1];
    if (!own || !near(own.logprob, logprob(row, ids[t])) || own.rank !== rank(row, ids[t])) return [t, own, logprob(row, ids[t]), rank(row, ids[t])];
    const best = Object.entries(pl[t]).find(([, v]) => v.rank === 1);
    const argmax = row.indexOf(Math.max(...row));
    if (!best || Number(best[0]) !== argmax || !near(best[1].logprob, logprob(row, argmax))) return [t, best, argmax];
    if (Object.keys(pl[t]).length < 3) return pl[t];
  }
  return true;
};
await check('prompt_logprobs 3: each prompt token (logprob, rank) and the best = preft logits', () => promptLp(env.model));
await check(`prompt_logprobs with adapter ${lora} = preft logits -a`, () => promptLp(lora, lora));
await check('a streamed echo starts with the prompt', async () => {
  const chunks = await collect(await c.completions.create({ model: env.model, prompt, max_tokens: 3, temperature: 0,
    echo: true, stream: true }));
  return equal([chunks[0].choices[0].text, chunks.map((x) => x.choices[0]?.text ?? '').join('')], [prompt, ch.text]);
});
await check('echo with two prompts and n=2: each choice starts with its prompt', async () => {
  const r = await c.completions.create({ model: env.model, prompt: ['Taxes', 'The army'], n: 2, max_tokens: 2, echo: true });
  return equal(r.choices.map((x) => x.text.startsWith(['Taxes', 'The army'][Math.floor(x.index / 2)])), [true, true, true, true]);
});
const bad = (name, body, param, chat = false) =>
  checkError(name, () => (chat ? c.chat.completions.create({ model: env.model, messages: [{ role: 'user', content: 'x' }], ...body })
    : c.completions.create({ model: env.model, prompt, ...body })), OpenAI.BadRequestError, { status: 400, param });
await bad('max_tokens 0 without echo', { max_tokens: 0 }, 'max_tokens');
await bad('max_tokens 0 with echo, streamed', { max_tokens: 0, echo: true, stream: true }, 'max_tokens');
await bad('prompt_logprobs 21', { prompt_logprobs: 21 }, 'prompt_logprobs');
await bad('echo not a boolean', { echo: 'yes' }, 'echo');
await bad('echo on chat', { echo: true }, 'echo', true);
await bad('prompt_logprobs on chat', { prompt_logprobs: 1 }, 'prompt_logprobs', true);

finish();
