// An answer whose llama-server dies mid-stream: the official client must
// raise an error, not end the stream as if the answer were whole. After
// the first piece of the answer, the script kills the process
// POTLUCK_KILL_PID (the node's llama-server); POTLUCK_SDK picks the client
// (openai or anthropic).
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { need, model, recordingFetch, check, done } from './common.mjs';

const base = need('POTLUCK_BASE_URL');
const pid = Number(need('POTLUCK_KILL_PID'));
const sdk = need('POTLUCK_SDK');
const messages = [{ role: 'user', content: 'Tell me a story' }];
const options = { apiKey: 'unused', maxRetries: 0, timeout: 60_000, fetch: recordingFetch };

let pieces = 0;
let raised = '';
const piece = () => {
  if (++pieces === 1) process.kill(pid, 'SIGKILL');
};
try {
  if (sdk === 'openai') {
    const client = new OpenAI({ ...options, baseURL: base + '/v1' });
    const stream = await client.chat.completions.create({ model, messages, max_tokens: 3000, temperature: 0, stream: true });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) piece();
    }
  } else {
    const client = new Anthropic({ ...options, baseURL: base });
    const stream = client.messages.stream({ model, max_tokens: 3000, messages, temperature: 0 });
    stream.on('text', piece);
    await stream.finalMessage();
  }
} catch (e) {
  raised = `${e.constructor.name}: ${e.message}`;
}
check(pieces > 0, `${sdk}: no piece of the answer arrived before the kill`);
check(raised.includes('broke off'), `${sdk}: after ${pieces} pieces the stream ended without raising the error (raised: ${raised || 'nothing'})`);
console.error(`${sdk}: raised after ${pieces} pieces: ${raised}`);
done({});
