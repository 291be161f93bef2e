// patchbay console: renders the State the server pushes over server-sent
// events. No framework and no build step: the page is this file.
import { Graphviz } from "./graphviz.js";

// Graphviz (WebAssembly) lays out each federation's DOT; layouts are kept,
// since most pushes (a node's run) leave the graph as it was.
const graphviz = Graphviz.load();
const layouts = new Map();

async function layOut(el) {
  const dot = el.dataset.dot;
  if (!layouts.has(dot)) {
    try {
      if (layouts.size > 64) layouts.clear();
      layouts.set(dot, (await graphviz).dot(dot));
    } catch (err) {
      layouts.set(dot, `<pre>${esc(dot)}</pre>`);
    }
  }
  if (el.isConnected && el.dataset.dot === dot) el.innerHTML = layouts.get(dot);
}

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const when = (t) => (t ? new Date(t).toLocaleString() : "");
const $ = (sel) => document.querySelector(sel);
let actions = false;

function renderVar(fed, svc, region, v) {
  const cls = v.resolved ? "resolved" : (v.optional ? "optional" : "unresolved");
  const value = v.resolved ? `<code>${esc(v.value)}</code>` : (v.optional ? "(empty)" : "unresolved");
  return `<tr class="var ${cls}" data-var="${esc(v.name)}">
    <td><code>${esc(v.name)}</code></td><td><code>${esc(v.key)}</code> <span class="tag">${esc(v.select)}</span></td>
    <td class="value">${value}<div class="why">${esc(v.why)}</div></td>
    <td><button class="explain" data-fed="${esc(fed)}" data-svc="${esc(svc)}" data-region="${esc(region)}" data-var="${esc(v.name)}">why?</button></td></tr>`;
}

function renderService(fed, s) {
  const broken = s.bindings.some((b) => b.vars.some((v) => !v.resolved && !v.optional));
  const inst = s.instances.length
    ? s.instances.map((i) => `<tr data-instance="${esc(i.id)}"><td>${esc(i.id)}</td><td>${esc(i.node)}</td><td>${esc(i.address)}:${i.port}</td><td>${esc(i.region)}</td><td class="${esc(i.health)}">${esc(i.health)}</td></tr>`).join("")
    : `<tr><td colspan="5" class="why">no live instance</td></tr>`;
  const bindings = s.bindings.map((b) => `<h3>binding ${b.region ? "region " + esc(b.region) : "(no region)"}
      ${b.stored ? `revision ${b.revision}` : `<span class="why">not stored yet: resolved now</span>`}</h3>
      ${b.vars.length ? `<table>${b.vars.map((v) => renderVar(fed, s.name, b.region, v)).join("")}</table>` : `<div class="why">requires nothing</div>`}`).join("");
  return `<div class="service${broken ? " broken" : ""}" id="svc-${esc(fed)}-${esc(s.name)}" data-service="${esc(s.name)}">
    <h3>${esc(s.name)}${s.public ? '<span class="tag public">public</span>' : '<span class="tag">private</span>'}${s.unique ? '<span class="tag unique">unique</span>' : ""}</h3>
    <div class="why">provides ${s.provides.map((k) => `<code>${esc(k)}</code>`).join(", ") || "nothing"}</div>
    <table class="instances"><thead><tr><th>instance</th><th>node</th><th>address</th><th>region</th><th>health</th></tr></thead><tbody>${inst}</tbody></table>
    ${bindings}</div>`;
}

function renderFederation(f) {
  const cycles = f.cycles.length ? `<div class="cycle">cycles: ${f.cycles.map((c) => esc(c.join(" → "))).join("; ")}</div>` : "";
  return `<section class="federation" id="fed-${esc(f.name)}"><h2>federation ${esc(f.name)}</h2>${cycles}
    <div class="graph" data-dot="${esc(f.graph)}">${layouts.get(f.graph) ?? ""}</div>
    <div class="why">datastores: ${f.datastores.map((k) => `<code>${esc(k)}</code>`).join(", ") || "none"}</div>
    <div class="services">${f.services.map((s) => renderService(f.name, s)).join("")}</div></section>`;
}

