// The official Ollama client deletes a model from Potluck's store, and gets
// Ollama's 404 for a model that is not there, and a refusal for one that is
// not Potluck's to delete (POTLUCK_KEEP_MODEL, another tool's).
import { Ollama } from 'ollama';
import { need, model, recordingFetch, check, done } from './common.mjs';

const ollama = new Ollama({ host: need('POTLUCK_OLLAMA_URL'), fetch: recordingFetch });
const keep = need('POTLUCK_KEEP_MODEL');

// status runs f and returns the HTTP status and message of the error it
// raised, or 200 and ''.
async function status(f) {
  try {
    await f();
  } catch (e) {
    if (e.name !== 'ResponseError') throw e; // the class is not exported
    return [e.status_code, e.error];
  }
  return [200, ''];
}

const deleted = await ollama.delete({ model });
check(deleted.status === 'success', `delete: ${JSON.stringify(deleted)}`);

const [unknown, unknownError] = await status(() => ollama.delete({ model }));
check(unknown === 404 && unknownError === `model '${model}' not found`, `delete again: ${unknown} ${unknownError}`);

const [kept, keptError] = await status(() => ollama.delete({ model: keep }));
check(kept === 409 && keptError.includes('only from its own store'), `delete ${keep}: ${kept} ${keptError}`);

done({ deleted: model, unknown_model_status: unknown, kept_status: kept, kept_error: keptError });
