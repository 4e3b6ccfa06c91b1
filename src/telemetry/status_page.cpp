#include "switchyard/telemetry/status_page.h"

namespace switchyard::telemetry {
namespace {

// Kept in one literal so the daemon needs no files at run time. The script
// fetches /status (same origin, GET only), builds each service's HTML and
// swaps a service's node only when its HTML changed: no flicker, and text a
// person is selecting stays put while nothing changes.
constexpr std::string_view kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>switchyard status</title>
<style>
:root { --blue:#2f6fde; --green:#1f9d55; --bad:#c62828; --warn:#b26a00; --fg:#1d232b; --muted:#5f6b7a;
        --bg:#f4f6f8; --card:#fff; --line:#dde2e8; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e3e8ee; --muted:#9aa6b4; --bg:#14181d; --card:#1d232b; --line:#2f3842; }
}
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; flex-wrap:wrap; gap:.3em 1.2em; align-items:baseline; padding:.8em 1em; background:var(--card);
         border-bottom:1px solid var(--line); position:sticky; top:0; z-index:1; }
header h1 { font-size:1.15em; margin:0; }
header .meta { color:var(--muted); }
#conn.stale { color:var(--bad); font-weight:600; }
main { padding:1em; display:grid; gap:1em; max-width:1200px; margin:0 auto; }
.service { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:1em; min-width:0; }
.service h2 { margin:0 0 .2em; font-size:1.1em; display:flex; flex-wrap:wrap; gap:.5em; align-items:center; }
.sub { color:var(--muted); margin-bottom:.6em; }
.badge { display:inline-block; padding:.05em .55em; border-radius:999px; font-size:.8em; font-weight:600;
         border:1px solid currentColor; }
.badge.bad { color:var(--bad); } .badge.warn { color:var(--warn); } .badge.ok { color:var(--green); }
.badge.info { color:var(--blue); }
.alert { border-left:4px solid var(--bad); padding:.3em .7em; margin:.4em 0; background:rgba(198,40,40,.07); }
.alert.warn { border-color:var(--warn); background:rgba(178,106,0,.08); }
.splits { display:grid; gap:.35em; margin:.6em 0; }
.split { display:grid; grid-template-columns:7.5em 1fr; gap:.6em; align-items:center; }
.split .label { color:var(--muted); }
.bar { display:flex; height:1.6em; border-radius:4px; overflow:hidden; background:var(--line); }
.bar span { display:flex; align-items:center; justify-content:center; color:#fff; font-size:.85em; font-weight:600;
            white-space:nowrap; overflow:hidden; transition:flex-basis .6s ease; }
.bar .blue { background:var(--blue); } .bar .green { background:var(--green); }
.rollout { border:1px solid var(--line); border-radius:6px; padding:.6em .8em; margin:.6em 0; }
.steps { display:flex; flex-wrap:wrap; gap:.3em; margin:.4em 0; }
.step { padding:.1em .5em; border-radius:4px; border:1px solid var(--line); font-variant-numeric:tabular-nums; }
.step.done { background:var(--green); color:#fff; border-color:var(--green); }
.step.now { outline:2px solid var(--blue); font-weight:700; }
.step.failed { background:var(--bad); color:#fff; border-color:var(--bad); }
.pools { display:grid; grid-template-columns:repeat(auto-fit,minmax(320px,1fr)); gap:.8em; margin-top:.6em; }
.pool { border:1px solid var(--line); border-radius:6px; padding:.5em .7em; min-width:0; }
.pool h3 { margin:0 0 .3em; font-size:1em; display:flex; gap:.5em; flex-wrap:wrap; align-items:center; }
.pool.blue h3 .dot { background:var(--blue); } .pool.green h3 .dot { background:var(--green); }
.dot { display:inline-block; width:.7em; height:.7em; border-radius:50%; background:var(--muted); }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:.25em .45em; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--muted); font-weight:500; font-size:.85em; }
td.num, th.num { text-align:right; }
td.why { white-space:normal; overflow-wrap:anywhere; color:var(--muted); min-width:10em; }
.up { color:var(--green); font-weight:600; } .down { color:var(--bad); font-weight:600; }
.empty { color:var(--muted); font-style:italic; }
footer { color:var(--muted); text-align:center; padding:1em; font-size:.85em; }
</style>
</head>
<body>
<header>
  <h1>switchyard</h1>
  <span class="meta" id="version"></span>
  <span class="meta" id="revision"></span>
  <span class="meta" id="conn">loading…</span>
</header>
<main id="services" aria-live="polite"></main>
<footer>Read-only view of <code>/status</code>, refreshed every 2&nbsp;s. Change traffic with <code>switchyardctl</code>.</footer>
<script>
"use strict";
const REFRESH_MS = 2000;
const esc = v => String(v ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const pct = (a, b) => (a + b) > 0 ? (100 * a / (a + b)) : 0;
const fmtPct = v => (Math.round(v * 10) / 10) + "%";
function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return v + " ms";
  const s = Math.round(v / 1000);
  return s < 120 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
}
function num(v, digits) { return v === null || v === undefined ? "–" : (digits === undefined ? String(v) : Number(v).toFixed(digits)); }

function bar(kind, split) {
  const b = split.blue, g = split.green, pb = pct(b, g), pg = b + g > 0 ? 100 - pb : 0;
  const seg = (cls, p, w) => `<span class="${cls}" style="flex-basis:${p}%" title="${cls} weight ${w} (${fmtPct(p)})">${p >= 12 ? cls + " " + fmtPct(p) : ""}</span>`;
  return `<div class="split" data-split="${kind}"><span class="label">${kind === "intent" ? "split" : "effective"} <small>${b}/${g}</small></span>` +
         `<div class="bar" role="img" aria-label="${kind}: blue ${fmtPct(pb)}, green ${fmtPct(pg)}" data-blue="${b}" data-green="${g}">` +
         seg("blue", pb, b) + seg("green", pg, g) + `</div></div>`;
}

function rollout(r) {
  if (!r) return "";
  const active = r.active;
  const cls = r.state === "promoted" ? "ok" : (r.state === "rolled_back" || r.state === "aborted") ? "bad" : "info";
  let steps = "";
  (r.history || []).forEach((s, i) => {
    const n = i + 1;
    let c = "step";
    if (s.verdict === "passed") c += " done";
    else if (s.verdict === "failed") c += " failed";
    if (active && n === r.step) c += " now";
    steps += `<span class="${c}" title="step ${n}: ${esc(s.verdict)}">${s.percent}%</span>`;
  });
  let window = "";
  if (r.window) {
    const w = r.window;
    window = `<div class="sub">step ${r.step}/${r.steps_total} at ${r.percent}% ${esc(r.to)} · elapsed ${ms(w.elapsed_ms)} of ${ms(w.hold_ms)} hold` +
             ` · time left ${w.time_left_ms === null ? "(clock " + esc(w.clock) + ")" : ms(w.time_left_ms)}` +
             (w.enough_samples ? "" : " · waiting for samples") + `</div>`;
    if (w.gates && w.gates.length) {
      window += `<div class="scroll"><table class="gates"><tr><th>gate</th><th class="num">limit</th><th class="num">observed</th><th class="num">samples</th><th>verdict</th></tr>`;
      for (const g of w.gates) {
        // Latency gates are in milliseconds; the rest are ratios or counts.
        const unit = /p99/.test(g.gate) ? " ms" : "";
        window += `<tr><td>${esc(g.gate)}</td><td class="num">${num(g.limit)}${unit}</td><td class="num">${num(g.observed)}${unit}</td>` +
                  `<td class="num">${num(g.samples)}</td><td>${esc(g.verdict)}${g.note ? " <small>" + esc(g.note) + "</small>" : ""}</td></tr>`;
      }
      window += `</table></div>`;
    }
  }
  return `<div class="rollout" data-rollout="${esc(r.state)}"><strong>rollout to ${esc(r.to)}</strong> <span class="badge ${cls}">${esc(r.state)}</span>` +
         (r.reason ? ` <span class="sub">${esc(r.reason)}</span>` : "") +
         `<div class="steps">${steps}</div>${window}</div>`;
}

function pool(colour, p) {
  let rows = "";
  for (const b of p.backends) {
    const health = b.health === "up" ? `<span class="up">up</span>` : `<span class="down">down</span>`;
    const eff = b.effective_weight !== b.weight ? ` <small>(${b.effective_weight})</small>` : "";
    rows += `<tr data-backend="${esc(b.address)}"><td>${esc(b.address)}</td><td>${health}${b.ejected ? ` <span class="badge bad">ejected</span>` : ""}</td>` +
            `<td class="num">${b.weight}${eff}</td><td>${esc(b.admin_state)}</td><td class="num">${b.active}</td>` +
            `<td class="num">${b.draining_connections}</td><td class="why">${esc(b.last_failure || "")}</td></tr>`;
  }
  const table = p.backends.length
    ? `<div class="scroll"><table><tr><th>backend</th><th>health</th><th class="num">weight</th><th>admin</th><th class="num">active</th><th class="num">draining</th><th>last failure</th></tr>${rows}</table></div>`
    : `<div class="empty">no backends</div>`;
  const state = p.state === "offline" ? ` <span class="badge bad">offline</span>` : "";
  const drain = p.draining ? ` <span class="badge warn">draining${p.drain_deadline_ms !== null ? " " + ms(p.drain_deadline_ms) : ""}</span>` : "";
  return `<div class="pool ${colour}" data-pool="${colour}"><h3><span class="dot"></span>${colour}${state}${drain}` +
         `<span class="sub">weight ${p.weight} · effective ${p.effective_weight} · ${p.active} active · ${p.draining_connections} draining</span></h3>${table}</div>`;
}

function service(s) {
  const fb = s.fallback || {};
  let badges = "";
  if (fb.active) badges += ` <span class="badge bad">fallback</span>`;
  if (s.panic) badges += ` <span class="badge bad">panic</span>`;
  if (s.rollout && s.rollout.active) badges += ` <span class="badge info">rollout</span>`;
  let alerts = "";
  if (fb.active) alerts += `<div class="alert">Fallback away from ${esc(fb.from)}: ${esc(fb.reason)}</div>`;
  if (s.panic) alerts += `<div class="alert warn">Panic: too few healthy backends; traffic goes to every backend regardless of health.</div>`;
  const limit = s.max_connections ? ` / ${s.max_connections}` : "";
  return `<h2>${esc(s.name)}${badges}</h2>` +
         `<div class="sub">${esc(s.listen)} · ${esc(s.balance)} · ${s.active_connections}${limit} connections · generation ${s.generation} · revision ${s.revision}</div>` +
         alerts +
         `<div class="splits">${bar("intent", s.split)}${bar("effective", s.effective_split)}</div>` +
         rollout(s.rollout) +
         `<div class="pools">${pool("blue", s.pools.blue)}${pool("green", s.pools.green)}</div>`;
}

const nodes = new Map();   // service name -> {el, html}
function render(status) {
  document.getElementById("version").textContent = `v${status.version} · ${status.engine}`;
  document.getElementById("revision").textContent = `revision ${status.revision}`;
  const main = document.getElementById("services");
  const seen = new Set();
  let previous = null;
  for (const s of status.services) {
    seen.add(s.name);
    let entry = nodes.get(s.name);
    if (!entry) {
      const el = document.createElement("section");
      el.className = "service";
      el.dataset.service = s.name;
      entry = {el, html: ""};
      nodes.set(s.name, entry);
    }
    const html = service(s);
    if (html !== entry.html) { entry.el.innerHTML = html; entry.html = html; }
    const want = previous ? previous.nextSibling : main.firstChild;
    if (want !== entry.el) main.insertBefore(entry.el, want);
    previous = entry.el;
  }
  for (const [name, entry] of nodes)
    if (!seen.has(name)) { entry.el.remove(); nodes.delete(name); }
  if (!status.services.length) main.innerHTML = `<div class="empty">no services</div>`;
}

async function refresh() {
  const conn = document.getElementById("conn");
  try {
    const r = await fetch("/status", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    conn.textContent = "updated " + new Date().toLocaleTimeString();
    conn.className = "meta";
  } catch (e) {
    conn.textContent = "stale: cannot read /status (" + e.message + ")";
    conn.className = "meta stale";
  }
  setTimeout(refresh, REFRESH_MS);
}
refresh();
</script>
</body>
</html>
)HTML";

} // namespace

std::string_view statusPageHtml() { return kPage; }

} // namespace switchyard::telemetry
