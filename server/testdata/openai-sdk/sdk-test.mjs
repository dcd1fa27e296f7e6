// Drives a Potluck node with the official OpenAI client: list models, a chat
// completion, a streamed chat completion and an unknown model. Any exception
// the SDK raises fails the run (non-zero exit).
import OpenAI from 'openai';

const baseURL = process.env.POTLUCK_BASE_URL;
const model = process.env.POTLUCK_MODEL;
if (!baseURL || !model) {
  console.error('set POTLUCK_BASE_URL and POTLUCK_MODEL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: process.env.POTLUCK_API_KEY || 'unused', maxRetries: 0, timeout: 60_000 });

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
if (!ids.includes(model)) throw new Error(`models.list() = ${ids}, missing ${model}`);

const messages = [{ role: 'user', content: 'Tell me a story' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
const content = chat.choices[0].message.content;
if (typeof content !== 'string' || content.length === 0) throw new Error('empty chat completion');

const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true });
let chunks = 0;
let streamed = '';
for await (const chunk of stream) {
  chunks++;
  streamed += chunk.choices[0]?.delta?.content ?? '';
}
if (chunks < 2) throw new Error(`stream had ${chunks} chunks`);

let notFound = 0;
try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
} catch (e) {
  if (!(e instanceof OpenAI.NotFoundError)) throw e;
  notFound = e.status;
}
if (notFound !== 404) throw new Error('unknown model did not raise NotFoundError');

console.log(JSON.stringify({ models: ids, chat: content, stream_chunks: chunks, streamed, unknown_model_status: notFound }));
