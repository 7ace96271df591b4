// The official `openai` npm SDK against the node's OpenAI-compatible API: the calls an
// application makes (models, chat plain and streamed, completions, embeddings) and the typed
// errors it catches. AICOIN_API_URL is the API's base (`http://host:port/v1`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const CHAT = 'smollm2-135m-instruct';
const EMBED = 'all-minilm-l6-v2';
const QUESTION = 'What is the capital of France? Answer in one sentence.';
const client = new OpenAI({ baseURL: process.env.AICOIN_API_URL, apiKey: 'unused', maxRetries: 0 });

test('models are listed and retrievable', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.ok(ids.includes(CHAT) && ids.includes(EMBED), `models: ${ids}`);
  const model = await client.models.retrieve(CHAT);
  assert.equal(model.id, CHAT);
  assert.equal(model.object, 'model');
});

test('chat answers with usage', async () => {
  const r = await client.chat.completions.create({
    model: CHAT, messages: [{ role: 'user', content: QUESTION }], temperature: 0, max_tokens: 30,
  });
  assert.match(r.choices[0].message.content, /Paris/);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('streamed chat gives the same text as the plain answer, and usage at the end', async () => {
  const request = { model: CHAT, messages: [{ role: 'user', content: QUESTION }], temperature: 0, max_tokens: 30 };
  const plain = await client.chat.completions.create(request);
  const stream = await client.chat.completions.create({
    ...request, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let pieces = 0;
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta.content;
    if (piece) {
      pieces += 1;
      text += piece;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(pieces > 2, 'the answer arrives in pieces');
  assert.equal(text, plain.choices[0].message.content);
  assert.deepEqual(usage, plain.usage);
});

test('completions continue a prompt to max_tokens', async () => {
  const r = await client.completions.create({
    model: CHAT, prompt: 'Once upon a time, there was a little robot who', max_tokens: 9, temperature: 0,
  });
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 9);
});

test('embeddings as floats and as the SDK\'s default base64 agree, and rank meaning', async () => {
  const input = ['A man is eating food.', 'A man is eating a piece of bread.'];
  const floats = await client.embeddings.create({ model: EMBED, input, encoding_format: 'float' });
  const decoded = await client.embeddings.create({ model: EMBED, input });
  assert.equal(floats.data.length, 2);
  assert.equal(floats.data[0].embedding.length, 384);
  for (let i = 0; i < 2; i++) {
    floats.data[i].embedding.forEach((x, j) => assert.ok(Math.abs(x - decoded.data[i].embedding[j]) < 1e-6));
  }
  const [a, b] = floats.data.map((d) => d.embedding);
  const cosine = a.reduce((sum, x, i) => sum + x * b[i], 0);
  assert.ok(Math.abs(cosine - 0.755) < 0.005, `cosine ${cosine}`);
  assert.ok(floats.usage.prompt_tokens > 0);
});

test('errors arrive as the SDK\'s typed exceptions', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'hi' }], temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature',
  );
  await assert.rejects(
    client.completions.create({ model: CHAT, prompt: 'hi', max_tokens: 100000 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
  );
  await assert.rejects(
    client.embeddings.create({ model: EMBED, input: [] }),
    (e) => e instanceof OpenAI.BadRequestError,
  );
});
