// lookout's dashboards: the one script of the pages (bundled with uPlot by scripts/bundle
// into crates/lookout/assets/dash.js, embedded in the wasm, served under /ops/assets/).
// It only reads the JSON APIs of the same origin with the session cookie, and builds the
// page with DOM calls (textContent, never innerHTML of data).
//
//   fleet page  GET /ops/fleet every 2 s
//   shop page   GET /ops/shops/{shop}/status every 2 s (alerts, crons, spend: live),
//               GET /ops/shops/{shop}/history?range=24h|30d every 30 s and on a range change,
//               GET /ops/shops/{shop}/panels every 60 s (the app's panels)
//
// Live updates are polling: a firing or resolved alert shows within one poll (2 s). See
// README "Dashboards" for why polling rather than SSE or a WebSocket.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./dash.css";

const POLL_MS = 2000;
const HISTORY_MS = 30000;
const PANELS_MS = 60000;

// ---------- small DOM and formatting helpers ----------

function h(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-") || k === "href" || k === "title" || k === "role") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const nf = new Intl.NumberFormat("en-US");
const fmtInt = (n) => (n === null || n === undefined ? "–" : nf.format(Math.round(n)));
const fmtPct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(2) + "%");
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : ms >= 100 ? Math.round(ms) + " ms" : ms.toFixed(1) + " ms");
const fmtAxisMs = (v) => (v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + " s" : (v < 10 && v % 1 ? v.toFixed(1) : Math.round(v)) + " ms");
const fmtUsd = (micros) => (micros === null || micros === undefined ? "–" : "$" + (micros / 1e6).toFixed(2));
function fmtBytes(b) {
  if (b === null || b === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return (i === 0 ? b : b.toFixed(1)) + " " + units[i];
}
function fmtAgo(iso, now = Date.now()) {
  if (!iso) return "–";
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return "in " + fmtDur(-s);
  if (s < 5) return "just now";
  return fmtDur(s) + " ago";
}
function fmtDur(s) {
  if (s < 60) return s + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 86400) return (s / 3600).toFixed(s < 36000 ? 1 : 0) + " h";
  return Math.round(s / 86400) + " d";
}
function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}
const ruleLabel = (r) => String(r).replaceAll("_", " ");

// ---------- fetching and the live indicator ----------

class Unauthorized extends Error {}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { accept: "application/json" } });
  if (r.status === 401) throw new Unauthorized();
  if (!r.ok) {
    const e = new Error(url + ": " + r.status);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

function live(ok, text) {
  const el = document.getElementById("live");
  if (!el) return;
  el.classList.toggle("on", ok);
  el.classList.toggle("off", !ok);
  document.getElementById("live-text").textContent = text;
}

// Run `fn` now and every `ms` (skipped while the tab is hidden); a 401 (the session ended)
// reloads the page, which then shows the sign-in form.
function every(ms, fn) {
  let timer = null;
  const run = async () => {
    try {
      if (document.visibilityState !== "hidden") await fn();
    } catch (e) {
      if (e instanceof Unauthorized) {
        location.reload();
        return;
      }
      live(false, "offline");
      console.warn(e);
    }
    timer = setTimeout(run, ms);
  };
  run();
  return () => clearTimeout(timer);
}

function kpi(key, label, value, { detail, tone, raw, app } = {}) {
  return h(
    "div",
    { class: "kpi" + (tone ? " " + tone : "") + (app ? " app" : ""), "data-key": key },
    h("div", { class: "label", text: label }),
    h("div", { class: "value", text: value, "data-raw": raw === undefined || raw === null ? "" : String(raw) }),
    detail ? h("div", { class: "detail", text: detail }) : null,
  );
}

function badge(cls, text) {
  return h("span", { class: "badge " + cls, text });
}

// ---------- charts ----------

const COLORS = { a: "#4f46e5", b: "#f59e0b", bad: "#ef4444", soft: "rgba(79,70,229,0.12)", grid: "#eef0f2" };
const charts = new Map();

function axes(yFmt) {
  const base = { stroke: "#8b949e", grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid, width: 1 } };
  return [base, { ...base, size: 72, values: (u, vals) => vals.map(yFmt) }];
}

