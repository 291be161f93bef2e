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
// when shows a time as its age ("20 s ago", in the viewer's language), the
// date and time in the viewer's locale on hover; tick() keeps ages current.
const rtf = new Intl.RelativeTimeFormat(navigator.languages, { numeric: "always", style: "short" });
function age(t) {
  const s = Math.round((new Date(t) - Date.now()) / 1000);
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, n] of units) if (Math.abs(s) >= n) return rtf.format(Math.trunc(s / n), unit);
  return rtf.format(s, "second");
}
const when = (t) => (t ? `<time datetime="${esc(t)}" title="${esc(new Date(t).toLocaleString(navigator.languages))}">${esc(age(t))}</time>` : "");
function tick() { document.querySelectorAll("time[datetime]").forEach((el) => { el.textContent = age(el.getAttribute("datetime")); }); }
setInterval(tick, 1000);
const $ = (sel) => document.querySelector(sel);
let actions = false;
let state = null; // the last State rendered, for the node page

// recordedNote says plainly that a node's row is its record in Consul, not
// its listener's answer now, and so is as old as its run.
function recordedNote(n) {
  if (n.live || !n.result) return "";
  return ' <span class="why recorded">(recorded: the listener did not answer now)</span>';
}

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
    ? s.instances.map((i) => `<tr data-instance="${esc(i.id)}"><td>${esc(i.id)}</td><td class="name"><a href="#node=${encodeURIComponent(i.node)}">${esc(i.node)}</a></td><td>${esc(i.address)}:${i.port}</td><td>${esc(i.region)}</td><td class="${esc(i.health)}">${esc(i.health)}</td></tr>`).join("")
    : `<tr><td colspan="5" class="why">no live instance</td></tr>`;
  const bindings = s.bindings.map((b) => `<h3>binding ${b.region ? "region " + esc(b.region) : "(no region)"}
      ${b.stored ? `revision ${b.revision}` : `<span class="why">not stored yet: resolved now</span>`}</h3>
      ${b.vars.length ? `<table>${b.vars.map((v) => renderVar(fed, s.name, b.region, v)).join("")}</table>` : `<div class="why">requires nothing</div>`}`).join("");
  const find = [s.name, fed, ...s.instances.map((i) => i.node)].join(" ").toLowerCase();
  return `<div class="service${broken ? " broken" : ""}" id="svc-${esc(fed)}-${esc(s.name)}" data-service="${esc(s.name)}" data-find="${esc(find)}">
    <h3>${esc(s.name)}${s.public ? '<span class="tag public">public</span>' : '<span class="tag">private</span>'}${s.unique ? '<span class="tag unique">unique</span>' : ""}</h3>
    <div class="why">provides ${s.provides.map((k) => `<code>${esc(k)}</code>`).join(", ") || "nothing"}</div>
    <table class="instances"><thead><tr><th>instance</th><th>node</th><th>address</th><th>region</th><th>health</th></tr></thead><tbody>${inst}</tbody></table>
    ${bindings}</div>`;
}

