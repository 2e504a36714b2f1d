// sluice web UI: plain JavaScript, no build step, no external resources.
// Reads the JSON API, refetches when the SSE stream reports a change, never reloads the page.
// Every piece of server text goes through text nodes (never innerHTML), and the API token is
// never rendered: it lives in sessionStorage and only leaves in the Authorization header.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "sluice.apiToken";
const COMMANDS = ["promote", "pause", "resume", "abort", "retry", "undo"];
// Lets the browser test prove that updates arrive without a page load.
window.sluicePageId = Math.random().toString(36).slice(2);

// ------------------------------------------------------------------ DOM helpers

function h(tag, attrs, ...kids) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

// What holds the rollout besides its phase: conditions that are False (the data plane refused
// the plan, a workload change is pending, the controller cannot act), as `kubectl describe`
// shows them.
function blockers(s) {
  const bad = (s.conditions || []).filter((c) => c.status === "False" && c.type !== "Healthy" && c.type !== "Progressing");
  if (!bad.length) return null;
  return h("div", { class: "blockers", id: "blockers" },
    ...bad.map((c) => h("div", { class: "blocker" },
      h("b", {}, `${c.type}: ${c.reason}`), " ", c.message)));
}

function toast(message, kind) {
  const el = h("div", { class: `toast ${kind || ""}` }, message);
  $("#toasts").appendChild(el);
  setTimeout(() => el.remove(), 6000);
}

// ------------------------------------------------------------------ API