function chart(id, series, data, yFmt, opts = {}) {
  const el = document.getElementById(id);
  if (!el) return;
  const width = Math.max(280, el.clientWidth || el.parentElement.clientWidth - 32);
  const old = charts.get(id);
  if (old && old.series.length === series.length + 1) {
    old.setData(data);
    if (Math.abs(old.width - width) > 2) old.setSize({ width, height: 190 });
    return;
  }
  if (old) old.destroy();
  const u = new uPlot(
    {
      width,
      height: 190,
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { range: opts.yRange || ((u, min, max) => [0, max > 0 ? max * 1.15 : 1]) } },
      axes: axes(yFmt),
      series: [{ value: (u, v) => (v === null ? "–" : new Date(v * 1000).toISOString().slice(5, 16).replace("T", " ")) }, ...series],
    },
    data,
    el,
  );
  charts.set(id, u);
}

function line(label, stroke, fmt, fill) {
  return { label, stroke, width: 1.6, fill, points: { show: false }, value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)), spanGaps: false };
}

window.addEventListener("resize", () => {
  for (const [id, u] of charts) {
    const el = document.getElementById(id);
    if (el) u.setSize({ width: Math.max(280, el.clientWidth), height: 190 });
  }
});

// ---------- the fleet page ----------

function fleetPage() {
  every(POLL_MS, async () => {
    const f = await getJSON("/ops/fleet");
    renderFleet(f);
    live(true, "live · " + new Date().toISOString().slice(11, 19) + " UTC");
  });
}

