// The official OpenAI client: models, chat (whole and streamed with
// usage), the Responses API (whole and streamed), embeddings, and an
// unknown model.
import OpenAI from 'openai';
import { need, model, recordingFetch, check, expectStatus, done } from './common.mjs';

const client = new OpenAI({
  baseURL: need('POTLUCK_BASE_URL') + '/v1', apiKey: process.env.POTLUCK_API_KEY || 'unused',
  maxRetries: 0, timeout: 60_000, fetch: recordingFetch,
});

const models = [];
for await (const m of client.models.list()) models.push(m);
const listed = models.find((m) => m.id === model);
check(listed, `models.list() = ${models.map((m) => m.id)}, missing ${model}`);
const capabilities = listed.potluck?.capabilities ?? [];

const messages = [{ role: 'user', content: 'Tell me a story' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
check(chat.choices[0].message.content?.length > 0, 'empty chat completion');

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let chunks = 0, streamed = '', usage = null;
for await (const chunk of stream) {
  chunks++;
  streamed += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) usage = chunk.usage;
}
check(chunks >= 2 && streamed.length > 0, `stream had ${chunks} chunks`);
check(usage?.completion_tokens > 0, `stream usage ${JSON.stringify(usage)}`);

// The answers stop at max_output_tokens: OpenAI calls such a response
// incomplete, and ends its stream with response.incomplete.
const cut = (r) => r?.status === 'incomplete' && r.incomplete_details?.reason === 'max_output_tokens' && r.model === model;
const response = await client.responses.create({ model, input: 'Tell me a story', max_output_tokens: 16, temperature: 0 });
check(cut(response) && response.output_text.length > 0, `responses.create: ${JSON.stringify(response)}`);

const events = await client.responses.create({ model, input: 'Tell me a story', max_output_tokens: 16, temperature: 0, stream: true });
let deltas = 0, ended = null;
for await (const e of events) {
  if (e.type === 'response.output_text.delta') deltas++;
  if (e.type === 'response.completed' || e.type === 'response.incomplete') ended = e.response;
}
check(deltas > 0 && cut(ended), `responses stream: ${deltas} deltas, ended with ${JSON.stringify(ended)}`);

// The SDK's stream helper rebuilds the response from the events, and
// checks their sequence numbers, output and content indexes on the way.
const helper = client.responses.stream({ model, input: 'Tell me a story', max_output_tokens: 16, temperature: 0 });
const final = await helper.finalResponse();
check(cut(final) && final.output_text.length > 0, `responses.stream: ${JSON.stringify(final)}`);

const emb = await client.embeddings.create({ model, input: ['a story', 'a cat'] });
check(emb.data.length === 2 && emb.data[0].embedding.length > 0 &&
  emb.data[0].embedding.length === emb.data[1].embedding.length, 'embeddings');

const unknown = await expectStatus(
  () => client.chat.completions.create({ model: 'no-such-model', messages }), OpenAI.NotFoundError, 404);

done({
  models: models.map((m) => m.id), capabilities, chat: chat.choices[0].message.content, stream_chunks: chunks,
  usage, response: response.output_text, response_deltas: deltas, embedding_dims: emb.data[0].embedding.length,
  unknown_model_status: unknown.status,
});
