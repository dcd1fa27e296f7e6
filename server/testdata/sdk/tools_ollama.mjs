// Tool calls and structured output with the official Ollama client
// against Potluck's Ollama-compatible API, whole and streamed.
import { Ollama } from 'ollama';
import { need, model, recordingFetch, check, done } from './common.mjs';
import { weather, checkArgs, checkSchema, forecast } from './tools_common.mjs';

const ollama = new Ollama({ host: need('POTLUCK_OLLAMA_URL'), fetch: recordingFetch });
const tools = [{ type: 'function', function: { name: weather.name, description: weather.description, parameters: weather.parameters } }];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
const options = { num_predict: 200 };

const chat = await ollama.chat({ model, messages, tools, options });
const call = chat.message.tool_calls?.[0];
check(chat.done && call, `chat: ${JSON.stringify(chat)}`);
checkArgs('chat', call.function.name, call.function.arguments);

let streamedCall = null, last = null;
for await (const part of await ollama.chat({ model, messages, tools, options, stream: true })) {
  streamedCall ??= part.message.tool_calls?.[0];
  last = part;
}
check(last?.done && streamedCall, `streamed chat: last ${JSON.stringify(last)}, call ${JSON.stringify(streamedCall)}`);
checkArgs('streamed chat', streamedCall.function.name, streamedCall.function.arguments);

// The result goes back as a tool message.
const next = await ollama.chat({
  model, tools, options,
  messages: [...messages, chat.message, { role: 'tool', tool_name: weather.name, content: JSON.stringify(forecast) }],
});
check(next.done && next.message.role === 'assistant', `after the result: ${JSON.stringify(next)}`);

// Structured output: format as a JSON schema, by chat and by generate.
const structured = await ollama.chat({ model, messages, format: forecast.schema, options });
checkSchema('chat format', JSON.parse(structured.message.content), forecast.schema);
const gen = await ollama.generate({ model, prompt: 'Forecast?', format: forecast.schema, options });
checkSchema('generate format', JSON.parse(gen.response), forecast.schema);

done({ call: call.function, after: next.done_reason });