function renderFleet(f) {
  const t = f.totals;
  document.getElementById("subtitle").textContent =
    t.shops + " shops · summaries as of " + fmtAgo(f.oldest_summary_at || f.generated_at) + " at the oldest";
  replace(
    document.getElementById("kpis"),
    kpi("shops_firing", "Shops firing", fmtInt(t.shops_firing), { raw: t.shops_firing, tone: t.shops_firing > 0 ? "bad" : "", detail: fmtInt(t.firing_alerts) + (t.firing_alerts === 1 ? " alert firing" : " alerts firing") }),
    kpi("shops_elevated_errors", "Elevated errors", fmtInt(t.shops_elevated_errors), { raw: t.shops_elevated_errors, tone: t.shops_elevated_errors > 0 ? "warn" : "", detail: "5xx rate above 1% (last hour)" }),
    kpi("requests_1h", "Requests (1 h)", fmtInt(t.requests_1h), { raw: t.requests_1h, detail: "all shops" }),
    kpi("cron_runs_today", "Cron runs today", fmtInt(t.cron_runs_today), { raw: t.cron_runs_today, tone: t.cron_missed_today > 0 ? "bad" : "", detail: fmtInt(t.cron_missed_today) + " missed" }),
    kpi("ai_spend_month_micros", "AI spend (month)", fmtUsd(t.ai_spend_month_micros), { raw: t.ai_spend_month_micros, detail: "all shops, this month" }),
  );
  document.getElementById("shop-count").textContent = f.shops.length + " shops";
  const rows = f.shops.map((s) => {
    const status = s.firing.length
      ? h("div", { class: "badges" }, s.firing.map((a) => badge(a.severity, ruleLabel(a.rule) + (a.cron ? " · " + a.cron : ""))))
      : s.stale
        ? badge("muted", "no recent summary")
        : badge("ok", "ok");
    return h(
      "tr",
      { class: s.firing.length ? "firing" : "", "data-shop": s.shop },
      h("td", { class: "shop" }, h("a", { href: "/ops/shop/" + encodeURIComponent(s.shop), text: s.shop })),
      h("td", {}, status),
      h("td", { class: "num", "data-col": "requests_1h", text: fmtInt(s.requests_1h) }),
      h("td", { class: "num" }, h("span", { class: "rate" + (s.elevated_errors ? " bad" : ""), "data-col": "error_rate_1h", text: fmtPct(s.error_rate_1h) })),
      h("td", { class: "num", "data-col": "request_p95_ms", text: fmtMs(s.request_p95_ms) }),
      h("td", { class: "num", "data-col": "crons_today", text: s.crons_today.runs + (s.crons_today.missed ? " · " + s.crons_today.missed + " missed" : "") }),
      h("td", { class: "num", "data-col": "ai_spend_month_micros", text: fmtUsd(s.ai_spend_month_micros) }),
    );
  });
  replace(document.querySelector("#shops tbody"), rows.length ? rows : h("tr", {}, h("td", { class: "empty", text: "No shop has reported yet." })));
  const firing = f.shops.flatMap((s) => s.firing.map((a) => ({ ...a, shop: s.shop })));
  // The fleet object's own incidents first: one rule firing in many shops (`fleet:{rule}`),
  // a shop monitor that stopped evaluating (`monitor_stalled`).
  const fleetItems = (f.fleet_incidents || []).map((i) =>
    i.shop
      ? h(
          "li",
          { "data-rule": i.rule, "data-shop": i.shop, class: "fleet" },
          badge(i.severity, i.severity),
          h("a", { href: "/ops/shop/" + encodeURIComponent(i.shop), text: i.shop }),
          h("span", { text: ruleLabel(i.rule) }),
          h("span", { class: "when", text: fmtAgo(i.since) }),
        )
      : h(
          "li",
          { "data-rule": i.rule, class: "fleet" },
          badge(i.severity, i.severity),
          h("span", { class: "fleet-tag", text: "fleet" }),
          h("span", { text: ruleLabel(i.rule.replace(/^fleet:/, "")) + " in " + i.shops.length + " shops" + (i.silenced_by ? " (silenced)" : "") }),
          h("span", { class: "when", text: fmtAgo(i.since) }),
        ),
  );
  const shopItems = firing.map((a) =>
    h(
      "li",
      { "data-rule": a.rule, "data-shop": a.shop },
      badge(a.severity, a.severity),
      h("a", { href: "/ops/shop/" + encodeURIComponent(a.shop), text: a.shop }),
      h("span", { text: ruleLabel(a.rule) + (a.cron ? " · " + a.cron : "") }),
      h("span", { class: "when", text: fmtAgo(a.since) }),
    ),
  );
  const items = [...fleetItems, ...shopItems];
  replace(document.getElementById("firing"), items.length ? items : h("li", { class: "empty", text: "Nothing is firing." }));
  const max = Math.max(1, ...f.top_error_classes.map((c) => c.count));
  replace(
    document.getElementById("classes"),
    f.top_error_classes.length
      ? f.top_error_classes.map((c) =>
          h(
            "li",
            { "data-class": c.class },
            h("span", { class: "mono", text: c.class }),
            h("span", { class: "count", text: fmtInt(c.count) + " · " + c.shops + (c.shops === 1 ? " shop" : " shops") }),
            h("div", { class: "bar" }, h("span", { "data-w": String(c.count / max) })),
          ),
        )
      : h("li", { class: "empty", text: "No errors in the last hour." }),
  );
  // Bar widths through the CSSOM (allowed by the CSP, unlike style attributes).
  for (const s of document.querySelectorAll("#classes .bar span")) s.style.width = (Number(s.dataset.w) * 100).toFixed(1) + "%";
}

// ---------- the shop page ----------

function shopPage(shop) {
  const base = "/ops/shops/" + encodeURIComponent(shop);
  let range = "24h";
  let lastHistory = null;
  let lastStatus = null;
  let panels = [];
  const refreshHistory = async () => {
    lastHistory = await getJSON(base + "/history?range=" + range);
    renderHistory(lastHistory);
    renderKpis(lastStatus, lastHistory, panels);
  };
  for (const b of document.querySelectorAll(".range button")) {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll(".range button")) o.classList.toggle("on", o === b);
      refreshHistory().catch((e) => console.warn(e));
    });
  }
  every(POLL_MS, async () => {
    lastStatus = await getJSON(base + "/status");
    renderStatus(shop, lastStatus, lastHistory);
    renderKpis(lastStatus, lastHistory, panels);
    live(true, "live · " + new Date().toISOString().slice(11, 19) + " UTC");
  });
  every(HISTORY_MS, refreshHistory);
  every(PANELS_MS, async () => {
    try {
      panels = (await getJSON(base + "/panels")).panels;
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      panels = [];
    }
    renderKpis(lastStatus, lastHistory, panels);
  });
}

function p95Window(status) {
  const rule = status.rules.find((r) => r.rule === "request_p95");
  const w = rule && status.windows.find((x) => x.window_s === rule.params.window_s);
  return w || status.windows[status.windows.length - 1];
}

