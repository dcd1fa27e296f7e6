// The official Ollama client against Potluck's Ollama-compatible API:
// list, show, chat (whole and streamed), generate, embed, and an unknown
// model.
import { Ollama } from 'ollama';
import { need, model, recordingFetch, check, done } from './common.mjs';

const ollama = new Ollama({ host: need('POTLUCK_OLLAMA_URL'), fetch: recordingFetch });
const messages = [{ role: 'user', content: 'Tell me a story' }];
const options = { temperature: 0, num_predict: 16 };

const list = await ollama.list();
check(list.models.some((m) => m.name === model), `list: ${JSON.stringify(list)}`);

const show = await ollama.show({ model: model + ':latest' });
check(show.capabilities.includes('completion') && show.details.format === 'gguf', `show: ${JSON.stringify(show)}`);

const chat = await ollama.chat({ model, messages, options });
check(chat.done && chat.message.role === 'assistant' && chat.message.content.length > 0 && chat.eval_count > 0,
  `chat: ${JSON.stringify(chat)}`);

let parts = 0, streamed = '', last = null;
for await (const part of await ollama.chat({ model, messages, options, stream: true })) {
  parts++;
  streamed += part.message.content;
  last = part;
}
check(parts >= 2 && last.done && streamed === chat.message.content,
  `streamed chat (${parts} parts) ${JSON.stringify(streamed)} differs from ${JSON.stringify(chat.message.content)}`);

const gen = await ollama.generate({ model, prompt: 'Once upon a time', options });
check(gen.done && gen.response.length > 0, `generate: ${JSON.stringify(gen)}`);

const emb = await ollama.embed({ model, input: ['a story', 'a cat'] });
check(emb.embeddings.length === 2 && emb.embeddings[0].length > 0, `embed: ${JSON.stringify(emb).slice(0, 200)}`);

let unknown = 0;
try {
  await ollama.chat({ model: 'no-such-model', messages });
} catch (e) {
  if (e.name !== 'ResponseError') throw e; // the class is not exported
  unknown = e.status_code;
}
check(unknown === 404, `unknown model: ${unknown}`);

done({
  models: list.models.map((m) => m.name), capabilities: show.capabilities, chat: chat.message.content,
  stream_parts: parts, generate: gen.response, embedding_dims: emb.embeddings[0].length, unknown_model_status: unknown,
});
