// The official Anthropic client: a message, a streamed message, counting
// tokens, and an unknown model, whose error must be Anthropic's.
import Anthropic from '@anthropic-ai/sdk';
import { need, model, recordingFetch, check, expectStatus, done } from './common.mjs';

const client = new Anthropic({
  baseURL: need('POTLUCK_BASE_URL'), apiKey: process.env.POTLUCK_API_KEY || 'unused',
  maxRetries: 0, timeout: 60_000, fetch: recordingFetch,
});
const messages = [{ role: 'user', content: 'Tell me a story' }];

const models = [];
for await (const m of client.models.list()) models.push(m.id);
check(models.includes(model), `models.list() = ${models}, missing ${model}`);

const msg = await client.messages.create({ model, max_tokens: 16, messages, temperature: 0 });
check(msg.type === 'message' && msg.content[0]?.type === 'text' && msg.content[0].text.length > 0,
  `messages.create: ${JSON.stringify(msg)}`);

const stream = client.messages.stream({ model, max_tokens: 16, messages, temperature: 0 });
let texts = 0;
stream.on('text', () => texts++);
const final = await stream.finalMessage();
check(texts > 0 && final.usage.output_tokens > 0, `stream: ${texts} texts, ${JSON.stringify(final)}`);

const count = await client.messages.countTokens({ model, messages });
check(count.input_tokens > 0, `countTokens: ${JSON.stringify(count)}`);

const unknown = await expectStatus(
  () => client.messages.create({ model: 'claude-no-such-model', max_tokens: 4, messages }), Anthropic.NotFoundError, 404);
check(unknown.error?.type === 'error' && unknown.error?.error?.type === 'not_found_error',
  `unknown model error: ${JSON.stringify(unknown.error)}`);

done({
  models, message: msg.content[0].text, stop_reason: msg.stop_reason, stream_texts: texts,
  output_tokens: final.usage.output_tokens, input_tokens: count.input_tokens, unknown_model_status: unknown.status,
});
