// structured.test.mjs - structured output and tool calls through the SDK,
// on the qwen server (a random model with Qwen3's tokenizer and its
// Hermes-style template): chat.completions.parse with a json_schema gives
// message.parsed that validates; parse with strict function tools gives
// parsed_arguments; a streamed tool call is assembled by the SDK's stream
// helper into the whole response's call; the vLLM fields (guided_choice,
// guided_regex, guided_json) and llama.cpp's grammar work as extra body
// fields on completions; bad schemas are BadRequestErrors naming the field.
// Random weights write nonsense: every check is on what the grammar
// guarantees, whatever tokens are drawn.
import { OpenAI, check, checkError, env, finish, qwenClient } from './lib.mjs';

const c = qwenClient();
const model = env.qwenModel;
const messages = [{ role: 'user', content: 'A person, please.' }];

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    age: { type: 'integer' },
    color: { enum: ['red', 'green', null] },
    tags: { type: 'array', items: { type: 'boolean' }, maxItems: 3 },
  },
  required: ['name', 'age', 'color', 'tags'],
  additionalProperties: false,
};
function validPerson(p) {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return false;
  const keys = Object.keys(p).sort().join(',');
  return keys === 'age,color,name,tags' && typeof p.name === 'string' && [...p.name].length <= 8 &&
    Number.isInteger(p.age) && ['red', 'green', null].includes(p.color) && Array.isArray(p.tags) &&
    p.tags.length <= 3 && p.tags.every((t) => typeof t === 'boolean');
}
const response_format = { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } };

for (const seed of [1, 2, 3]) {
  await check(`chat.completions.parse (json_schema, seed ${seed}): message.parsed validates`, async () => {
    const r = await c.chat.completions.parse({ model, messages, max_tokens: 300, temperature: 1, seed, response_format });
    const m = r.choices[0].message;
    return (validPerson(m.parsed) && JSON.stringify(JSON.parse(m.content)) === JSON.stringify(m.parsed)) || r.choices[0];
  });
}

await check('streamed json_schema: the assembled content validates', async () => {
  const stream = c.chat.completions.stream({ model, messages, max_tokens: 300, temperature: 1, seed: 4, response_format });
  const r = await stream.finalChatCompletion();
  return validPerson(JSON.parse(r.choices[0].message.content)) || r.choices[0];
});

await check('response_format json_object: the content starts an object', async () => {
  const r = await c.chat.completions.create({ model, messages, max_tokens: 30, temperature: 1, seed: 5,
    response_format: { type: 'json_object' } });
  return r.choices[0].message.content.startsWith('{') || r.choices[0];
});

// ---- tools ----------------------------------------------------------------------------------
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', strict: true,
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'get_time', strict: true,
    parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } }, required: ['zone'],
      additionalProperties: false } } },
];
function validCall(f, args) {
  if (f === 'get_weather')
    return Object.keys(args).sort().join(',') === 'city,unit' && typeof args.city === 'string' &&
      [...args.city].length <= 10 && ['c', 'f'].includes(args.unit);
  if (f === 'get_time') return Object.keys(args).join(',') === 'zone' && typeof args.zone === 'string';
  return false;
}
const weather = { type: 'function', function: { name: 'get_weather' } };
const sameJson = (a, b) => JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
const wmsgs = [{ role: 'user', content: 'Weather in Paris?' }];

const whole = await c.chat.completions.create({ model, messages: wmsgs, tools, tool_choice: weather, max_tokens: 200,
  temperature: 1, seed: 11 });
await check('named tool_choice: one valid get_weather call, finish_reason tool_calls', async () => {
  const ch = whole.choices[0], calls = ch.message.tool_calls || [];
  return (ch.finish_reason === 'tool_calls' && calls.length === 1 && calls[0].type === 'function' &&
    calls[0].id.startsWith('call_') && calls[0].function.name === 'get_weather' &&
    validCall('get_weather', JSON.parse(calls[0].function.arguments))) || ch;
});

await check('streamed tool call: the SDK assembles the whole response\'s call', async () => {
  const stream = c.chat.completions.stream({ model, messages: wmsgs, tools, tool_choice: weather, max_tokens: 200,
    temperature: 1, seed: 11 });
  const r = await stream.finalChatCompletion();
  const got = r.choices[0].message.tool_calls, want = whole.choices[0].message.tool_calls;
  return (r.choices[0].finish_reason === 'tool_calls' && got.length === 1 &&
    got[0].function.name === want[0].function.name &&
    sameJson(got[0].function.arguments, want[0].function.arguments) && got[0].id.startsWith('call_')) || { got, want };
});

