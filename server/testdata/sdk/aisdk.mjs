// The Vercel AI SDK, the library behind many chat apps, through each of
// its providers that can reach Potluck: OpenAI's by the Responses API (its
// default) and by chat completions, Anthropic's, and the generic
// OpenAI-compatible one. Text, whole and streamed, must finish with
// "stop" or "length" and no error part. With POTLUCK_TOOLS set (a model
// that calls tools), each provider must also make a forced tool call,
// whole and streamed, with the right name and input of the tool's schema,
// go on after the tool's result, and give structured output that matches
// its schema.
import { generateText, streamText, generateObject, jsonSchema, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { need, model, recordingFetch, check, done } from './common.mjs';
import { weather, checkArgs, checkSchema, forecast } from './tools_common.mjs';

const base = need('POTLUCK_BASE_URL');
const apiKey = process.env.POTLUCK_API_KEY || 'unused';
const openai = createOpenAI({ baseURL: base + '/v1', apiKey, fetch: recordingFetch });
const anthropic = createAnthropic({ baseURL: base + '/v1', apiKey, fetch: recordingFetch });
const compatible = createOpenAICompatible({
  name: 'potluck', baseURL: base + '/v1', apiKey, fetch: recordingFetch, supportsStructuredOutputs: true,
});

const providers = {
  'openai (Responses)': openai(model),
  'openai.chat': openai.chat(model),
  anthropic: anthropic(model),
  'openai-compatible': compatible.chatModel(model),
};
const tools = process.env.POTLUCK_TOOLS !== undefined;
const settings = { maxOutputTokens: 200, maxRetries: 0 };
const finished = (r) => r === 'stop' || r === 'length';

// stream runs streamText and fails on any error part.
async function stream(where, args) {
  const errors = [];
  const s = streamText({ ...args, onError: ({ error }) => errors.push(error) });
  const parts = [];
  for await (const p of s.fullStream) {
    if (p.type === 'error') errors.push(p.error);
    parts.push(p.type);
  }
  check(errors.length === 0, `${where}: ${errors.length} errors, the first: ${errors[0]}`);
  return { s, parts };
}

const result = {};
for (const [name, m] of Object.entries(providers)) {
  const r = {};
  if (!tools) {
    const g = await generateText({ model: m, prompt: 'Tell me a story', ...settings, maxOutputTokens: 16 });
    check(finished(g.finishReason) && g.text.length > 0, `${name} generateText: ${g.finishReason} ${JSON.stringify(g.text)}`);
    const { s, parts } = await stream(`${name} streamText`, { model: m, prompt: 'Tell me a story', ...settings, maxOutputTokens: 16 });
    const reason = await s.finishReason, text = await s.text;
    check(finished(reason) && text.length > 0 && parts.includes('text-delta'),
      `${name} streamText: ${reason} ${JSON.stringify(text)} parts ${parts}`);
    Object.assign(r, { generate: g.finishReason, stream: reason });
  } else {
    const defs = { [weather.name]: tool({ description: weather.description, inputSchema: jsonSchema(weather.parameters) }) };
    const ask = { model: m, prompt: 'What is the weather in Paris?', tools: defs, toolChoice: 'required', ...settings };
    const g = await generateText(ask);
    check(g.finishReason === 'tool-calls' && g.toolCalls.length > 0, `${name} tool call: ${g.finishReason} ${JSON.stringify(g.content)}`);
    checkArgs(`${name} tool call`, g.toolCalls[0].toolName, g.toolCalls[0].input);

    const { s } = await stream(`${name} streamed tool call`, ask);
    const calls = await s.toolCalls;
    check((await s.finishReason) === 'tool-calls' && calls.length > 0, `${name} streamed tool call: ${JSON.stringify(calls)}`);
    checkArgs(`${name} streamed tool call`, calls[0].toolName, calls[0].input);

    // The tool's result goes back, and the conversation goes on.
    const c = g.toolCalls[0];
    const next = await generateText({
      model: m, tools: defs, ...settings,
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        ...g.response.messages,
        { role: 'tool', content: [{ type: 'tool-result', toolCallId: c.toolCallId, toolName: c.toolName, output: { type: 'json', value: forecast } }] },
      ],
    });
    check(['stop', 'length', 'tool-calls'].includes(next.finishReason), `${name} after the result: ${next.finishReason}`);

    const o = await generateObject({ model: m, schema: jsonSchema(forecast.schema), prompt: 'Forecast?', ...settings });
    checkSchema(`${name} generateObject`, o.object, forecast.schema);
    Object.assign(r, { call: c.toolName, after: next.finishReason, object: o.object });
  }
  result[name] = r;
}
done({ providers: result });