function renderKpis(status, history, panels) {
  const items = [];
  if (history) {
    const lh = history.last_hour;
    items.push(kpi("requests_1h", "Requests (1 h)", fmtInt(lh.requests), { raw: lh.requests, detail: fmtInt(lh.errors_5xx) + " were 5xx" }));
    items.push(kpi("error_rate_1h", "Error rate (1 h)", fmtPct(lh.error_rate), { raw: lh.error_rate, tone: lh.error_rate > 0.01 ? "bad" : "" }));
  }
  if (status) {
    const w = p95Window(status);
    if (w) items.push(kpi("request_p95_ms", "p95 latency", fmtMs(w.request_p95_ms), { raw: w.request_p95_ms, detail: "last " + fmtDur(w.window_s) + " · p50 " + fmtMs(w.request_p50_ms) }));
  }
  for (const p of panels || []) items.push(kpi("panel_" + p.key, p.label, p.display, { raw: p.value, detail: p.detail, app: true }));
  replace(document.getElementById("kpis"), items);
}

// The alerts that fire now: the monitor's rules, then the cron watchdog and business alerts.
function firingAlerts(s) {
  const out = [];
  for (const r of s.rules) {
    if (r.state !== "firing") continue;
    out.push({ rule: r.rule, severity: r.severity, since: r.fired_at || r.since, description: r.description, action: r.action, value: r.value, params: r.params, diagnosis: r.diagnosis, key: r.dedup_key });
  }
  for (const c of s.crons || []) {
    if (c.missed_firing) out.push({ rule: "cron_missed", severity: "critical", since: c.next_expected_at, description: c.cron + " had no start and no end by its slot + grace (" + c.schedule + ")", action: "Check Cloudflare cron status; run it by hand if needed", cron: c.cron });
    if (c.stuck_firing) out.push({ rule: "cron_stuck", severity: "high", since: c.last_start_at, description: c.cron + " started " + fmtAgo(c.last_start_at) + " and has not ended (max " + fmtDur(c.max_runtime_s) + ")", action: "Check the Worker's logs for the run; run it by hand once it is safe", cron: c.cron });
  }
  if (s.audit_chain && s.audit_chain.broken) out.push({ rule: "audit_chain_broken", severity: "high", since: s.audit_chain.broken_since, description: "The daily reconciliation could not verify the audit hash chain.", action: "Investigate immediately; don't deploy until resolved" });
  const tw = s.costs && s.costs.twilio;
  if (tw && tw.firing) out.push({ rule: "twilio_cost_projection", severity: "warning", since: tw.last_evaluated_at, description: "This week's SMS spend projects to " + fmtUsd(tw.week && tw.week.projected_micros) + ", above 150% of the " + fmtUsd(tw.weekly_budget_micros) + " budget.", action: "Contact the owner about SMS volume" });
  const ai = s.costs && s.costs.ai;
  if (ai && ai.paused) out.push({ rule: "ai_cost_projection", severity: "high", since: ai.pause && ai.pause.since_ms ? new Date(ai.pause.since_ms).toISOString() : ai.last_evaluated_at, description: "AI is paused: the month's spend projects above the " + fmtUsd(ai.monthly_cap_micros) + " cap.", action: "Pause AI; notify the shop owner" });
  return out;
}