async function api(path, opts) {
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { message: text }; }
  if (!resp.ok) {
    const err = new Error((body && body.message) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

const enc = encodeURIComponent;
const rolloutPath = (ns, name) => `/api/v1/rollouts/${enc(ns)}/${enc(name)}`;

// ------------------------------------------------------------------ domain helpers

function strategyOf(spec) {
  const s = spec.strategy || {};
  if (s.canary) return "canary";
  if (s.darkLaunch) return s.darkLaunch.thenCanary ? "dark launch → canary" : "dark launch";
  if (s.abTest) return "A/B test";
  return "—";
}

const REASONS = {
  pausedByUser: "paused by user",
  inconclusive: "inconclusive analysis",
  awaitingPromotion: "awaiting promotion",
  awaitingWebhook: "awaiting webhook",
  outsideWindow: "outside schedule window",
  waitingForReady: "waiting for ready",
  analysisFailed: "analysis failed",
  preRolloutFailed: "pre-rollout webhook failed",
  aborted: "aborted",
  undone: "undone",
  progressDeadlineExceeded: "progress deadline exceeded",
};

// The server says which commands apply now (engine::command_allowed) and why not.
function commandState(view, cmd) {
  return (view.commands || []).find((c) => c.command === cmd) || { allowed: false, reason: "unknown command" };
}

function phaseBadge(status, id) {
  const reason = status.reason ? REASONS[status.reason] || status.reason : null;
  return h("span", { class: "phase-wrap" },
    h("span", { class: `phase phase-${status.phase}`, id: id || null }, status.phase),
    reason ? h("span", { class: `reason reason-${status.reason}` }, reason) : null);
}

function matchText(m) {
  const parts = Object.entries(m.headers || {}).map(([k, v]) => {
    if (v.exact !== undefined) return `${k} = "${v.exact}"`;
    if (v.prefix !== undefined) return `${k} starts with "${v.prefix}"`;
    if (v.regex !== undefined) return `${k} ~ /${v.regex}/`;
    return k;
  });
  return parts.length ? parts.join(" and ") : "every request";
}

function weightOf(route, dest) {
  return (route.destinations || [])
    .filter((d) => d.destination === dest)
    .reduce((a, d) => a + d.weight, 0);
}

function trafficBar(canary, mirror, big) {
  const stable = 100 - canary;
  return h("div", { class: `tbar ${big ? "big" : ""}`, role: "img",
    "aria-label": `stable ${stable}%, canary ${canary}%` },
    h("div", { class: "tbar-stable", style: `width:${stable}%` }, big && stable >= 8 ? `stable ${stable}%` : null),
    h("div", { class: "tbar-canary", style: `width:${canary}%` }, big && canary >= 8 ? `canary ${canary}%` : null),
    mirror ? h("div", { class: "tbar-mirror", style: `width:${mirror}%`, title: `mirror ${mirror}%` }) : null);
}

function defaultRoute(view) {
  const routes = (view.traffic && view.traffic.routes) || [];
  return routes[routes.length - 1];
}

// ------------------------------------------------------------------ list view

// Rollout files sluice could not load (GET /api/v1/problems): their rollouts keep their last
// good spec, so without this card a typo would only show in the server's log.
function renderProblems(problems) {
  if (!problems || !problems.length) return null;
  const where = (p) => {
    const at = [p.document ? `document ${p.document}` : "", p.path || "",
      p.line ? `line ${p.line}${p.column ? `:${p.column}` : ""}` : ""].filter(Boolean);
    return at.join(" · ") || "whole file";
  };
  const rows = problems.map((p) => h("tr", { class: "problem-row" },
    h("td", { class: "file" }, p.file),
    h("td", { class: "path" }, h("code", {}, where(p))),
    h("td", { class: "msg" }, p.message)));
  return h("div", { class: "card error", id: "problems" },
    h("h2", {}, `Files that could not be loaded (${problems.length})`),
    h("p", {}, "The rollouts these files defined keep running with their last good version."),
    h("table", { class: "problems" },
      h("thead", {}, h("tr", {}, ["File", "Where", "Problem"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}

function renderList(views, problems) {
  const rows = views.map((v) => {
    const s = v.status;
    const route = defaultRoute(v);
    const mirror = route && route.mirror ? route.mirror.percent : 0;
    const matched = ((v.traffic && v.traffic.routes) || []).some((r) => (r.matches || []).length);
    const key = `${v.namespace}/${v.name}`;
    const open = () => { location.hash = `#/rollouts/${enc(v.namespace)}/${enc(v.name)}`; };
    const stageCount = v.stages.length;
    const step = s.phase === "Idle" ? "—" : `${Math.min(s.stepIndex + 1, stageCount)}/${stageCount}`;
    return h("tr", { class: "rollout-row", "data-key": key, tabindex: 0, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter") open(); } },
      h("td", {}, h("a", { href: `#/rollouts/${enc(v.namespace)}/${enc(v.name)}`, class: "rname" },
        h("span", { class: "ns" }, `${v.namespace}/`), v.name)),
      h("td", {}, strategyOf(v.spec)),
      h("td", {}, phaseBadge(s)),
      h("td", { class: "traffic-cell" }, trafficBar(s.canaryWeight, mirror, false),
        h("span", { class: "tlabel" }, `${s.canaryWeight}% canary`,
          matched ? " + matched" : "", mirror ? ` + ${mirror}% mirror` : "")),
      h("td", { class: "num" }, step),
      h("td", { class: "revs" }, s.stableRevision || "—",
        s.canaryRevision && s.canaryRevision !== s.stableRevision ? h("span", { class: "arrow" }, " → ", h("b", {}, s.canaryRevision)) : null),
      h("td", { class: "msg" }, s.message || ""));
  });
  const table = views.length
    ? h("table", { class: "rollouts" },
      h("thead", {}, h("tr", {}, ["Rollout", "Strategy", "Phase", "Traffic", "Step", "Revision", "Status"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
    : h("div", { class: "empty" }, "No rollouts yet. Add a Rollout and it appears here.");
  return h("section", { class: "page" },
    h("div", { class: "page-head" }, h("h1", {}, "Rollouts"), h("span", { class: "count" }, `${views.length}`)),
    renderProblems(problems),
    h("div", { class: "card flush" }, table));
}

// ------------------------------------------------------------------ detail view

function timeline(view) {
  const s = view.status;
  const n = view.stages.length;
  const finalLabel = view.spec.promotion && view.spec.promotion.manual ? "manual promotion" : "promotion";
  const items = view.stages.map((label, i) => {
    let state = "pending";
    if (["Promoting", "Succeeded"].includes(s.phase) || s.reason === "awaitingPromotion") state = "done";
    else if (s.phase === "Failed") state = s.reason === "undone" ? "done" : i < s.stepIndex ? "done" : i === s.stepIndex ? "failed" : "pending";
    else if (["Progressing", "Paused"].includes(s.phase)) {
      state = i < s.stepIndex ? "done" : i === s.stepIndex ? (s.phase === "Paused" ? "held" : "current") : "pending";
    }
    return { label, state, n: i + 1 };
  });
  let finalState = "pending";
  if (s.phase === "Succeeded") finalState = "done";
  else if (s.phase === "Promoting") finalState = "current";
  else if (s.reason === "awaitingPromotion") finalState = "held";
  else if (s.phase === "Failed" && s.reason === "undone") finalState = "failed";
  items.push({ label: finalLabel, state: finalState, n: "»" });
  const icon = (it) => it.state === "done" ? "✓" : it.state === "failed" ? "✕" : it.state === "held" ? "‖" : it.n;
  return h("ol", { class: "timeline", id: "timeline" },
    items.map((it) => h("li", { class: `tl-${it.state}` },
      h("span", { class: "tl-dot" }, icon(it)),
      h("span", { class: "tl-label" }, it.label),
      h("span", { class: "tl-state" }, { done: "passed", failed: "failed", held: "waiting", current: "in progress", pending: "" }[it.state]))),
    n === 0 ? h("li", { class: "tl-pending" }, "no steps") : null);
}

function routesView(view) {
  const routes = (view.traffic && view.traffic.routes) || [];
  if (!routes.length) return h("p", { class: "muted" }, "No traffic applied yet.");
  return h("ul", { class: "routes" }, routes.map((r, i) => {
    const canary = weightOf(r, "canary");
    const last = i === routes.length - 1;
    return h("li", {},
      h("span", { class: "rmatch" }, (r.matches || []).length ? r.matches.map(matchText).join(" or ") : last && routes.length > 1 ? "all other requests" : "every request"),
      h("span", { class: "rarrow" }, "→"),
      canary === 100 ? h("span", { class: "dest canary" }, "canary 100%")
        : canary === 0 ? h("span", { class: "dest stable" }, "stable 100%")
          : [h("span", { class: "dest stable" }, `stable ${100 - canary}%`), " ", h("span", { class: "dest canary" }, `canary ${canary}%`)],
      r.mirror ? h("span", { class: "dest mirror" }, `mirror ${r.mirror.percent}% to ${r.mirror.destination}`) : null);
  }));
}

// About four round-numbered ticks inside [lo, hi].
function niceTicks(lo, hi) {
  const raw = (hi - lo) / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi && out.length < 8; v += step) out.push(v);
  return out;
}

function metricChart(metric, checks, specMetric) {
  const pts = checks.slice(-40);
  const last = pts[pts.length - 1];
  const min = last && last.min !== undefined ? last.min : specMetric && specMetric.thresholds ? specMetric.thresholds.min : undefined;
  const max = last && last.max !== undefined ? last.max : specMetric && specMetric.thresholds ? specMetric.thresholds.max : undefined;
  const W = 380, H = 150, L = 46, R = 10, T = 12, B = 24;
  const vals = pts.filter((p) => typeof p.value === "number").map((p) => p.value);
  const bounds = vals.concat([min, max].filter((x) => typeof x === "number"));
  let lo = Math.min(...bounds), hi = Math.max(...bounds);
  if (!bounds.length) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { hi += Math.abs(hi) * 0.01 + 1; lo -= Math.abs(lo) * 0.01 + 1; }
  const pad = (hi - lo) * 0.15;
  lo -= pad; hi += pad;
  const t0 = pts.length ? new Date(pts[0].at).getTime() : 0;
  const t1 = pts.length ? new Date(last.at).getTime() : 1;
  const x = (p) => L + (t1 > t0 ? (new Date(p.at).getTime() - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const kids = [];
  for (const v of niceTicks(lo, hi)) {
    kids.push(h("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    kids.push(h("svg:text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmtNum(v)));
  }
  // Failing side of each threshold shaded, the threshold dashed.
  if (typeof min === "number") {
    kids.push(h("svg:rect", { x: L, y: y(min), width: W - L - R, height: Math.max(0, H - B - y(min)), class: "bad-zone" }));
    kids.push(h("svg:line", { x1: L, x2: W - R, y1: y(min), y2: y(min), class: "threshold" }));
    kids.push(h("svg:text", { x: W - R - 2, y: y(min) + 13, class: "tlabel-svg", "text-anchor": "end" }, `min ${fmtNum(min)}`));
  }
  if (typeof max === "number") {
    kids.push(h("svg:rect", { x: L, y: T, width: W - L - R, height: Math.max(0, y(max) - T), class: "bad-zone" }));
    kids.push(h("svg:line", { x1: L, x2: W - R, y1: y(max), y2: y(max), class: "threshold" }));
    kids.push(h("svg:text", { x: W - R - 2, y: y(max) - 5, class: "tlabel-svg", "text-anchor": "end" }, `max ${fmtNum(max)}`));
  }
  const withVal = pts.filter((p) => typeof p.value === "number");
  if (withVal.length > 1) {
    kids.push(h("svg:polyline", { class: "series", points: withVal.map((p) => `${x(p).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }));
  }
  for (const p of pts) {
    if (typeof p.value === "number") {
      kids.push(h("svg:circle", { cx: x(p), cy: y(p.value), r: 3.5, class: `pt pt-${p.verdict}` },
        h("svg:title", {}, `${fmtTime(p.at)}  ${fmtNum(p.value)}  ${p.verdict}: ${p.reason}`)));
    } else {
      kids.push(h("svg:rect", { x: x(p) - 3, y: H - B - 8, width: 6, height: 8, class: "pt-none" },
        h("svg:title", {}, `${fmtTime(p.at)}  no value: ${p.reason}`)));
    }
  }
  if (pts.length) {
    kids.push(h("svg:text", { x: L, y: H - 6, class: "axis" }, fmtTime(pts[0].at)));
    kids.push(h("svg:text", { x: W - R, y: H - 6, class: "axis", "text-anchor": "end" }, fmtTime(last.at)));
  }
  const verdict = last ? last.verdict : "none";
  return h("div", { class: "chart", "data-metric": metric },
    h("div", { class: "chart-head" },
      h("span", { class: "chart-name" }, metric),
      h("span", { class: "chart-value" }, last ? fmtNum(last.value) : "no checks yet"),
      last ? h("span", { class: `verdict v-${verdict}` }, verdict) : null),
    h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
      "aria-label": `${metric}: last ${last ? fmtNum(last.value) : "none"}` }, kids),
    last ? h("div", { class: "chart-reason" }, last.reason) : null);
}

function charts(view, analysis) {
  const byMetric = new Map();
  for (const m of (view.spec.analysis && view.spec.analysis.metrics) || []) byMetric.set(m.name, []);
  for (const c of analysis) {
    if (!byMetric.has(c.metric)) byMetric.set(c.metric, []);
    byMetric.get(c.metric).push(c);
  }
  if (!byMetric.size) return h("p", { class: "muted" }, view.spec.skipAnalysis ? "Analysis is skipped for this rollout." : "No metrics configured.");
  const specMetrics = new Map(((view.spec.analysis && view.spec.analysis.metrics) || []).map((m) => [m.name, m]));
  return h("div", { class: "charts" }, [...byMetric.entries()].map(([name, checks]) => metricChart(name, checks, specMetrics.get(name))));
}

function eventsTable(events) {
  if (!events.length) return h("p", { class: "muted" }, "No events yet.");
  const recent = events.slice(-50).reverse();
  return h("table", { class: "events", id: "events" },
    h("tbody", {}, recent.map((e) => h("tr", { class: e.warning ? "warn" : "" },
      h("td", { class: "etime", title: e.at }, fmtTime(e.at)),
      h("td", { class: "ereason" }, e.reason),
      h("td", {}, e.message),
      h("td", { class: "num" }, `${e.canaryWeight}%`)))));
}

function renderDetail(view, analysis, events) {
  const s = view.status;
  const route = defaultRoute(view);
  const mirror = route && route.mirror ? route.mirror.percent : 0;
  const buttons = COMMANDS.map((cmd) => commandState(view, cmd)).map((st, i) => h("button", {
    class: `btn cmd ${st.command === "abort" || st.command === "undo" ? "danger" : st.command === "promote" ? "primary" : ""}`,
    "data-cmd": COMMANDS[i], disabled: !st.allowed,
    title: st.allowed ? `${COMMANDS[i]} ${view.namespace}/${view.name}` : st.reason,
    onclick: () => runCommand(view, COMMANDS[i]),
  }, COMMANDS[i][0].toUpperCase() + COMMANDS[i].slice(1)));
  const stageCount = view.stages.length;
  const stepText = s.phase === "Idle" ? "no rollout in progress" : `step ${Math.min(s.stepIndex + 1, stageCount)} of ${stageCount}`;
  return h("section", { class: "page detail", "data-key": `${view.namespace}/${view.name}` },
    h("a", { href: "#/", class: "back" }, "← all rollouts"),
    h("div", { class: "page-head" },
      h("h1", {}, h("span", { class: "ns" }, `${view.namespace}/`), view.name),
      phaseBadge(s, "phase"),
      h("span", { class: "spacer" }),
      h("div", { class: "actions" }, buttons)),
    h("div", { class: "summary" },
      h("span", { class: "message", id: "message" }, s.message || ""),
      h("span", { class: "facts" },
        h("span", {}, strategyOf(view.spec)),
        h("span", {}, stepText),
        h("span", {}, "stable ", h("b", {}, s.stableRevision || "—")),
        s.canaryRevision ? h("span", {}, "canary ", h("b", {}, s.canaryRevision)) : null,
        s.lastTransitionAt ? h("span", { title: s.lastTransitionAt }, `changed ${ago(s.lastTransitionAt)}`) : null)),
    blockers(s),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Steps"), timeline(view)),
      h("div", { class: "card" }, h("h2", {}, "Traffic"),
        h("div", { class: "split" },
          h("div", { class: "side stable" }, h("span", { class: "side-name" }, "stable"),
            h("span", { class: "side-pct", id: "stable-weight" }, `${100 - s.canaryWeight}%`),
            h("span", { class: "side-rev" }, s.stableRevision || "—")),
          h("div", { class: "side canary" }, h("span", { class: "side-name" }, "canary"),
            h("span", { class: "side-pct", id: "canary-weight" }, `${s.canaryWeight}%`),
            h("span", { class: "side-rev" }, s.canaryRevision && s.canaryRevision !== s.stableRevision ? s.canaryRevision : "—"),
            mirror ? h("span", { class: "side-extra" }, `+ ${mirror}% mirrored`) : null)),
        trafficBar(s.canaryWeight, mirror, true),
        routesView(view))),
    h("div", { class: "card" }, h("h2", {}, "Analysis"), charts(view, analysis)),
    h("div", { class: "card" }, h("h2", {}, "Events"), eventsTable(events)));
}

// ------------------------------------------------------------------ commands, token, dialogs

function askToken() {
  const dlg = $("#token-dialog");
  const input = $("#token-input");
  input.value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      $("#token-form").removeEventListener("submit", onSubmit);
      $("#token-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      input.value = "";
      if (dlg.open) dlg.close();
      resolve(value);
    };
    const onSubmit = (e) => { e.preventDefault(); done(input.value.trim() || null); };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    $("#token-form").addEventListener("submit", onSubmit);
    $("#token-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
    dlg.showModal();
    input.focus();
  });
}

function confirmDialog(title, text, okLabel) {
  const dlg = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (v) => {
      $("#confirm-form").removeEventListener("submit", onOk);
      $("#confirm-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onOk = (e) => { e.preventDefault(); done(true); };
    const onCancel = (e) => { e.preventDefault(); done(false); };
    $("#confirm-form").addEventListener("submit", onOk);
    $("#confirm-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
    dlg.showModal();
  });
}

async function runCommand(view, cmd) {
  const key = `${view.namespace}/${view.name}`;
  if (cmd === "abort" && !(await confirmDialog("Abort rollout?",
    `${key} goes back to ${view.status.stableRevision || "stable"}: all traffic returns to stable now.`, "Abort rollout"))) return;
  if (cmd === "undo" && !(await confirmDialog("Undo the promotion?",
    `${key} goes back to ${view.status.previousStableRevision}.`, "Undo"))) return;
  for (let attempt = 0; attempt < 2; attempt++) {
    let token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      token = await askToken();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
    }
    try {
      await api(`${rolloutPath(view.namespace, view.name)}/${cmd}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "web UI" }),
      });
      toast(`${cmd} sent to ${key}`, "ok");
      scheduleRefresh();
      return;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        toast(e.message, "err");
        if (e.status === 403 && /no API token/.test(e.message)) return;
        continue;
      }
      toast(e.message, "err");
      return;
    }
  }
}

// ------------------------------------------------------------------ routing and refresh

function route() {
  const m = location.hash.match(/^#\/rollouts\/([^/]+)\/([^/]+)$/);
  return m ? { ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) } : null;
}

let refreshing = false;
let again = false;

async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const r = route();
    let page;
    if (r) {
      const base = rolloutPath(r.ns, r.name);
      const [view, analysis, events] = await Promise.all([api(base), api(`${base}/analysis`), api(`${base}/events`)]);
      page = renderDetail(view, analysis, events);
      document.title = `${r.ns}/${r.name} · ${view.status.phase} — sluice`;
    } else {
      // An older server without the endpoint still shows its rollouts.
      const [views, problems] = await Promise.all([api("/api/v1/rollouts"),
        api("/api/v1/problems").catch(() => [])]);
      page = renderList(views, problems);
      document.title = "sluice — rollouts";
    }
    // Keep dialogs and focus stable: swap only the page content.
    $("#app").replaceChildren(page);
    $("#updated").textContent = `updated ${fmtTime(new Date().toISOString())}`;
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  } catch (e) {
    $("#app").replaceChildren(h("section", { class: "page" },
      route() ? h("a", { href: "#/", class: "back" }, "← all rollouts") : null,
      h("div", { class: "card error" }, h("h2", {}, "Cannot load"), h("p", {}, e.message))));
  } finally {
    refreshing = false;
    if (again) { again = false; scheduleRefresh(); }
  }
}

let timer = null;
function scheduleRefresh() {
  clearTimeout(timer);
  // Coalesce bursts of changes (one tick emits several) into one refetch.
  timer = setTimeout(refresh, 120);
}

function connect() {
  const live = $("#live");
  const es = new EventSource("/api/v1/events/stream");
  es.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "live on";
    scheduleRefresh();
  });
  es.addEventListener("change", (ev) => {
    const r = route();
    if (!r) return scheduleRefresh();
    try {
      const c = JSON.parse(ev.data);
      if (c.namespace === r.ns && c.name === r.name) scheduleRefresh();
    } catch (_) { scheduleRefresh(); }
  });
  // The server drops clients that fall behind; EventSource reconnects by itself.
  es.addEventListener("lagged", scheduleRefresh);
  es.addEventListener("error", () => {
    live.textContent = "reconnecting";
    live.className = "live off";
  });
}

window.addEventListener("hashchange", refresh);
refresh();
connect();
// Relative times ("changed 12s ago") stay fresh even when nothing changes.
setInterval(() => { if (!document.querySelector("dialog[open]")) scheduleRefresh(); }, 30000);
