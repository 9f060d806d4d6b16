// The dashboards' bench (bench/run --fleet [--smoke]; see bench/README.md): GET /ops/fleet
// latency with 50 and 500 shops that have 30 days of history, against the fan-out it replaces
// (one status call per shop, in series), and the storage of a shop with 30 days of rollups at
// 10 requests/s. In one plain `workerd serve` (bench/lib/config.mjs), two services whose
// SHOPS lists 50 and 500 shops, test environment (its made-up history fill route). Writes the
// "Dashboards" section of bench/RESULTS.md and the "dashboards" key of bench/RESULTS.json
// (smoke: bench/out/fleet-smoke/). Everything on 127.0.0.1; every loop is bounded.

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { readWranglerToml, writeConfig } from "./lib/config.mjs";
import { freePort } from "./lib/net.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SMOKE = process.argv.includes("--smoke");
const OUT = path.join(ROOT, "bench/out", SMOKE ? "fleet-smoke" : "fleet");
const STATE = path.join(OUT, "state");
const WORKERD = path.join(ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");
const RESULTS_MD = SMOKE ? path.join(OUT, "RESULTS.md") : path.join(ROOT, "bench/RESULTS.md");
const RESULTS_JSON = SMOKE ? path.join(OUT, "RESULTS.json") : path.join(ROOT, "bench/RESULTS.json");
const OPS_TOKEN = "bench-ops-token";
const SIZES = SMOKE ? [5, 20] : [50, 500];
const READS = SMOKE ? 10 : 100;
const RPS = 10;

const log = (...a) => console.error("[fleet]", ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const q = (xs, p) => (xs.length ? sorted(xs)[Math.min(xs.length - 1, Math.floor(p * xs.length))] : null);
const f1 = (x) => (x === null || x === undefined ? "–" : x.toFixed(1));


const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(port, pathname, { method = "GET", host = "ops.localhost", timeoutMs = 60_000 } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(
      { host: "127.0.0.1", port, path: pathname, method, agent, headers: { host, authorization: `Bearer ${OPS_TOKEN}` }, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8"), ms });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: String(e.message), ms: 0 }));
    req.end();
  });
}

async function pool(items, n, fn) {
  const out = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) {
        const k = i++;
        out[k] = await fn(items[k]);
      }
    }),
  );
  return out;
}

const shopNames = (n) => Array.from({ length: n }, (_, i) => `shop-${String(i + 1).padStart(4, "0")}`);

async function measure(port, n) {
  const shops = shopNames(n);
  // 1. Thirty days of history per shop (the made-up fill, at 10 requests/s); each monitor
  // pushes its summary to the fleet board as it finishes.
  const t0 = Date.now();
  const fills = await pool(shops, 4, (s) => request(port, `/ops/shops/${s}/history/synthesize?rps=${RPS}`, { method: "POST" }));
  const bad = fills.filter((r) => r.status !== 200);
  if (bad.length) throw new Error(`${bad.length} fills failed: ${bad[0].status} ${bad[0].body.slice(0, 200)}`);
  const fillS = (Date.now() - t0) / 1000;
  // 2. Every shop reported.
  const deadline = Date.now() + 60_000;
  let reporting = 0;
  for (;;) {
    const r = await request(port, "/ops/fleet");
    reporting = r.status === 200 ? JSON.parse(r.body).totals.shops_reporting : 0;
    if (reporting === n || Date.now() > deadline) break;
    await sleep(250);
  }
  if (reporting !== n) throw new Error(`only ${reporting} of ${n} shops reported to the board`);
  // 3. GET /ops/fleet, in series (warm first).
  for (let i = 0; i < 3; i++) await request(port, "/ops/fleet");
  const ms = [];
  let bytes = 0;
  for (let i = 0; i < READS; i++) {
    const r = await request(port, "/ops/fleet");
    if (r.status !== 200) throw new Error(`fleet: ${r.status}`);
    ms.push(r.ms);
    bytes = r.body.length;
  }
  // 4. What it replaces: every shop's status, one call after the other.
  const f0 = Date.now();
  const storage = [];
  for (const s of shops) {
    const r = await request(port, `/ops/shops/${s}/status`);
    if (r.status !== 200) throw new Error(`status ${s}: ${r.status}`);
    storage.push(JSON.parse(r.body).storage_bytes);
  }
  const fanoutMs = Date.now() - f0;
  const hist = JSON.parse((await request(port, `/ops/shops/${shops[0]}/history?range=30d`)).body);
  if (hist.series.requests.some((x) => x === 0)) throw new Error("a filled history has an empty hour");
  return {
    shops: n,
    fill_s: fillS,
    fleet_ms: { p50: q(ms, 0.5), p95: q(ms, 0.95), max: Math.max(...ms), n: ms.length },
    fleet_bytes: bytes,
    fanout_in_series_ms: fanoutMs,
    storage_bytes_per_shop: { median: q(storage, 0.5), max: Math.max(...storage) },
  };
}

