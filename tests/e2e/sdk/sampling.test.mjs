// sampling.test.mjs - the logits processors through the SDK (extra body
// fields): greedy output under repetition / frequency / presence penalties
// and logit_bias equals the argmax of `preft logits` rows processed here by
// vLLM's formulas (a reimplementation in JS, independent of penalties.c);
// logprobs stay those of the raw rows; min_tokens holds EOS back; every
// field's bad values are a BadRequestError naming it.
import { OpenAI, check, checkError, client, env, equal, finish, logits, logprob, tokenize } from './lib.mjs';

const c = client();
const prompt = tokenize('The Congress of the United States');
const eos = 0; // the default model's <|endoftext|>

// vLLM's processors on one row (float64): logit_bias, repetition over
// prompt + generated, frequency and presence over generated
function processed(row, prompt, gen, { repetition = 1, frequency = 0, presence = 0, bias = {} }) {
  const x = Float64Array.from(row);
  for (const [id, b] of Object.entries(bias)) x[Number(id)] += b;
  const counts = new Map();
  for (const t of gen) counts.set(t, (counts.get(t) || 0) + 1);
  const seen = new Set([...prompt, ...gen]);
  for (const t of seen) x[t] = x[t] > 0 ? x[t] / repetition : x[t] * repetition;
  for (const [t, n] of counts) x[t] -= frequency * n + presence;
  return x;
}
const argmax = (x) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);

// body: the request's fields; ref: the same settings for processed()
async function greedyMatches(name, body, ref, n = 10) {
  await check(name, async () => {
    const r = await c.completions.create({ model: env.model, prompt, max_tokens: n, temperature: 0, ignore_eos: true,
      return_token_ids: true, logprobs: 0, ...body });
    const gen = r.choices[0].token_ids;
    const rows = logits([...prompt, ...gen]);
    for (let i = 0; i < gen.length; i++) {
      const row = rows[prompt.length - 1 + i];
      const want = argmax(processed(row, prompt, gen.slice(0, i), ref));
      if (want !== gen[i]) return `token ${i}: got ${gen[i]}, want ${want} (ids ${gen})`;
      const lp = r.choices[0].logprobs.token_logprobs[i], raw = logprob(row, gen[i]);
      if (Math.abs(lp - raw) > 1e-3) return `token ${i}: logprob ${lp}, raw ${raw}`;
    }
    return gen.length === n || gen;
  });
}

const plain = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true });
await greedyMatches('repetition_penalty 1.5 = reference argmax, raw logprobs', { repetition_penalty: 1.5 }, { repetition: 1.5 });
await greedyMatches('repetition_penalty 0.7 (rewards repeats) = reference', { repetition_penalty: 0.7 }, { repetition: 0.7 });
await greedyMatches('frequency_penalty 1.2 = reference', { frequency_penalty: 1.2 }, { frequency: 1.2 });
await greedyMatches('presence_penalty 1.8 = reference', { presence_penalty: 1.8 }, { presence: 1.8 });
await greedyMatches('all three and logit_bias = reference',
  { repetition_penalty: 1.2, frequency_penalty: 0.5, presence_penalty: -0.4, logit_bias: { 11: 4.5, 13: -3 } },
  { repetition: 1.2, frequency: 0.5, presence: -0.4, bias: { 11: 4.5, 13: -3 } });
await check('the reference is not vacuous: without the penalty its argmax differs somewhere', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true,
    repetition_penalty: 1.5, return_token_ids: true });
  const gen = r.choices[0].token_ids, rows = logits([...prompt, ...gen]);
  return gen.some((t, i) => argmax(rows[prompt.length - 1 + i]) !== t) || gen;
});
await check('a penalty changes the greedy text', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true,
    repetition_penalty: 1.5 });
  return r.choices[0].text !== plain.choices[0].text || r.choices[0].text;
});
await check('logit_bias +100 on a token: every token is it', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 5, temperature: 0.8, seed: 1,
    ignore_eos: true, logit_bias: { 42: 100 }, return_token_ids: true });
  return equal(r.choices[0].token_ids, [42, 42, 42, 42, 42]);
});
await check('logit_bias on EOS ends at once (finish stop, 1 token)', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 20, temperature: 0, logit_bias: { [eos]: 100 } });
  return equal([r.choices[0].finish_reason, r.usage.completion_tokens], ['stop', 1]);
});
await check('min_tokens 6 holds EOS back for 6 tokens', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 20, temperature: 0, min_tokens: 6,
    logit_bias: { [eos]: 100 }, return_token_ids: true });
  const ids = r.choices[0].token_ids;
  return equal([r.choices[0].finish_reason, ids.length, ids.slice(0, 6).includes(eos), ids[6]], ['stop', 7, false, eos]);
});
await check('min_tokens also holds back stop_token_ids', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 20, temperature: 0, min_tokens: 3,
    ignore_eos: true, stop_token_ids: [42], logit_bias: { 42: 100 }, return_token_ids: true });
  return equal(r.choices[0].token_ids.length, 4);
});
await check('min_tokens: no stop string ends the generation before it', async () => {
  const base = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true,
    logprobs: 0 });
  const toks = base.choices[0].logprobs.tokens, stop = toks[0];
  const early = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true, stop });
  const late = await c.completions.create({ model: env.model, prompt, max_tokens: 10, temperature: 0, ignore_eos: true, stop,
    min_tokens: 3 });
  const head = toks.slice(0, 3).join('');
  return (early.choices[0].text === '' && early.choices[0].finish_reason === 'stop' &&
    late.choices[0].text.startsWith(head)) || [stop, early.choices[0].text, late.choices[0].text];
});
await check('ignore_eos: EOS does not end the generation', async () => {
  const r = await c.completions.create({ model: env.model, prompt, max_tokens: 5, temperature: 0, ignore_eos: true,
    logit_bias: { [eos]: 100 } });
  return equal([r.choices[0].finish_reason, r.usage.completion_tokens], ['length', 5]);
});
await check('chat takes the penalties too', async () => {
  const r = await c.chat.completions.create({ model: env.model, messages: [{ role: 'user', content: 'Taxes' }],
    max_tokens: 8, temperature: 0, frequency_penalty: 1, presence_penalty: 1, logit_bias: { 42: 1 } });
  return r.choices[0].message.content.length > 0 || r;
});

const bad = (name, body, param) =>
  checkError(name, () => c.completions.create({ model: env.model, prompt, max_tokens: 4, ...body }),
    OpenAI.BadRequestError, { status: 400, param });
await bad('presence_penalty 3', { presence_penalty: 3 }, 'presence_penalty');
await bad('frequency_penalty "x"', { frequency_penalty: 'x' }, 'frequency_penalty');
await bad('repetition_penalty 0', { repetition_penalty: 0 }, 'repetition_penalty');
await bad('logit_bias an array', { logit_bias: [1] }, 'logit_bias');
await bad('logit_bias 101', { logit_bias: { 5: 101 } }, 'logit_bias');
await bad('logit_bias key not an id', { logit_bias: { abc: 1 } }, 'logit_bias');
await bad('logit_bias id outside the vocabulary', { logit_bias: { 8192: 1 } }, 'logit_bias');
await bad('min_tokens -1', { min_tokens: -1 }, 'min_tokens');
await bad('min_tokens above max_tokens', { min_tokens: 5 }, 'min_tokens');
await bad('ignore_eos not a boolean', { ignore_eos: 1 }, 'ignore_eos');

finish();