// The arguments stream as the model writes them (as vLLM and OpenAI stream
// them): a first delta with index, id and name, then several argument
// fragments, which join to JSON equal to the whole response's arguments.
await check('streamed tool call: index, id, name first, then several argument fragments that parse', async () => {
  const stream = await c.chat.completions.create({ model, messages: wmsgs, tools, tool_choice: weather, max_tokens: 200,
    temperature: 1, seed: 11, stream: true });
  const deltas = [];
  for await (const chunk of stream) for (const d of chunk.choices[0]?.delta?.tool_calls || []) deltas.push(d);
  const pieces = deltas.slice(1).map((d) => d.function.arguments).filter((a) => a.length > 0);
  const joined = pieces.join('');
  let parsed = null;
  try { parsed = JSON.parse(joined); } catch { /* checked below */ }
  return (deltas.every((d) => d.index === 0) && deltas[0].id && deltas[0].function.name === 'get_weather' &&
    deltas.slice(1).every((d) => !d.id && !d.function.name) && pieces.length > 1 && parsed !== null &&
    validCall('get_weather', parsed) &&
    sameJson(joined, whole.choices[0].message.tool_calls[0].function.arguments)) || { pieces: pieces.length, deltas };
});

await check('tool_choice required, n = 2, parse(): every call has valid parsed_arguments', async () => {
  const r = await c.chat.completions.parse({ model, messages: wmsgs, tools, tool_choice: 'required', max_tokens: 300,
    temperature: 1, seed: 12, n: 2 });
  return r.choices.every((ch) => ch.finish_reason === 'tool_calls' && ch.message.tool_calls.length >= 1 &&
    ch.message.tool_calls.every((t) => validCall(t.function.name, t.function.parsed_arguments))) || r.choices;
});

await check('a tool call and its result go back into the template', async () => {
  const call = whole.choices[0].message.tool_calls[0];
  const r = await c.chat.completions.create({ model, tools, max_tokens: 4, temperature: 0, messages: [...wmsgs,
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: '21 C and sunny' }] });
  return r.choices[0].message.role === 'assistant' || r;
});

await checkError('tool_choice names a function not in tools', () => c.chat.completions.create({ model, messages: wmsgs,
  tools, tool_choice: { type: 'function', function: { name: 'nope' } } }), OpenAI.BadRequestError,
{ status: 400, param: 'tool_choice' });
await checkError('tool_choice required without tools', () => c.chat.completions.create({ model, messages: wmsgs,
  tool_choice: 'required' }), OpenAI.BadRequestError, { status: 400, param: 'tool_choice' });

// ---- vLLM and llama.cpp fields on completions --------------------------------------------------
await check('guided_choice: every choice is one of the strings', async () => {
  const r = await c.completions.create({ model, prompt: 'Pick:', max_tokens: 10, temperature: 1, seed: 3, n: 3,
    guided_choice: ['alpha', 'beta', 'gamma ray'] });
  return r.choices.every((ch) => ['alpha', 'beta', 'gamma ray'].includes(ch.text)) || r.choices;
});
await check('guided_regex: the text matches in full', async () => {
  const re = '[a-z]{1,6}@[a-z]{2,4}\\.(com|org)';
  const r = await c.completions.create({ model, prompt: 'Mail:', max_tokens: 30, temperature: 1, seed: 4, guided_regex: re });
  return new RegExp(`^${re}$`).test(r.choices[0].text) || r.choices[0];
});
await check('guided_json: the text validates', async () => {
  const r = await c.completions.create({ model, prompt: 'JSON:', max_tokens: 300, temperature: 1, seed: 6, guided_json: schema });
  return validPerson(JSON.parse(r.choices[0].text)) || r.choices[0];
});
await check('grammar (GBNF): the text matches and the grammar ends the reply', async () => {
  const r = await c.completions.create({ model, prompt: 'Answer:', max_tokens: 20, temperature: 1, seed: 7,
    grammar: 'root ::= ("yes" | "no") ", " [0-9]{1,3}' });
  return (/^(yes|no), [0-9]{1,3}$/.test(r.choices[0].text) && r.choices[0].finish_reason === 'stop') || r.choices[0];
});
await checkError('a schema keyword the grammar cannot enforce', () => c.chat.completions.create({ model, messages,
  response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'email' } } } }),
OpenAI.BadRequestError, { status: 400, param: 'response_format.json_schema.schema' });
await checkError('malformed GBNF', () => c.completions.create({ model, prompt: 'x', grammar: 'root ::= ("a"' }),
  OpenAI.BadRequestError, { status: 400, param: 'grammar' });
await checkError('two constraints at once', () => c.completions.create({ model, prompt: 'x', guided_regex: 'a',
  response_format: { type: 'json_object' } }), OpenAI.BadRequestError, { status: 400, param: 'guided_regex' });

finish();
