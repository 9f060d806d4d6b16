// The dashboards in a real browser: Debian's headless Chromium driven by playwright-core
// through its executable path (no browser download). Run by e2e/tests/e2e_dash.rs against a
// Worker it started in `wrangler dev` (the harness's conventions: free port, own state dir).
//
//   LOOKOUT_BASE        http://127.0.0.1:PORT of the Worker
//   LOOKOUT_OPS_TOKEN   the operator token
//   LOOKOUT_SHOP        the shop whose page is opened and whose 5xx burst is triggered
//   LOOKOUT_OUT         folder for the screenshots (fleet.png, shop.png, ...)
//   LOOKOUT_CHROMIUM    the browser (default /usr/bin/chromium)
//
// What it checks, as an operator would: a page without a session is the sign-in form (401);
// a wrong token is refused (401, no cookie); the right one sets an HttpOnly, Secure,
// SameSite=Strict cookie limited to /ops; the fleet and shop pages show the numbers their
// JSON APIs give; a 5xx burst fires an alert that appears on the open shop page (and the
// fleet page) within 5 s of the monitor firing it, and disappears within 5 s of its
// resolve; no CSP violation and no script error happen on any page. Prints one line
// `RESULT {json}` with the figures; exits non-zero on the first failed check.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.LOOKOUT_BASE;
const TOKEN = process.env.LOOKOUT_OPS_TOKEN;
const SHOP = process.env.LOOKOUT_SHOP || "swicked";
const OUT = process.env.LOOKOUT_OUT || "target/e2e/dash";
const CHROMIUM = process.env.LOOKOUT_CHROMIUM || "/usr/bin/chromium";
const LIVE_LIMIT_MS = 5000;
assert.ok(BASE && TOKEN, "LOOKOUT_BASE and LOOKOUT_OPS_TOKEN are required");
fs.mkdirSync(OUT, { recursive: true });

const result = { checks: [] };
const step = (name) => {
  result.checks.push(name);
  console.error(`[dash] ${name}`);
};

// ---- HTTP helpers (node's http: the Host header names the shop) ----

function shopRequest(pathname, { method = "GET" } = {}) {
  const u = new URL(BASE);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: pathname, method, headers: { host: `${SHOP}.localhost`, cookie: "session=sess_robbie" } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

async function api(pathname) {
  const r = await fetch(BASE + pathname, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200, `${pathname}: ${r.status}`);
  return r.json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retry `check` (which throws) until it passes or `ms` runs out; the page polls every 2 s. */
async function eventually(what, check, ms = 8000) {
  const t0 = Date.now();
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() - t0 > ms) {
        e.message = `${what}: ${e.message}`;
        throw e;
      }
      await sleep(200);
    }
  }
}

// The page's formatting (crates/lookout/web/dash.js), to compare what is shown with the API.
const nf = new Intl.NumberFormat("en-US");
const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : nf.format(Math.round(n))),
  pct: (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(2) + "%"),
  ms: (ms) => (ms === null || ms === undefined ? "–" : ms >= 100 ? Math.round(ms) + " ms" : ms.toFixed(1) + " ms"),
  usd: (m) => (m === null || m === undefined ? "–" : "$" + (m / 1e6).toFixed(2)),
};

// ---- the browser ----

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
const page = await context.newPage();
const problems = [];
page.on("console", (m) => {
  const t = m.text();
  if (/Content Security Policy|Refused to/i.test(t)) problems.push("CSP: " + t);
});
page.on("pageerror", (e) => problems.push("script error: " + e.message));
page.on("requestfailed", (r) => {
  // Polls cut short by a navigation are aborted, not failed.
  if (!/ERR_ABORTED/.test(r.failure()?.errorText || "")) problems.push("request failed: " + r.url());
});

