// How Potluck's web page words numbers and states: pure functions, which
// page.js takes from window.potluckFormat.
"use strict";

(() => {
  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function duration(s) {
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  // nodeName turns "name/peer-id" into its name, keeping the rest for a tooltip.
  function nodeName(n) {
    const i = (n || "").indexOf("/");
    return i < 0 ? (n || "") : n.slice(0, i);
  }

  // loadedLine says how a model loaded on request is, and until when it
  // stays: "tiny · ready · until 14:05".
  function loadedLine(l) {
    let line = l.name + " · " + (l.ready ? (l.in_flight ? "serving" : "ready") : l.detail || "loading");
    if (l.expires_at) line += " · until " + new Date(l.expires_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    else line += " · stays loaded";
    return line;
  }

  // draftLine says what a draft model does: where it runs, the speed
  // predicted with it, and what the answers so far measured.
  function draftLine(d) {
    let s = d.lookup ? "n-gram lookup (" + d.lookup + "), no draft model" : d.model + " on " + d.device;
    s += " · up to " + d.max + " tokens at a time · about " + Math.round(d.tokens_per_second) + " tokens/s predicted";
    if (d.drafted) s += " · " + Math.round(100 * d.acceptance) + " % of " + d.drafted + " drafted tokens accepted, " + Math.round(d.measured_tokens_per_second) + " tokens/s measured";
    return s;
  }

  // availabilityNote is how the picker says where a model is.
  const availabilityNote = {
    "loading": " (loading)",
    "on-disk": " (loads when asked)",
    "needs-split": " (loads split over the pool)",
    "peer-loaded": " (on a peer)",
    "peer-disk": " (a peer loads it when asked)",
  };

  // engineLine says which llama.cpp runs, or how far getting it is.
  function engineLine(e) {
    const p = e.provisioning;
    if (p) {
      let s = "Getting llama.cpp " + p.version;
      const what = [p.backend ? backendLabel(p.backend) : "", p.total ? bytes(p.total) : ""].filter(Boolean).join(", ");
      if (what) s += " (" + what + ")";
      s += "…";
      if (p.total && p.completed < p.total) s += " " + Math.floor(p.completed * 100 / p.total) + "%";
      if (p.error) s += " · " + p.error;
      return s;
    }
    if (!e.available) return "not available" + (e.error ? ": " + e.error : "");
    let s = e.server_version || e.release || "found";
    if (e.installed && e.installed.length) s += " · kept here: " + e.installed.join(", ");
    return s;
  }

  function backendLabel(b) {
    return { cuda: "CUDA", cpu: "CPU", hip: "HIP", vulkan: "Vulkan", metal: "Metal", debian: "Debian" }[b] || b;
  }

  function tokens(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + " M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + " k";
    return String(Math.round(v || 0));
  }

  window.potluckFormat = Object.freeze({ bytes, duration, nodeName, loadedLine, draftLine, availabilityNote, engineLine, backendLabel, tokens });
})();
