// The official Ollama client with models on demand: list shows a model on
// disk that is not loaded, generate with keep_alive loads it, ps shows it
// with when it unloads, and keep_alive 0 unloads it.
import { Ollama } from 'ollama';
import { model, recordingFetch, check, done } from './common.mjs';

const ollama = new Ollama({ host: process.env.POTLUCK_OLLAMA_URL, fetch: recordingFetch });

const listed = await ollama.list();
check(listed.models.some((m) => m.name === model), `list: ${JSON.stringify(listed.models.map((m) => m.name))}`);
let ps = await ollama.ps();
check(!ps.models.some((m) => m.name === model), `ps before any request: ${JSON.stringify(ps.models)}`);

const gen = await ollama.generate({ model, prompt: 'Once upon a time', keep_alive: '1h', options: { num_predict: 8, temperature: 0 } });
check(gen.done && gen.response.length > 0, `generate: ${JSON.stringify(gen)}`);

ps = await ollama.ps();
const loaded = ps.models.find((m) => m.name === model);
check(loaded, `ps after generate: ${JSON.stringify(ps.models)}`);
const left = new Date(loaded.expires_at).getTime() - Date.now();
check(left > 50 * 60e3 && left <= 60 * 60e3 + 5e3, `expires_at ${loaded.expires_at}: ${left} ms from now, want about an hour`);

// A request that says nothing of keep_alive brings back the default
// (5 minutes), as Ollama's do.
await ollama.generate({ model, prompt: 'Once', options: { num_predict: 2 } });
ps = await ollama.ps();
const again = new Date(ps.models.find((m) => m.name === model).expires_at).getTime() - Date.now();
check(again > 4 * 60e3 && again <= 5 * 60e3 + 5e3, `expires_at after a request without keep_alive: ${again} ms from now, want about 5 minutes`);

// keep_alive 0 with no prompt: Ollama's way to unload now.
const unload = await ollama.generate({ model, prompt: '', keep_alive: 0 });
check(unload.done && unload.done_reason === 'unload', `unload: ${JSON.stringify(unload)}`);
ps = await ollama.ps();
check(!ps.models.some((m) => m.name === model), `ps after keep_alive 0: ${JSON.stringify(ps.models)}`);

done({ expires_in_ms: left, default_expires_in_ms: again, done_reason: unload.done_reason });
