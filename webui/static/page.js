// Potluck's web page: reads the node API once a second and chats through
// /v1/chat/completions. It changes the node only when its user asks ("Change
// this node": share, join, leave, get a model), through the admin endpoints,
// which answer this page from this machine or with the admin key. Everything it
// shows is set with textContent: peer names come from other machines.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = "potluck-api-key";
  const ADMIN_KEY = "potluck-admin-key";
  const POLL_MS = 1000;
  const MODELS_EVERY = 5; // polls between model list refreshes

  let key = sessionStorage.getItem(KEY) || "";
  let askingKey = false;
  let timer = 0;
  let inFlight = false; // a poll is waiting for the node
  let again = false; // poll once more when it is done
  let polls = 0;
  let chatting = null; // the AbortController of the answer being streamed
  let pulling = null; // the AbortController of the model being pulled
  const history = [];

  const { bytes, duration, nodeName, loadedLine, draftLine, availabilityNote, engineLine, tokens } = window.potluckFormat;

  class Unauthorized extends Error {}

  // api fetches path from this node, with the API key when there is one.
  async function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    const used = key;
    if (used) headers.set("Authorization", "Bearer " + used);
    const resp = await fetch(path, { ...init, headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) {
      // An answer to a key given before the last one asks nothing.
      if (used === key) askKey(used ? "The node refused that key. Enter its API key again." : "");
      throw new Unauthorized("this node needs its API key");
    }
    return resp;
  }

  async function errorText(resp) {
    let text = await resp.text();
    try {
      const j = JSON.parse(text);
      if (j.error && j.error.message) text = j.error.message;
    } catch (_) { /* not JSON: show it as it is */ }
    return (resp.status + " " + text).slice(0, 600);
  }

  async function getJSON(path) {
    const resp = await api(path);
    if (!resp.ok) throw new Error(path + ": " + (await errorText(resp)));
    return resp.json();
  }

  function askKey(why) {
    askingKey = true;
    clearTimeout(timer);
    if (why) $("key-why").textContent = why;
    const form = $("key-form");
    if (form.hidden) {
      form.hidden = false;
      $("key").focus();
    }
    setLive("bad", "needs the API key");
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("key").value.trim();
    $("key").value = "";
    sessionStorage.setItem(KEY, key);
    $("key-form").hidden = true;
    askingKey = false;
    polls = 0;
    poll();
  });

  function setLive(kind, text) {
    const live = $("live");
    live.className = "pill " + kind;
    live.textContent = text;
  }

  function showError(msg) {
    const e = $("error");
    e.hidden = !msg;
    e.textContent = msg || "";
  }

  // el builds an element: el("td", {className: "num"}, "text", child...).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function renderNode(st) {
    $("node-name").textContent = st.name ? "· " + st.name : "";
    document.title = st.name ? "Potluck · " + st.name : "Potluck";
    const facts = [
      ["Name", st.name],
      ["State", st.state],
      ["Version", st.version],
      ["Up for", duration(st.uptime_s || 0)],
      ["Network", st.in_mesh ? (st.network || "joined") + " · " + (st.peers_online || 0) + ((st.peers_online === 1) ? " peer online" : " peers online") : "not in a network"],
      ["Sharing", st.share === "off" || !st.share ? "off" : st.share + " · " + bytes(st.memory_offered)],
      ["Peer ID", st.peer_id || "—"],
      ["Devices", (st.devices || []).map((d) => d.name + (d.description ? " (" + d.description + ")" : "")).join(", ") || "—"],
    ];
    if (st.model) {
      let m = st.model.id + " · " + (st.model.ready ? "ready" : (st.model.state && st.model.state.state) || "loading");
      if (st.model.tokens_per_second) m += " · about " + Math.round(st.model.tokens_per_second) + " tokens/s";
      facts.push(["Model", m]);
      if (st.model.draft) facts.push(["Draft", draftLine(st.model.draft)]);
      else if (st.model.no_draft) facts.push(["Draft", "none: " + st.model.no_draft]);
    } else {
      facts.push(["Model", "none served here"]);
    }
    if ((st.loaded || []).length) facts.push(["Loaded on request", st.loaded.map(loadedLine).join("; ")]);
    facts.push(["llama.cpp", engineLine(st.engine || {})]);
    if (st.worker && st.worker.matches) facts.push(["Lends with", "llama.cpp " + st.worker.release + ", the version " + st.worker.matches + " splits with"]);
    facts.push(["API", st.api || ""]);
    $("node-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v === undefined ? "" : v)]));
    $("warnings").replaceChildren(...(st.warnings || []).map((w) => el("li", { className: w.severity || "warning" }, w.message)));
  }

  function connCell(p) {
    if (!p.online) return el("span", { className: "conn offline" }, "offline");
    const kind = p.conn || "unknown";
    const label = { "direct": "direct", "hole-punched": "hole-punched", "relayed": "relayed", "relay-lost": "relay lost", "unknown": "—" }[kind] || kind;
    const span = el("span", { className: "conn " + kind, title: "transport: " + (p.transport || "—") }, label);
    return el("span", null, span, p.transport ? " " + p.transport : "");
  }

  function renderPeers(peers) {
    peers = peers || [];
    const online = peers.filter((p) => p.online).length;
    $("peer-count").textContent = peers.length ? "· " + online + " of " + peers.length + " online" : "";
    $("no-peers").hidden = peers.length > 0;
    $("peer-rows").replaceChildren(...peers.map((p) => {
      const devices = (p.devices || []).map((d) =>
        el("span", { className: "device" }, d.name + (d.description ? " · " + d.description : "") + (d.offer ? " · offers " + bytes(d.offer) : "")));
      const models = Object.keys((p.services && p.services.models) || {});
      let offers = p.mode === "off" || !p.mode ? "nothing" : p.mode + " · " + bytes(p.memory_offered);
      if (models.length) offers += " · serves " + models.join(", ");
      return el("tr", { className: "peer", title: p.peer_id },
        el("td", null, el("span", { className: "peer-name" }, p.name || p.peer_id.slice(-8)),
          p.os ? el("span", { className: "peer-os" }, " · " + p.os) : "",
          p.rpc_refused ? el("span", { className: "peer-misbehaving", title: p.rpc_refused.detail },
            " · misbehaving: " + p.rpc_refused.count + " RPC stream(s) refused (" + p.rpc_refused.reason + ")") : ""),
        el("td", null, p.mode || "—"),
        el("td", { className: "peer-conn" }, connCell(p)),
        el("td", { className: "num" }, p.online && p.rtt_ms ? p.rtt_ms.toFixed(1) + " ms" : "—"),
        el("td", null, ...(devices.length ? devices : ["—"])),
        el("td", null, offers),
        el("td", { className: "num" }, p.in_flight || 0));
    }));
  }

  function renderPlan(view) {
    const head = $("plan-head");
    const bars = $("plan-bars");
    const plan = view && view.plan;
    if (!view || (!view.model && !plan)) {
      head.textContent = "No model is served on this node, so there is no plan. Start it with --model, or serve one from the tray.";
      bars.replaceChildren();
      return;
    }
    if (!plan) {
      head.textContent = view.model + ": " + (view.error || view.detail || "no plan yet");
      bars.replaceChildren();
      return;
    }
    let text = plan.model + " · " + (plan.reason || (plan.fits ? "fits" : "does not fit"));
    if (plan.tokens_per_second) text += " · about " + Math.round(plan.tokens_per_second) + " tokens/s predicted";
    if (plan.draft && plan.draft.lookup) text += " · with an n-gram lookup: about " + Math.round(plan.draft.tokens_per_second) + " tokens/s";
    else if (plan.draft) text += " · with the draft " + plan.draft.model + " on " + plan.draft.device + ": about " + Math.round(plan.draft.tokens_per_second) + " tokens/s";
    else if (plan.no_draft) text += " · no draft: " + plan.no_draft;
    if (view.detail) text += " · " + view.detail;
    head.textContent = text;
    const devices = plan.devices || [];
    const total = devices.reduce((n, d) => n + (d.layers || 0), 0);
    const colors = new Map();
    let at = 0;
    const rows = devices.map((d) => {
      if (!colors.has(d.node)) colors.set(d.node, "var(--dev" + (colors.size % 6) + ")");
      const track = el("div", { className: "bar-track", title: (d.layers || 0) + " of " + total + " layers" });
      for (let i = 0; i < total; i++) {
        const on = i >= at && i < at + (d.layers || 0);
        const cell = el("span", { className: "layer" + (on ? " on" : "") + (on && d.output && i === at + d.layers - 1 ? " output" : "") });
        if (on) cell.style.background = colors.get(d.node);
        track.append(cell);
      }
      at += d.layers || 0;
      const who = (d.node_name || d.node.slice(-8)) + (d.local ? " (this node)" : "");
      const label = el("div", { className: "bar-label" },
        el("strong", null, who), " · " + d.device + (d.description && d.description !== d.device ? " (" + d.description + ")" : ""),
        el("br"), el("span", { className: "muted layers" }, (d.layers || 0) + " layers" + (d.output ? " + output" : "") + " · " + bytes(d.bytes)));
      return el("div", { className: "bar-row device-bar" }, label, track);
    });
    for (const x of plan.excluded || []) {
      rows.push(el("div", { className: "bar-row" },
        el("div", { className: "bar-label" }, el("strong", null, x.name || x.id.slice(-8)), x.device ? " · " + x.device : ""),
        el("div", { className: "muted" }, "left out: " + x.reason)));
    }
    if (total) rows.push(el("div", { className: "legend" }, total + " layers in all; each square is one layer, outlined: the output layer."));
    bars.replaceChildren(...rows);
  }

  function renderRequests(list) {
    list = (list || []).slice().reverse();
    $("no-requests").hidden = list.length > 0;
    $("request-rows").replaceChildren(...list.slice(0, 20).map((r) => el("tr", { className: "request" },
      el("td", { className: "num" }, new Date(r.time).toLocaleTimeString()),
      el("td", null, r.model),
      el("td", { className: "served-by", title: r.node }, nodeName(r.node) || "—"),
      el("td", { className: "num" + (r.status >= 400 ? " error" : "") }, r.status),
      el("td", { className: "num" }, r.tokens || 0),
      el("td", { className: "num" }, Math.round((r.duration_ns || 0) / 1e6) + " ms"))));
  }

  function renderUsage(u) {
    const peers = (u && u.peers) || [];
    const head = $("usage-head");
    if (!u || !u.peer_id) {
      head.textContent = "Not in a network: nothing to account for.";
    } else if (!peers.length) {
      head.textContent = "No requests served between members yet.";
    } else {
      head.textContent = "You served " + tokens(u.gave.all) + " tokens to friends, used " + tokens(u.used.all) + "." +
        (u.share_limit ? " Each peer may use " + tokens(u.share_limit) + " tokens a day of this machine's model." : "");
    }
    $("usage-rows").replaceChildren(...peers.map((p) => el("tr", { className: "usage" },
      el("td", { title: p.peer_id }, p.name || p.peer_id),
      el("td", { className: "num" }, tokens(p.gave.today)),
      el("td", { className: "num" }, tokens(p.gave.week)),
      el("td", { className: "num" }, tokens(p.gave.all)),
      el("td", { className: "num" }, tokens(p.used.today)),
      el("td", { className: "num" }, tokens(p.used.week)),
      el("td", { className: "num" }, tokens(p.used.all)))));
  }

  // admin calls an admin endpoint with a JSON body. Away from the node's
  // machine it needs the admin key, asked for once per tab. signal, if
  // given, aborts the request.
  async function admin(path, body, signal) {
    for (let tries = 0; tries < 3; tries++) {
      const headers = { "Content-Type": "application/json" };
      const k = sessionStorage.getItem(ADMIN_KEY) || key;
      if (k) headers.Authorization = "Bearer " + k;
      const resp = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store", credentials: "omit", signal });
      if (resp.status !== 401) return resp;
      const given = window.prompt("This changes the node. Enter its admin key (the one given with --admin-key-file):");
      if (!given) return resp;
      sessionStorage.setItem(ADMIN_KEY, given);
    }
    throw new Error("the node refused the admin key");
  }

  async function manage(what, path, body) {
    const msg = $("manage-msg");
    msg.className = "muted";
    msg.textContent = what + "…";
    try {
      const resp = await admin(path, body);
      if (!resp.ok) throw new Error(await errorText(resp));
      msg.textContent = what + ": done.";
      poll();
      return true;
    } catch (e) {
      msg.className = "error";
      msg.textContent = what + " failed: " + e.message;
      return false;
    }
  }

  $("share-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const gib = $("share-memory").value.trim().replace(",", ".");
    const body = { mode: $("share-mode").value };
    if (gib) {
      if (!(Number(gib) > 0)) {
        $("manage-msg").className = "error";
        $("manage-msg").textContent = "Write the memory to share in GiB, such as 8 or 12.5, or leave it empty.";
        return;
      }
      body.memory = gib + "GiB";
    }
    manage("Sharing " + body.mode, "/api/share", body);
  });
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("join-token").value.trim();
    if (!token) return;
    if (await manage("Joining the network", "/api/join", { token })) $("join-token").value = "";
  });
  $("leave").addEventListener("click", () => {
    if (window.confirm("Leave the network? This node stops sharing and stops using the others.")) manage("Leaving the network", "/api/leave", {});
  });

  // Getting a model: POST /api/pull answers NDJSON progress lines. Cancel
  // aborts the request, and the node stops a pull whose client went away;
  // it keeps the part downloaded, hidden, for the next pull to resume.

  // ndjson calls onLine with each JSON line of resp's body.
  async function ndjson(resp, onLine) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      buf += dec.decode(value || new Uint8Array(), { stream: !done });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onLine(JSON.parse(line));
      }
      if (done) {
        if (buf.trim()) onLine(JSON.parse(buf));
        return;
      }
    }
  }

  function showPull(p) {
    if (!p.total) {
      $("pull-msg").textContent = p.status || "";
      return;
    }
    const peers = p.peers || [];
    $("pull-bar").value = (p.completed || 0) / p.total;
    $("pull-msg").textContent = (p.file || "") + ": " + bytes(p.completed || 0) + " of " + bytes(p.total) +
      (peers.length ? ", from " + peers.length + (peers.length === 1 ? " peer" : " peers") : "");
    $("pull-peers").hidden = !peers.length;
    $("pull-peers").replaceChildren(...peers.map((pb) =>
      el("li", { className: "pull-peer" }, pb.name + ": " + bytes(pb.completed || 0) + " of " + bytes(p.total))));
  }

  // pullShown shows the form as it is while a pull runs (on), or not.
  function pullShown(on) {
    $("pull-get").disabled = $("pull-ref").disabled = on;
    $("pull-cancel").disabled = false;
    $("pull-cancel").hidden = $("pull-bar").hidden = !on;
    $("pull-bar").value = 0;
    $("pull-peers").hidden = true;
    $("pull-peers").replaceChildren();
  }

  async function pullModel(ref) {
    const msg = $("pull-msg");
    pulling = new AbortController();
    pullShown(true);
    msg.className = "muted";
    msg.textContent = "Looking for " + ref + "…";
    try {
      const resp = await admin("/api/pull", { model: ref, stream: true }, pulling.signal);
      if (!resp.ok) throw new Error(await errorText(resp));
      let failure = "", done = false;
      await ndjson(resp, (p) => {
        if (p.error) failure = p.error;
        else if (p.status === "success") done = true;
        else showPull(p);
      });
      if (failure || !done) throw new Error(failure || "the node ended the pull before it was done");
      msg.textContent = ref + " is here: serve it from the tray, or with POST /api/serve.";
      $("pull-ref").value = "";
    } catch (e) {
      if (e.name === "AbortError") {
        msg.textContent = "Cancelled: no model was added. What was downloaded so far is kept, and getting it again resumes from there.";
      } else {
        msg.className = "error";
        msg.textContent = "Could not get it: " + e.message;
      }
    } finally {
      pulling.abort(); // a pull the page stopped following stops too
      pulling = null;
      pullShown(false);
    }
  }

  $("pull-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ref = $("pull-ref").value.trim();
    if (ref && !pulling) pullModel(ref);
  });
  $("pull-cancel").addEventListener("click", () => {
    if (!pulling) return;
    $("pull-cancel").disabled = true;
    $("pull-msg").textContent = "Cancelling…";
    pulling.abort();
  });

  async function refreshModels() {
    const list = await getJSON("/v1/models");
    const sel = $("model");
    const chosen = sel.value;
    const models = (list.data || []).filter((m) => {
      const caps = (m.potluck && m.potluck.capabilities) || [];
      return caps.length === 0 || caps.includes("completion");
    });
    sel.replaceChildren(...models.map((m) => {
      const p = m.potluck || {};
      const note = availabilityNote[p.availability] || (p.ready === false ? " (loading)" : "");
      return el("option", { value: m.id, selected: m.id === chosen }, m.id + note);
    }));
    if (!models.length) sel.append(el("option", { value: "", disabled: true, selected: true }, "no model in the pool yet"));
    $("send").disabled = !models.length || chatting !== null;
  }

  async function poll() {
    clearTimeout(timer);
    if (askingKey) return;
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      await refresh();
    } finally {
      inFlight = false;
    }
    if (again) {
      again = false;
      poll();
    } else if (!document.hidden && !askingKey) {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  async function refresh() {
    try {
      const [st, peers, plan, reqs] = await Promise.all([
        getJSON("/api/status"), getJSON("/api/peers"), getJSON("/api/plan"), getJSON("/api/requests")]);
      renderNode(st);
      renderPeers(peers);
      renderPlan(plan);
      renderRequests(reqs);
      if (polls++ % MODELS_EVERY === 0) {
        await refreshModels();
        renderUsage(await getJSON("/api/usage"));
      }
      setLive("ok", "live");
      showError("");
    } catch (e) {
      if (e instanceof Unauthorized) return;
      setLive("bad", "not reachable");
      showError("Cannot read the node: " + e.message + ". Is potluck still running?");
    }
  }

  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });

  // Chat.

  function addMessage(role, text) {
    const body = el("span", { className: "text" }, text);
    const msg = el("div", { className: "msg " + role }, el("span", { className: "who" }, role === "user" ? "You" : "Model"), body);
    $("chat-log").append(msg);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
    return msg;
  }

  // stream reads an OpenAI server-sent event stream, calling onDelta with
  // each piece of content.
  async function stream(resp, onDelta) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const ev = JSON.parse(data);
        if (ev.error) throw new Error(ev.error.message || JSON.stringify(ev.error));
        const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
        if (delta && delta.content) onDelta(delta.content);
      }
    }
  }

  async function send(text) {
    const model = $("model").value;
    history.push({ role: "user", content: text });
    addMessage("user", text);
    const msg = addMessage("assistant", "");
    const body = msg.querySelector(".text");
    msg.dataset.chunks = "0";
    chatting = new AbortController();
    $("send").disabled = true;
    $("stop").hidden = false;
    let answer = "";
    try {
      const resp = await api("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model, messages: history, stream: true }),
        signal: chatting.signal,
      });
      if (!resp.ok) throw new Error(await errorText(resp));
      const node = resp.headers.get("X-Potluck-Node");
      await stream(resp, (piece) => {
        answer += piece;
        body.textContent = answer;
        msg.dataset.chunks = String(Number(msg.dataset.chunks) + 1);
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
      });
      history.push({ role: "assistant", content: answer });
      if (node) msg.append(el("span", { className: "meta" }, "served by " + nodeName(node)));
    } catch (e) {
      history.pop();
      msg.classList.add("failed");
      if (e.name === "AbortError") {
        msg.append(el("span", { className: "meta" }, "stopped"));
      } else {
        body.textContent = answer;
        msg.append(el("span", { className: "meta" }, e instanceof Unauthorized ? "Enter the API key above, then send again." : e.message));
      }
    } finally {
      msg.dataset.done = "true";
      chatting = null;
      $("stop").hidden = true;
      $("send").disabled = !$("model").value;
    }
  }

  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || chatting) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => { if (chatting) chatting.abort(); });

  poll();
})();