function diagnosis(a, status, history) {
  const parts = [];
  if (a.diagnosis && typeof a.diagnosis === "object") {
    for (const [k, v] of Object.entries(a.diagnosis)) {
      if (v === null || v === undefined) continue;
      // The shapes the monitor's diagnosis uses (error classes, slowest routes and D1
      // signatures); anything else is shown as it comes.
      const item = (x) => {
        if (x === null || typeof x !== "object") return String(x);
        if ("class" in x) {
          const share = typeof x.share === "number" ? " " + (x.share * 100).toFixed(0) + "%" : "";
          return x.class + " ×" + fmtInt(x.count) + share + (x.first_build ? " (first in " + x.first_build + ")" : "");
        }
        if ("key" in x && "max_ms" in x) return x.key + " max " + fmtMs(x.max_ms) + (x.count ? " ×" + fmtInt(x.count) : "");
        return Object.values(x).join(" ");
      };
      const text = Array.isArray(v) ? v.map(item).join(", ") : typeof v === "object" ? item(v) : String(v);
      parts.push([ruleLabel(k), text]);
    }
  }
  if (a.rule === "http_5xx_rate" || a.rule === "request_p95" || a.rule === "d1_p95") {
    const w = status.windows.find((x) => x.window_s === a.params.window_s);
    if (a.rule === "http_5xx_rate") {
      parts.push(["rate", fmtPct(a.value) + " (threshold " + fmtPct(a.params.threshold_ratio) + ")"]);
      if (w) parts.push(["window", fmtInt(w.errors_5xx) + " of " + fmtInt(w.requests) + " requests were 5xx in " + fmtDur(w.window_s)]);
      const classes = history && history.last_hour.top_error_classes;
      if (classes && classes.length && !(a.diagnosis && a.diagnosis.error_classes)) parts.push(["error classes (1 h)", classes.map((c) => c.class + " ×" + c.count).join(", ")]);
    } else {
      parts.push(["p95", fmtMs(a.value) + " (threshold " + fmtMs(a.params.threshold_ms) + ")"]);
      if (w) parts.push(["window", fmtInt(a.rule === "d1_p95" ? w.d1_samples : w.requests) + " samples in " + fmtDur(w.window_s)]);
    }
  }
  return parts;
}

function renderStatus(shop, s, history) {
  const alerts = firingAlerts(s);
  const pending = s.rules.filter((r) => r.state === "pending");
  const badgeEl = document.getElementById("state-badge");
  badgeEl.className = "badge " + (alerts.length ? "firing" : pending.length ? "pending" : "ok");
  badgeEl.textContent = alerts.length ? alerts.length + " firing" : pending.length ? pending.length + " pending" : "all clear";
  document.getElementById("subtitle").textContent =
    "evaluated " + fmtAgo(s.last_evaluated_at) + " · build " + (s.build_version || "–") + (s.config_error ? " · config error: " + s.config_error : "");
  replace(
    document.getElementById("alerts"),
    alerts.map((a) =>
      h(
        "div",
        { class: "alert " + a.severity, "data-rule": a.rule },
        h("div", { class: "alert-head" }, badge(a.severity, a.severity), h("span", { class: "rule", text: ruleLabel(a.rule) + (a.cron ? " · " + a.cron : "") }), badge("firing", "firing"), h("span", { class: "since", text: "since " + fmtAgo(a.since) })),
        h("p", { text: a.description }),
        h("div", { class: "diag" }, diagnosis(a, s, history).map(([k, v]) => h("span", {}, h("b", { text: k + ": " }), v))),
        h("div", { class: "action", text: a.action }),
      ),
    ),
  );
  // Crons
  const crons = (s.crons || []).map((c) => {
    const lr = c.last_run;
    const state = c.missed_firing ? "missed" : c.stuck_firing ? "stuck" : c.state;
    const tone = { ended_ok: "ok", started: "info", expected: "muted", ended_error: "high", missed: "critical", stuck: "high", unknown: "muted" }[state] || "muted";
    return h(
      "tr",
      { "data-cron": c.cron },
      h("td", {}, h("div", { class: "mono", text: c.cron }), h("div", { class: "hint", text: c.schedule })),
      h("td", {}, badge(tone, state.replace("_", " "))),
      h("td", { text: lr ? fmtAgo(new Date(lr.ended_at_ms || lr.started_at_ms).toISOString()) + (lr.errors_count ? " · " + lr.errors_count + " errors" : "") : "never" }),
      h("td", { class: "num", text: lr && lr.ms !== null ? fmtDur(Math.round(lr.ms / 1000)) : "–" }),
      h("td", { text: c.next_expected_at ? fmtTime(c.next_expected_at) : "–" }),
    );
  });
  replace(document.querySelector("#crons tbody"), crons.length ? crons : h("tr", {}, h("td", { class: "empty", text: "No crons are watched (CRON_WATCH)." })));
  // Spend
  const rows = [];
  const tw = s.costs.twilio;
  if (tw) rows.push(spendRow("twilio", "Twilio (SMS) this week", tw.week, tw.weekly_budget_micros, "budget", tw.firing));
  const ai = s.costs.ai;
  if (ai) rows.push(spendRow("ai", "AI (Claude) this month", ai.month, ai.monthly_cap_micros, "cap", ai.paused, ai.paused ? "AI is paused" : null));
  replace(document.getElementById("spend"), rows);
  for (const m of document.querySelectorAll("#spend .meter > span")) m.style.width = m.dataset.w;
  // Silences (when the monitor reports them) and recent changes
  const silences = s.silences || [];
  replace(
    document.getElementById("silences"),
    silences.length
      ? silences.map((x) => h("li", { "data-silence": x.id || "" }, badge("muted", "silenced"), h("span", { text: (x.rule || "*") + " · until " + fmtTime(x.ends_at || x.end) + (x.comment ? " · " + x.comment : "") })))
      : h("li", { class: "empty", text: "No silences." }),
  );
  const changes = (s.recent_changes || []).slice(-8).reverse();
  replace(
    document.getElementById("changes"),
    changes.length
      ? changes.map((c) => h("li", {}, badge(c.to, c.to), h("span", { text: ruleLabel(c.rule) + " (from " + c.from + ")" }), h("span", { class: "when", text: fmtAgo(c.at) })))
      : h("li", { class: "empty", text: "No alert changes yet." }),
  );
}