function section(rows, native) {
  const lines = [
    "<!-- dashboards:start (written by bench/fleet.mjs: bench/run --fleet) -->",
    "## Dashboards: the fleet API and a shop's storage",
    "",
    `\`bench/run --fleet\`, ${new Date().toISOString().slice(0, 10)}, commit ${native.commit}, ${os.cpus().length} cores, 1-min load average ${native.load.map((l) => l.toFixed(1)).join(" at the start, ")} at the end`,
    `(other work on the machine counts: latencies are upper bounds). Each shop's monitor holds 30 days of rollups at ${RPS} requests/s`,
    "(the test environment's made-up fill, `history::synthetic`) and has pushed its summary to the fleet board.",
    "`GET /ops/fleet` through the Worker (plain workerd, keep-alive, in series); the fan-out is what a",
    "page would cost without the board: every shop's `GET /ops/shops/{shop}/status`, one after the other.",
    "",
    "| shops | GET /ops/fleet p50 / p95 / max ms | answer bytes | fan-out in series, ms | storage per shop (SQLite, median / max) |",
    "|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.shops} | ${f1(r.fleet_ms.p50)} / ${f1(r.fleet_ms.p95)} / ${f1(r.fleet_ms.max)} | ${r.fleet_bytes} | ${r.fanout_in_series_ms} | ${(r.storage_bytes_per_shop.median / 1024).toFixed(1)} / ${(r.storage_bytes_per_shop.max / 1024).toFixed(1)} KiB |`,
    );
  }
  lines.push(
    "",
    `History alone, encoded (native, \`history::tests::full_retention_at_10_requests_a_second_fits_the_budget\`): ${native.history_bytes} bytes at ${RPS} requests/s.`,
    "The storage column is the whole object's SQLite file (history, the monitor's state in the test environment's",
    "compressed rules, the cron state), as `storage_bytes` in the status reports it. The alerting state of the",
    "default rules at full ring is measured by the native figures bench (\"Bytes persisted per shop\" above).",
    "<!-- dashboards:end -->",
  );
  return lines.join("\n");
}

function historyBytes() {
  // The native test prints the encoded size; run it (fast) rather than repeat the maths.
  return new Promise((resolve) => {
    const c = spawn("cargo", ["test", "-q", "-p", "lookout-core", "--lib", "full_retention_at_10", "--", "--nocapture"], { cwd: ROOT });
    let text = "";
    c.stdout.on("data", (d) => (text += d));
    c.stderr.on("data", (d) => (text += d));
    c.on("exit", () => {
      const m = /history at 10 req\/s: (\d+) bytes/.exec(text);
      resolve(m ? Number(m[1]) : null);
    });
  });
}

const loadAtStart = os.loadavg()[0];

async function main() {
  fs.rmSync(path.join(OUT, "do"), { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  if (!fs.existsSync(path.join(STATE, "v3/d1"))) throw new Error(`no D1 state in ${STATE} (bench/run prepares it)`);
  const toml = readWranglerToml(ROOT);
  const ports = { on: await freePort(), driver: await freePort() };
  const serviceVars = { on: { OPS_TOKEN } };
  for (const n of SIZES) {
    ports[`fleet${n}`] = await freePort();
    serviceVars[`fleet${n}`] = { OPS_TOKEN, ENVIRONMENT: "test", ALERT_RULES: toml.testAlertRules, SHOPS: shopNames(n).join(","), CRON_WATCH: "" };
  }
  const cfg = writeConfig({ root: ROOT, outDir: OUT, stateDir: STATE, toml, ports, serviceVars });
  const so = fs.openSync(path.join(OUT, "workerd.stdout.log"), "w");
  const se = fs.openSync(path.join(OUT, "workerd.stderr.log"), "w");
  const wd = spawn(WORKERD, ["serve", "--experimental", cfg], { cwd: OUT, stdio: ["ignore", so, se], detached: true });
  let exited = null;
  wd.on("exit", (c, s) => (exited = `${c ?? s}`));
  const stop = () => {
    if (exited === null) {
      try {
        process.kill(-wd.pid, "SIGTERM");
      } catch {}
    }
    agent.destroy();
  };
  process.on("SIGINT", () => (stop(), process.exit(130)));
  process.on("SIGTERM", () => (stop(), process.exit(143)));
  try {
    for (const n of SIZES) {
      const t = Date.now();
      for (;;) {
        if (exited !== null) throw new Error(`workerd exited: ${fs.readFileSync(path.join(OUT, "workerd.stderr.log"), "utf8").slice(0, 2000)}`);
        const r = await request(ports[`fleet${n}`], "/ops/fleet", { timeoutMs: 2000 });
        if (r.status === 200) break;
        if (Date.now() - t > 30_000) throw new Error(`fleet${n} not ready: ${r.status} ${r.body.slice(0, 200)}`);
        await sleep(100);
      }
    }
    const rows = [];
    for (const n of SIZES) {
      log(`${n} shops: filling 30 days of history each, then measuring`);
      const r = await measure(ports[`fleet${n}`], n);
      log(JSON.stringify(r));
      rows.push(r);
    }
    const native = { history_bytes: await historyBytes(), commit: gitCommit(), load: [loadAtStart, os.loadavg()[0]] };
    const md = section(rows, native);
    let text = fs.existsSync(RESULTS_MD) ? fs.readFileSync(RESULTS_MD, "utf8") : "";
    const re = /<!-- dashboards:start[\s\S]*?<!-- dashboards:end -->/;
    text = re.test(text) ? text.replace(re, md) : text.trimEnd() + (text ? "\n\n" : "") + md + "\n";
    fs.writeFileSync(RESULTS_MD, text);
    let json = {};
    try {
      json = JSON.parse(fs.readFileSync(RESULTS_JSON, "utf8"));
    } catch {}
    json.dashboards = { rps: RPS, history_bytes_native: native.history_bytes, commit: native.commit, load_avg_1m: native.load, fleet: rows };
    fs.writeFileSync(RESULTS_JSON, JSON.stringify(json, null, 1) + "\n");
    console.log(md);
    log(`wrote ${path.relative(ROOT, RESULTS_MD)} and ${path.relative(ROOT, RESULTS_JSON)}`);
  } finally {
    stop();
  }
}

function gitCommit() {
  try {
    return execFileSync("git", ["rev-parse", "--short=7", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

main().catch((e) => {
  console.error("[fleet] FAILED:", e.stack ?? e);
  process.exit(1);
});
