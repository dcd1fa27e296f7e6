// Tool use with the official Anthropic client, whole and streamed: the
// tool_use block names the tool and carries input of its schema, and a
// tool_result sent back gets an answer.
import Anthropic from '@anthropic-ai/sdk';
import { need, model, recordingFetch, check, done } from './common.mjs';
import { weather, clock, checkArgs, forecast } from './tools_common.mjs';

const client = new Anthropic({
  baseURL: need('POTLUCK_BASE_URL'), apiKey: process.env.POTLUCK_API_KEY || 'unused',
  maxRetries: 0, timeout: 60_000, fetch: recordingFetch,
});
const tools = [{ name: weather.name, description: weather.description, input_schema: weather.parameters }];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

const msg = await client.messages.create({ model, max_tokens: 200, messages, tools, tool_choice: { type: 'any' } });
const use = msg.content.find((b) => b.type === 'tool_use');
check(msg.stop_reason === 'tool_use' && use?.id, `messages.create: ${JSON.stringify(msg)}`);
checkArgs('messages.create', use.name, use.input);

// Streamed: input_json_delta events build the same input.
const stream = client.messages.stream({ model, max_tokens: 200, messages, tools, tool_choice: { type: 'tool', name: weather.name } });
let jsonDeltas = 0;
stream.on('inputJson', () => jsonDeltas++);
const final = await stream.finalMessage();
const streamed = final.content.find((b) => b.type === 'tool_use');
check(final.stop_reason === 'tool_use' && streamed?.id && jsonDeltas > 0,
  `stream: ${jsonDeltas} input_json deltas, ${JSON.stringify(final)}`);
checkArgs('messages.stream', streamed.name, streamed.input);

// Naming the second tool gets that one; "none" gets no tool at all.
const both = [...tools, { name: clock.name, input_schema: clock.parameters }];
const named = await client.messages.create({ model, max_tokens: 200, messages, tools: both, tool_choice: { type: 'tool', name: clock.name } });
check(named.content.find((b) => b.type === 'tool_use')?.name === clock.name, `${clock.name} named: ${JSON.stringify(named.content)}`);
const none = await client.messages.create({ model, max_tokens: 20, messages, tools: both, tool_choice: { type: 'none' } });
check(!none.content.some((b) => b.type === 'tool_use') && none.stop_reason !== 'tool_use', `tool_choice none: ${JSON.stringify(none)}`);

// The result goes back as a tool_result block.
const next = await client.messages.create({
  model, max_tokens: 200, tools,
  messages: [...messages, { role: 'assistant', content: msg.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: JSON.stringify(forecast) }] }],
});
check(['end_turn', 'max_tokens', 'tool_use'].includes(next.stop_reason), `after the result: ${JSON.stringify(next)}`);

done({ tool_use: { name: use.name, input: use.input }, after: next.stop_reason });