// queueText says what a live listener's queue is doing; recorded statuses
// have no queue.
function queueText(q) {
  if (!q) return "";
  const parts = [];
  if (q.paused) parts.push("paused");
  if (q.running) parts.push("running");
  if (q.pending) parts.push("queued");
  if (q.retry_at) parts.push("retry at " + new Date(q.retry_at).toLocaleTimeString());
  return parts.join(", ") || "idle";
}

function render(st) {
  actions = st.actions;
  $("#mode").textContent = st.actions ? "actions enabled" : "read-only";
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  const err = $("#error");
  err.hidden = !st.error;
  err.textContent = st.error ? "registry unreachable, showing the last state: " + st.error : "";
  $("#federations").innerHTML = st.federations.map(renderFederation).join("") || `<div class="panel why">nothing published yet</div>`;
  document.querySelectorAll(".graph[data-dot]").forEach((el) => { if (!el.firstChild) layOut(el); });
  $("#nodes tbody").innerHTML = st.nodes.map((n) => `<tr data-node="${esc(n.name)}"><td>${esc(n.name)}</td><td>${when(n.at)}${n.live ? "" : n.result ? ' <span class="why">(recorded)</span>' : ""}</td>
      <td class="${esc(n.result)}">${esc(n.result || "no run recorded")}</td><td>${esc(n.message)}${n.details.map((d) => `<div class="why">${esc(d)}</div>`).join("")}</td>
      <td>${esc(queueText(n.queue))}</td><td>${n.revision || ""}</td><td>${n.services.map(esc).join(", ")}</td><td>${n.instances.map(esc).join(", ")}</td></tr>`).join("");
  $("#halts tbody").innerHTML = st.halts.map((h) => `<tr class="halted"><td>${esc(h.federation)}</td><td>${esc(h.group)}</td><td>${esc(h.node)}</td><td>${esc(h.reason)}</td><td>${when(h.at)}</td>
      <td>${actions ? `<button class="resume" data-fed="${esc(h.federation)}" data-group="${esc(h.group)}">resume</button>` : ""}</td></tr>`).join("") || `<tr><td colspan="6" class="why">none</td></tr>`;
}

async function explain(btn) {
  const q = new URLSearchParams({ federation: btn.dataset.fed, service: btn.dataset.svc, region: btn.dataset.region, var: btn.dataset.var });
  const resp = await fetch("api/explain?" + q);
  const body = $("#explain-body");
  if (!resp.ok) { body.textContent = await resp.text(); $("#explain").showModal(); return; }
  const x = await resp.json();
  body.innerHTML = `<h2>${esc(x.var)} of ${esc(x.service)}${x.region ? " in " + esc(x.region) : ""}</h2>
    <p>${x.result.resolved ? "result: <code>" + esc(x.result.value) + "</code>" : '<span class="unresolved">unresolved: ' + esc(x.reason) + "</span>"}</p>
    <table><tr><th></th><th>candidate</th><th>key</th><th>why</th></tr>${(x.candidates || []).map((c) => `<tr><td>${c.kept ? "✓" : ""}</td>
      <td>${esc(c.datastore ? "datastore (" + c.federation + ")" : c.instance)}</td><td>${esc(c.key)}</td><td>${esc(c.reason)}</td></tr>`).join("")}</table>`;
  $("#explain").showModal();
}

async function resume(btn) {
  const resp = await fetch("api/rollout/resume", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ federation: btn.dataset.fed, group: btn.dataset.group }) });
  if (!resp.ok) alert(await resp.text());
}

document.addEventListener("click", (e) => {
  const t = e.target;
  if (t.matches("button.explain")) explain(t);
  if (t.matches("button.resume")) resume(t);
});

function connect() {
  const es = new EventSource("events");
  es.addEventListener("open", () => { $("#conn").textContent = "live"; $("#conn").className = "conn live"; });
  es.addEventListener("error", () => { $("#conn").textContent = "reconnecting…"; $("#conn").className = "conn down"; });
  es.addEventListener("state", (e) => render(JSON.parse(e.data)));
}
connect();