function renderFederation(f) {
  const cycles = f.cycles.length ? `<div class="cycle">cycles: ${f.cycles.map((c) => esc(c.join(" → "))).join("; ")}</div>` : "";
  return `<section class="federation" id="fed-${esc(f.name)}" data-federation="${esc(f.name)}"><h2>federation ${esc(f.name)}</h2>${cycles}
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
  if (q.retry_at) parts.push("retry " + when(q.retry_at));
  return parts.join(", ") || "idle";
}

// renderChanges shows each recent change spreading: its revisions, how many
// nodes applied it, the time from the resolver's write to their files, and
// every node that has not applied it, with why.
const ms = (ns) => (ns >= 1e9 ? (ns / 1e9).toFixed(1) + " s" : Math.round(ns / 1e6) + " ms");
function renderChanges(changes) {
  if (!changes) return `<div class="why">shown while listeners answer over NATS</div>`;
  if (!changes.length) return `<div class="why">no change recorded yet</div>`;
  return `<table id="changes-table"><thead><tr><th>change</th><th>revisions</th><th>written</th><th>nodes</th><th>change → files</th><th>not applied</th></tr></thead><tbody>${changes.map((c) => {
    const lat = c.latency ? `p50 ${ms(c.latency.p50_ns)}, p99 ${ms(c.latency.p99_ns)}, slowest <span class="name">${esc(c.latency.slowest_node)}</span> ${ms(c.latency.max_ns)}` : "";
    const waiting = c.nodes.filter((n) => n.state !== "applied").map((n) => `<div class="${esc(n.state)}" data-node="${esc(n.node)}" data-state="${esc(n.state)}"><span class="name">${esc(n.node)}</span> ${esc(n.state)}${n.reason ? `<span class="why">: ${esc(n.reason)}</span>` : ""}</div>`).join("");
    const applied = c.nodes.filter((n) => n.state === "applied").map((n) => `<span class="name" title="applied ${esc(new Date(n.applied).toLocaleString(navigator.languages))}">${esc(n.node)}</span>`).join(", ");
    const done = c.nodes.length && c.counts.applied === c.nodes.length;
    return `<tr class="change${done ? " done" : ""}" data-index="${c.index}" data-find="${esc([c.federation, ...c.revisions.map((r) => r.service), ...c.nodes.map((n) => n.node)].join(" ").toLowerCase())}">
      <td>${esc(c.federation)} #${c.index}</td><td>${c.revisions.map((r) => `<code>${esc(r.service)}${r.region ? "/" + esc(r.region) : ""}@${r.revision}</code>`).join(" ")}</td>
      <td>${when(c.written)}</td><td class="summary">${esc(c.summary)}<div class="why applied">${applied}</div></td><td class="latency">${lat}</td><td class="waiting">${waiting}</td></tr>`;
  }).join("")}</tbody></table>`;
}

function render(st) {
  actions = st.actions;
  state = st;
  $("#mode").textContent = st.actions ? "actions enabled" : "read-only";
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  const err = $("#error");
  err.hidden = !st.error;
  err.textContent = st.error ? "registry unreachable, showing the last state: " + st.error : "";
  $("#changes").innerHTML = renderChanges(st.changes);
  $("#federations").innerHTML = st.federations.map(renderFederation).join("") || `<div class="panel why">nothing published yet</div>`;
  document.querySelectorAll(".graph[data-dot]").forEach((el) => { if (!el.firstChild) layOut(el); });
  $("#nodes tbody").innerHTML = st.nodes.map((n) => `<tr data-node="${esc(n.name)}" data-find="${esc([n.name, n.federation, ...n.services, ...n.instances].join(" ").toLowerCase())}">
      <td class="name"><a href="#node=${encodeURIComponent(n.name)}">${esc(n.name)}</a></td><td class="at">${when(n.at)}${recordedNote(n)}</td>
      <td class="${esc(n.result)}">${esc(n.result || "no run recorded")}</td><td class="reason">${esc(n.message)}${n.details.map((d) => `<div class="why">${esc(d)}</div>`).join("")}</td>
      <td>${queueText(n.queue)}</td><td>${n.revision || ""}</td><td>${n.services.map(esc).join(", ")}</td><td>${n.instances.map(esc).join(", ")}</td></tr>`).join("");
  applyFilter();
  showNode();
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

// applyFilter shows the services, federations and nodes whose service,
// node or federation name contains the filter's text.
function applyFilter() {
  const q = $("#filter").value.trim().toLowerCase();
  const hit = (el) => !q || el.dataset.find.includes(q);
  document.querySelectorAll("section.federation").forEach((sec) => {
    const fedHit = !q || sec.dataset.federation.toLowerCase().includes(q);
    let any = false;
    sec.querySelectorAll(".service").forEach((el) => { el.hidden = !(fedHit || hit(el)); any ||= !el.hidden; });
    sec.hidden = !(fedHit || any);
  });
  document.querySelectorAll("#nodes tbody tr[data-node]").forEach((tr) => { tr.hidden = !hit(tr); });
}
$("#filter").addEventListener("input", applyFilter);

// showNode renders the node page named by the address (#node=NAME): its
// last run and each service's result, its queue, its instances and the
// bindings those services were given.
function showNode() {
  const dlg = $("#node");
  const m = location.hash.match(/^#node=(.*)$/);
  if (!m || !state) { if (dlg.open) dlg.close(); return; }
  let name;
  try { name = decodeURIComponent(m[1]); } catch { name = m[1]; } // a hand-typed "%" is no escape
  const n = state.nodes.find((x) => x.name === name);
  const svcs = [];
  for (const f of state.federations) for (const s of f.services) {
    if (s.instances.some((i) => i.node === name) || (n && n.services.includes(s.name))) svcs.push([f.name, s]);
  }
  $("#node-body").innerHTML = `<h2>node <span class="name">${esc(name)}</span></h2>` + (n ? `
    <p>last run ${when(n.at)}${recordedNote(n)}: <span class="${esc(n.result)}">${esc(n.result || "no run recorded")}</span>${n.revision ? ", revision " + n.revision : ""}</p>
    <p>queue: ${n.live ? queueText(n.queue) : '<span class="why">not known: the listener did not answer</span>'}</p>
    <table class="node-runs"><tr><th>service</th><th>last run</th></tr>${n.details.map((d, i) => `<tr><td>${esc(n.services[i])}</td><td>${esc(d.slice(n.services[i].length + 2))}</td></tr>`).join("") || '<tr><td colspan="2" class="why">no service run recorded</td></tr>'}</table>
    <p>instances: ${n.instances.map(esc).join(", ") || "none"}</p>` : `<p class="why">no run recorded and no instance on this node</p>`) +
    svcs.map(([fed, s]) => renderService(fed, s)).join("") +
    `<p class="why">files: listeners do not report the files they render to the console; on the node, <code>curl 127.0.0.1:7704/status</code> shows its last run.</p>`;
  if (!dlg.open) dlg.showModal();
}
window.addEventListener("hashchange", showNode);
$("#node").addEventListener("close", () => { if (location.hash.startsWith("#node=")) history.replaceState(null, "", location.pathname + location.search); });

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
