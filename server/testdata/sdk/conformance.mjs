// Conformance: every answer of every API, streamed and not, with text and
// with a tool call, checked against the types the vendors' own clients
// publish: OpenAI's (chat completions and Responses), Anthropic's
// (Messages) and Ollama's (chat and generate). The answers are fetched raw,
// written as TypeScript literals and compiled against those types, so a
// missing field, a wrong type or an unknown event type fails with the
// compiler's account of it. Fields the vendors add in their clients, not
// on the wire (Responses' output_text), Ollama's dates, which arrive as
// strings, and its deprecated context are left out of the check. Fields beyond the types pass, as
// the clients ignore them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { need, model, recordingFetch, check, done } from './common.mjs';
import { weather } from './tools_common.mjs';

const base = need('POTLUCK_BASE_URL');
const ollamaBase = need('POTLUCK_OLLAMA_URL');
const headers = { 'content-type': 'application/json', authorization: 'Bearer ' + (process.env.POTLUCK_API_KEY || 'unused') };

// answers collects [type name, value, where] for the compiler.
const answers = [];

async function post(url, body) {
  const resp = await recordingFetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  check(resp.ok, `${url}: ${resp.status} ${await resp.clone().text()}`);
  return resp;
}

// sse returns the data of each server-sent event, parsed.
async function sse(resp) {
  const out = [];
  for (const block of (await resp.text()).split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
    if (data && data !== '[DONE]') out.push(JSON.parse(data));
  }
  return out;
}

async function ndjson(resp) {
  return (await resp.text()).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

const oaTool = { type: 'function', function: { name: weather.name, parameters: weather.parameters } };
const asks = {
  text: {
    chat: { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 },
    responses: { input: 'Hi', max_output_tokens: 16 },
    messages: { messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 },
    ollama: { messages: [{ role: 'user', content: 'Hi' }], options: { num_predict: 8 } },
  },
  tools: {
    chat: { messages: [{ role: 'user', content: 'Weather?' }], max_tokens: 200, tools: [oaTool], tool_choice: 'required' },
    responses: { input: 'Weather?', max_output_tokens: 200, tools: [{ type: 'function', name: weather.name, parameters: weather.parameters }], tool_choice: 'required' },
    messages: { messages: [{ role: 'user', content: 'Weather?' }], max_tokens: 200, tools: [{ name: weather.name, input_schema: weather.parameters }], tool_choice: { type: 'any' } },
    ollama: { messages: [{ role: 'user', content: 'Weather?' }], options: { num_predict: 200 }, tools: [oaTool] },
  },
};

for (const [kind, a] of Object.entries(asks)) {
  const chat = await (await post(`${base}/v1/chat/completions`, { model, ...a.chat })).json();
  answers.push(['ChatCompletion', chat, `chat ${kind}`]);
  for (const c of await sse(await post(`${base}/v1/chat/completions`, { model, ...a.chat, stream: true, stream_options: { include_usage: true } }))) {
    answers.push(['ChatCompletionChunk', c, `chat ${kind} stream`]);
  }
  answers.push(['Response', await (await post(`${base}/v1/responses`, { model, ...a.responses })).json(), `responses ${kind}`]);
  for (const e of await sse(await post(`${base}/v1/responses`, { model, ...a.responses, stream: true }))) {
    answers.push(['ResponseStreamEvent', e, `responses ${kind} stream`]);
  }
  answers.push(['Message', await (await post(`${base}/v1/messages`, { model, ...a.messages })).json(), `messages ${kind}`]);
  for (const e of await sse(await post(`${base}/v1/messages`, { model, ...a.messages, stream: true }))) {
    answers.push(['RawMessageStreamEvent', e, `messages ${kind} stream`]);
  }
  answers.push(['ChatResponse', await (await post(`${ollamaBase}/api/chat`, { model, ...a.ollama, stream: false })).json(), `ollama chat ${kind}`]);
  for (const l of await ndjson(await post(`${ollamaBase}/api/chat`, { model, ...a.ollama, stream: true }))) {
    answers.push(['ChatResponse', l, `ollama chat ${kind} stream`]);
  }
}
answers.push(['GenerateResponse', await (await post(`${ollamaBase}/api/generate`, { model, prompt: 'Hi', stream: false, options: { num_predict: 8 } })).json(), 'ollama generate']);
for (const l of await ndjson(await post(`${ollamaBase}/api/generate`, { model, prompt: 'Hi', options: { num_predict: 8 } }))) {
  answers.push(['GenerateResponse', l, 'ollama generate stream']);
}

// The check: one literal per answer, given to a function of its type. The
// literal's own type is inferred (a const type parameter), then checked
// against the vendor's: a missing field or a wrong type fails, a field
// beyond the type passes, as clients ignore those.
const lines = [
  `import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';`,
  `import type { Response, ResponseStreamEvent } from 'openai/resources/responses/responses';`,
  `import type { Message, RawMessageStreamEvent } from '@anthropic-ai/sdk/resources/messages';`,
  `import type { ChatResponse, GenerateResponse } from 'ollama';`,
  // What arrives on the wire: no client-made output_text, dates as
  // strings, and no context on /api/generate (deprecated in Ollama's docs,
  // which no longer list it; its client still types it).
  `type Wire<T> = T extends Date ? string : T extends readonly (infer U)[] ? Wire<U>[] :`,
  `  T extends object ? { [K in keyof T as K extends 'output_text' | 'context' ? never : K]: Wire<T[K]> } : T;`,
  // Ollama streams its counts and durations on the last line only.
  `type ChatLine = Pick<ChatResponse, 'model' | 'created_at' | 'message' | 'done'>;`,
  `type GenerateLine = Pick<GenerateResponse, 'model' | 'created_at' | 'response' | 'done'>;`,
  `function is<T>(where: string) { return <const V extends Wire<T>>(v: V): void => {}; }`,
];
for (const [type, value, where] of answers) {
  let t = type;
  if (value.done === false) t = type === 'ChatResponse' ? 'ChatLine' : type === 'GenerateResponse' ? 'GenerateLine' : type;
  lines.push(`is<${t}>(${JSON.stringify(where)})(${JSON.stringify(value)});`);
}
// Written beside the clients, so that their types resolve as in a project.
const dir = mkdtempSync(join(process.cwd(), 'node_modules', '.potluck-conformance-'));
writeFileSync(join(dir, 'answers.ts'), lines.join('\n') + '\n');
writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
  compilerOptions: {
    strict: true, noEmit: true, skipLibCheck: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022',
    types: [],
  },
  files: ['answers.ts'],
}));
try {
  execFileSync(join(process.cwd(), 'node_modules', '.bin', 'tsc'), ['-p', dir], { encoding: 'utf8', stdio: 'pipe' });
} catch (e) {
  // Each error names its line: say which answer that is.
  const src = lines.join('\n').split('\n');
  const report = `${e.stdout}${e.stderr}`.replace(/answers\.ts\((\d+),\d+\)/g, (m, n) => `${m} [${src[n - 1]?.match(/^is<(\w+)>\("([^"]*)"\)/)?.slice(1).join(' in ') ?? '?'}]`);
  throw new Error(`answers that do not match the vendors' types (${dir}/answers.ts):\n${report}`);
}
rmSync(dir, { recursive: true, force: true });
const counts = {};
for (const [type] of answers) counts[type] = (counts[type] ?? 0) + 1;
done({ checked: counts });