try {
  // 1. No session: the fleet page is the sign-in form, with a 401.
  let r = await page.goto(BASE + "/ops/");
  assert.equal(r.status(), 401, "the fleet page without a session");
  assert.ok(await page.locator("form[action='/ops/login'] input[name=token]").count(), "the sign-in form");
  const csp = r.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(await page.locator("script:not([src])").count(), 0, "no inline script");
  step("no session: 401 with the sign-in form and a strict CSP");
  await page.screenshot({ path: path.join(OUT, "signin.png") });

  // 2. A wrong token: 401 and nothing else (no cookie).
  await page.fill("input[name=token]", "not-the-token");
  const [wrong] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.equal(wrong.status(), 401, "a wrong token");
  assert.equal((await context.cookies()).length, 0, "no cookie after a wrong token");
  step("a wrong token: 401, no cookie");

  // 3. The right token: a signed session cookie, then the fleet page.
  await page.fill("input[name=token]", TOKEN);
  await Promise.all([page.waitForURL(BASE + "/ops/"), page.click("button[type=submit]")]);
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1, JSON.stringify(cookies));
  const c = cookies[0];
  assert.equal(c.name, "lookout_ops");
  assert.equal(c.path, "/ops");
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, "Strict");
  const lifetimeH = (c.expires * 1000 - Date.now()) / 3600e3;
  assert.ok(lifetimeH > 11.9 && lifetimeH <= 12.01, `session lasts ${lifetimeH} h`);
  assert.ok(!c.value.includes(TOKEN), "the cookie carries no token");
  assert.equal(await page.evaluate(() => document.cookie), "", "HttpOnly: scripts cannot read it");
  step("sign-in: HttpOnly, Secure, SameSite=Strict cookie for /ops, 12 h");

  // 4. The fleet page shows the fleet API's numbers.
  await page.waitForSelector(`#shops tr[data-shop='${SHOP}']`);
  const fleetShown = await eventually("fleet page equals GET /ops/fleet", async () => {
    const f = await api("/ops/fleet");
    const shown = await page.evaluate(() => ({
      kpis: Object.fromEntries([...document.querySelectorAll("#kpis .kpi")].map((k) => [k.dataset.key, k.querySelector(".value").textContent])),
      rows: [...document.querySelectorAll("#shops tbody tr[data-shop]")].map((tr) => ({
        shop: tr.dataset.shop,
        ...Object.fromEntries([...tr.querySelectorAll("[data-col]")].map((td) => [td.dataset.col, td.textContent])),
      })),
    }));
    assert.equal(shown.kpis.requests_1h, fmt.int(f.totals.requests_1h));
    assert.equal(shown.kpis.shops_firing, fmt.int(f.totals.shops_firing));
    assert.equal(shown.kpis.shops_elevated_errors, fmt.int(f.totals.shops_elevated_errors));
    assert.equal(shown.kpis.cron_runs_today, fmt.int(f.totals.cron_runs_today));
    assert.equal(shown.kpis.ai_spend_month_micros, fmt.usd(f.totals.ai_spend_month_micros));
    assert.deepEqual(shown.rows.map((x) => x.shop), f.shops.map((s) => s.shop), "sorted as the API sorts");
    for (const s of f.shops) {
      const row = shown.rows.find((x) => x.shop === s.shop);
      assert.equal(row.requests_1h, fmt.int(s.requests_1h), s.shop);
      assert.equal(row.error_rate_1h, fmt.pct(s.error_rate_1h), s.shop);
      assert.equal(row.request_p95_ms, fmt.ms(s.request_p95_ms), s.shop);
      assert.equal(row.ai_spend_month_micros, fmt.usd(s.ai_spend_month_micros), s.shop);
    }
    return { totals: f.totals, shops: f.shops.length };
  });
  result.fleet = fleetShown;
  step("the fleet page shows GET /ops/fleet's numbers");
  await page.screenshot({ path: path.join(OUT, "fleet.png") });

  // 5. The shop page (through the fleet table's link) shows its APIs' numbers.
  await Promise.all([page.waitForURL(BASE + "/ops/shop/" + SHOP), page.click(`#shops tr[data-shop='${SHOP}'] td.shop a`)]);
  await page.waitForSelector("#kpis .kpi[data-key=requests_1h]");
  await page.waitForSelector("#kpis .kpi[data-key=panel_revenue_today]");
  await page.waitForSelector("#chart-requests canvas");
  const shopShown = await eventually("shop page equals its APIs", async () => {
    const [hist, panels] = await Promise.all([api(`/ops/shops/${SHOP}/history?range=24h`), api(`/ops/shops/${SHOP}/panels`)]);
    const kpis = await page.evaluate(() =>
      Object.fromEntries([...document.querySelectorAll("#kpis .kpi")].map((k) => [k.dataset.key, k.querySelector(".value").textContent])),
    );
    assert.equal(kpis.requests_1h, fmt.int(hist.last_hour.requests));
    assert.equal(kpis.error_rate_1h, fmt.pct(hist.last_hour.error_rate));
    for (const p of panels.panels) assert.equal(kpis["panel_" + p.key], p.display, p.key);
    const hint = await page.textContent("#req-hint");
    assert.ok(hint.includes(fmt.int(hist.totals.requests)), `requests hint ${hint} vs ${hist.totals.requests}`);
    return { requests_1h: hist.last_hour.requests, panels: panels.panels.map((p) => [p.key, p.display]) };
  });
  result.shop = shopShown;
  const revenue = shopShown.panels.find(([k]) => k === "revenue_today");
  assert.ok(revenue && revenue[1] !== "$0.00", "today's revenue from D1 transactions: " + JSON.stringify(shopShown.panels));
  step("the shop page shows its history, status and panels APIs' numbers");

  // 6. Live: a 5xx burst fires http_5xx_rate; the open page shows it within 5 s.
  assert.equal(await page.locator("#alerts .alert[data-rule=http_5xx_rate]").count(), 0, "not firing before the burst");
  const burst = (async () => {
    for (let i = 0; i < 40; i++) {
      assert.equal(await shopRequest("/__test/fault?status=503"), 503);
      await sleep(125);
    }
  })();
  const appeared = page.waitForSelector("#alerts .alert[data-rule=http_5xx_rate]", { timeout: 30_000 }).then(() => Date.now());
  await burst;
  const shownAt = await appeared;
  const rule = (await api(`/ops/shops/${SHOP}/status`)).rules.find((x) => x.rule === "http_5xx_rate");
  assert.equal(rule.state, "firing");
  const firedAt = Date.parse(rule.fired_at);
  const liveMs = shownAt - firedAt;
  assert.ok(liveMs <= LIVE_LIMIT_MS, `the alert showed ${liveMs} ms after it fired`);
  result.fired_to_shown_ms = liveMs;
  const alertText = await page.textContent("#alerts .alert[data-rule=http_5xx_rate]");
  assert.match(alertText, /critical/);
  assert.match(alertText, /of \d[\d,]* requests were 5xx/, "the diagnosis names the window's 5xx");
  assert.match(await page.textContent("#state-badge"), /firing/);
  step(`live: the alert showed ${liveMs} ms after the monitor fired it`);
  await page.screenshot({ path: path.join(OUT, "shop.png"), fullPage: true });

  // ... and the fleet page shows the shop firing, first.
  const fleetPage = await context.newPage();
  fleetPage.on("pageerror", (e) => problems.push("script error: " + e.message));
  await fleetPage.goto(BASE + "/ops/");
  await fleetPage.waitForSelector(`#shops tbody tr.firing[data-shop='${SHOP}']`, { timeout: 15_000 });
  assert.equal(await fleetPage.getAttribute("#shops tbody tr[data-shop]", "data-shop"), SHOP, "the firing shop is first");
  assert.ok(await fleetPage.locator(`#firing li[data-rule=http_5xx_rate][data-shop='${SHOP}']`).count());
  step("the fleet page lists the firing shop first");
  await fleetPage.setViewportSize({ width: 1440, height: 560 });
  await fleetPage.screenshot({ path: path.join(OUT, "fleet-firing.png"), fullPage: true });

  // 7. Recovery: healthy traffic, the alert resolves, the page drops it within 5 s.
  for (let i = 0; i < 20; i++) {
    await shopRequest("/health");
    await sleep(100);
  }
  const gone = page
    .waitForSelector("#alerts .alert[data-rule=http_5xx_rate]", { state: "detached", timeout: 30_000 })
    .then(() => Date.now());
  const goneAt = await gone;
  const after = (await api(`/ops/shops/${SHOP}/status`)).rules.find((x) => x.rule === "http_5xx_rate");
  assert.ok(after.resolved_at, "resolved: " + JSON.stringify(after));
  const resolvedMs = goneAt - Date.parse(after.resolved_at);
  assert.ok(resolvedMs <= LIVE_LIMIT_MS, `the resolve showed ${resolvedMs} ms after it happened`);
  result.resolved_to_shown_ms = resolvedMs;
  step(`live: the resolve showed ${resolvedMs} ms after the monitor resolved it`);
  await fleetPage.close();

  // 8. The range switch and sign-out.
  await page.click(".range button[data-range='30d']");
  await eventually("30 days", async () => assert.match(await page.textContent("#req-hint"), /per hour/));
  await page.screenshot({ path: path.join(OUT, "shop-30d.png"), fullPage: true });
  await Promise.all([page.waitForURL(/\/ops\/login$/), page.click("button.signout")]);
  assert.equal((await context.cookies()).length, 0, "sign-out clears the cookie");
  r = await page.goto(BASE + "/ops/shop/" + SHOP);
  assert.equal(r.status(), 401);
  step("30-day range; sign-out ends the session");

  assert.deepEqual(problems, [], "no CSP violation, script error or failed request");
  step("no CSP violation or script error on any page");
  console.log("RESULT " + JSON.stringify(result));
} catch (e) {
  await page.screenshot({ path: path.join(OUT, "failure.png"), fullPage: true }).catch(() => {});
  console.error(e);
  console.error("problems seen:", problems);
  process.exitCode = 1;
} finally {
  await browser.close();
}