function spendRow(key, label, period, limit, limitName, over, note) {
  const spent = period ? period.spent_micros : 0;
  const projected = period ? period.projected_micros : 0;
  const scale = Math.max(limit || 0, projected, spent, 1);
  return h(
    "div",
    { class: "spend-row", "data-spend": key },
    h("div", { class: "spend-top" }, h("span", {}, h("b", { text: label })), h("span", { text: fmtUsd(spent) + (limit ? " of " + fmtUsd(limit) + " " + limitName : " · no " + limitName + " set") })),
    h(
      "div",
      { class: "meter" + (over ? " over" : "") },
      h("span", { class: "proj", "data-w": ((projected / scale) * 100).toFixed(1) + "%" }),
      h("span", { class: "spent", "data-w": ((spent / scale) * 100).toFixed(1) + "%" }),
    ),
    h("div", { class: "spend-foot", text: "projected " + fmtUsd(projected) + (note ? " · " + note : "") }),
  );
}

function renderHistory(hist) {
  const s = hist.series;
  const pct = s.error_rate.map((r) => (r === null ? null : r * 100));
  const stepLabel = hist.step_s === 60 ? "per minute" : "per hour";
  document.getElementById("req-hint").textContent = stepLabel + " · " + fmtInt(hist.totals.requests) + " in " + hist.range;
  document.getElementById("err-hint").textContent = stepLabel + " · " + fmtPct(hist.totals.error_rate) + " over " + hist.range;
  chart("chart-requests", [{ ...line("requests", COLORS.a, fmtInt, COLORS.soft) }, line("5xx", COLORS.bad, fmtInt)], [s.t, s.requests, s.errors_5xx], (v) => fmtInt(v));
  chart("chart-errors", [line("5xx rate", COLORS.bad, (v) => v.toFixed(2) + "%", "rgba(239,68,68,0.10)")], [s.t, pct], (v) => v.toFixed(v < 1 ? 2 : 1) + "%");
  chart("chart-latency", [line("p50", COLORS.a, fmtMs), line("p95", COLORS.b, fmtMs)], [s.t, s.request_p50_ms, s.request_p95_ms], fmtAxisMs);
  chart("chart-d1", [line("p50", COLORS.a, fmtMs), line("p95", COLORS.b, fmtMs)], [s.t, s.d1_p50_ms, s.d1_p95_ms], fmtAxisMs);
  const r2 = hist.r2 || [];
  const r2t = r2.map((p) => Math.floor(Date.parse(p.at) / 1000));
  document.getElementById("r2-hint").textContent = r2.length ? fmtBytes(r2[r2.length - 1].bytes) + " · " + fmtInt(r2[r2.length - 1].objects) + " objects" : "no sample yet (daily job)";
  chart("chart-r2", [line("bytes", COLORS.a, fmtBytes, COLORS.soft)], [r2t, r2.map((p) => p.bytes)], fmtBytes);
}

// ---------- entry ----------

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "fleet") fleetPage();
  else if (page === "shop") shopPage(document.body.dataset.shop);
});
