// What the client scripts share: settings from the environment, a fetch
// that notes which node answered (X-Potluck-Node), and the summary line
// the Go test reads. Any exception fails the run (non-zero exit).

export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return v;
}

export const model = need('POTLUCK_MODEL');

// The nodes that answered, as X-Potluck-Node named them.
const nodes = new Set();

export async function recordingFetch(url, init) {
  const resp = await fetch(url, init);
  const node = resp.headers.get('x-potluck-node');
  if (node) nodes.add(node);
  return resp;
}

export function check(ok, what) {
  if (!ok) throw new Error(what);
}

// expectStatus runs f, which must fail with an error of class cls and
// HTTP status; it returns the error.
export async function expectStatus(f, cls, status) {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof cls) || e.status !== status) throw e;
    return e;
  }
  throw new Error(`expected a ${status} error`);
}

export function done(result) {
  result.nodes = [...nodes];
  console.log(JSON.stringify(result));
}
