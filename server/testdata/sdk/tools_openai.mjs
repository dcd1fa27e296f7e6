// Tool calls and structured output with the official OpenAI client, by
// chat completions and by the Responses API, whole and streamed: the call
// names the tool and carries JSON arguments of its schema, and the tool's
// result sent back gets an answer.
import OpenAI from 'openai';
import { need, model, recordingFetch, check, done } from './common.mjs';
import { weather, clock, checkArgs, checkSchema, forecast } from './tools_common.mjs';

const client = new OpenAI({
  baseURL: need('POTLUCK_BASE_URL') + '/v1', apiKey: process.env.POTLUCK_API_KEY || 'unused',
  maxRetries: 0, timeout: 60_000, fetch: recordingFetch,
});

const tools = [{ type: 'function', function: { name: weather.name, description: weather.description, parameters: weather.parameters } }];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

// Chat completions, whole.
const chat = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 200 });
const call = chat.choices[0].message.tool_calls?.[0];
check(chat.choices[0].finish_reason === 'tool_calls' && call?.type === 'function' && call.id,
  `chat: ${JSON.stringify(chat.choices[0])}`);
checkArgs('chat', call.function.name, JSON.parse(call.function.arguments));

// A tool_choice naming the second tool gets that one called.
const chatNamed = await client.chat.completions.create({
  model, messages, max_tokens: 200,
  tools: [...tools, { type: 'function', function: { name: clock.name, parameters: clock.parameters } }],
  tool_choice: { type: 'function', function: { name: clock.name } },
});
check(chatNamed.choices[0].message.tool_calls?.[0]?.function.name === clock.name, `chat, ${clock.name} named: ${JSON.stringify(chatNamed.choices[0])}`);

// Chat completions, streamed: the deltas build the same kind of call.
const stream = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 200, stream: true });
const built = {};
let finish = null;
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (!choice) continue;
  for (const d of choice.delta?.tool_calls ?? []) {
    const b = (built[d.index] ??= { id: '', name: '', args: '' });
    if (d.id) b.id = d.id;
    if (d.function?.name) b.name += d.function.name;
    if (d.function?.arguments) b.args += d.function.arguments;
  }
  if (choice.finish_reason) finish = choice.finish_reason;
}
check(finish === 'tool_calls' && built[0]?.id, `chat stream: finish ${finish}, calls ${JSON.stringify(built)}`);
checkArgs('chat stream', built[0].name, JSON.parse(built[0].args));

// The tool's result goes back, and the conversation goes on.
const next = await client.chat.completions.create({
  model, max_tokens: 200, tools,
  messages: [...messages, chat.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify(forecast) }],
});
check(['stop', 'length', 'tool_calls'].includes(next.choices[0].finish_reason), `after the result: ${JSON.stringify(next.choices[0])}`);

// Structured output: a JSON schema.
const structured = await client.chat.completions.create({
  model, messages, max_tokens: 200,
  response_format: { type: 'json_schema', json_schema: { name: 'forecast', schema: forecast.schema, strict: true } },
});
checkSchema('response_format', JSON.parse(structured.choices[0].message.content), forecast.schema);

// The Responses API, whole.
const rtools = [{ type: 'function', name: weather.name, description: weather.description, parameters: weather.parameters }];
const resp = await client.responses.create({ model, input: 'What is the weather in Paris?', tools: rtools, tool_choice: 'required', max_output_tokens: 200 });
const fc = resp.output.find((o) => o.type === 'function_call');
check(fc?.call_id && fc.id, `responses: ${JSON.stringify(resp.output)}`);
checkArgs('responses', fc.name, JSON.parse(fc.arguments));

// Streamed: the arguments' deltas add up to the finished call.
const events = await client.responses.create({ model, input: 'What is the weather in Paris?', tools: rtools, tool_choice: 'required', max_output_tokens: 200, stream: true });
let args = '', doneItem = null, completed = null, last = -1;
for await (const e of events) {
  check(e.sequence_number > last, `sequence_number ${e.sequence_number} after ${last} (${e.type})`);
  last = e.sequence_number;
  if (e.type === 'response.function_call_arguments.delta') args += e.delta;
  if (e.type === 'response.output_item.done' && e.item.type === 'function_call') doneItem = e.item;
  if (e.type === 'response.completed') completed = e.response;
}
check(doneItem && args === doneItem.arguments && completed?.output?.some((o) => o.type === 'function_call'),
  `responses stream: args ${JSON.stringify(args)}, item ${JSON.stringify(doneItem)}, completed ${JSON.stringify(completed)}`);
checkArgs('responses stream', doneItem.name, JSON.parse(doneItem.arguments));

// A tool_choice naming the second tool gets that one called.
const named = await client.responses.create({
  model, input: 'What time is it?', max_output_tokens: 200,
  tools: [...rtools, { type: 'function', name: clock.name, parameters: clock.parameters }],
  tool_choice: { type: 'function', name: clock.name },
});
const namedCall = named.output.find((o) => o.type === 'function_call');
check(namedCall?.name === clock.name, `responses, ${clock.name} named: ${JSON.stringify(named.output)}`);

// The result goes back as a function_call_output item.
const after = await client.responses.create({
  model, max_output_tokens: 200, tools: rtools,
  input: [{ role: 'user', content: 'What is the weather in Paris?' }, fc,
    { type: 'function_call_output', call_id: fc.call_id, output: JSON.stringify(forecast) }],
});
check(after.status === 'completed' || after.status === 'incomplete', `responses after the result: ${JSON.stringify(after)}`);

// Structured output by the Responses API: text.format.
const rs = await client.responses.create({
  model, input: 'Forecast?', max_output_tokens: 200,
  text: { format: { type: 'json_schema', name: 'forecast', schema: forecast.schema, strict: true } },
});
checkSchema('text.format', JSON.parse(rs.output_text), forecast.schema);

done({ chat_call: call.function, responses_call: { name: fc.name, arguments: fc.arguments }, after: next.choices[0].finish_reason });
