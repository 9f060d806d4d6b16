// The bench harness (run it through bench/run, which installs and builds first). Measures
// what observability costs each request and how the monitor holds up, and writes
// bench/RESULTS.md (full run) or bench/out/smoke/RESULTS.md (--smoke). See bench/README.md.
//
// Phases: 1 native core (criterion + figures), then in one plain `workerd serve`:
// 2 request overhead (wrk; off / log line only / lookout / per-request forwarding / the
// design's JS middleware, interleaved), 3 records reach the monitor (exact counts),
// 4 object CPU per record and monitor throughput (bench-only driver), 5 the log line's cost,
// 6 detection latency (compressed rules, webhook to a local sink), 7 fleet: 50 shops in one
// workerd. Then the monitoring cost per million requests from the counted object calls, rows
// written and bytes stored, and bench/RESULTS.json (every figure under stable keys).
// All traffic goes to 127.0.0.1; every loop is bounded in count and time.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { readWranglerToml, writeConfig } from "./lib/config.mjs";
import { freePort } from "./lib/net.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SMOKE = process.argv.includes("--smoke");
const OUT = path.join(ROOT, "bench/out", SMOKE ? "smoke" : "full");
const STATE = process.env.BENCH_D1_STATE ?? path.join(OUT, "state");
const RESULTS = SMOKE ? path.join(OUT, "RESULTS.md") : path.join(ROOT, "bench/RESULTS.md");
const RESULTS_JSON = SMOKE ? path.join(OUT, "RESULTS.json") : path.join(ROOT, "bench/RESULTS.json");
const WORKERD = path.join(ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");
const OPS_TOKEN = "bench-ops-token";
const ROUTES = [
  { name: "trivial", path: "/health" },
  { name: "D1", path: "/api/tickets/2506" },
];
const ARMS = ["off", "log", "on", "perreq", "seedjs"];
const ARM_LABEL = {
  off: "off (no instrumentation)",
  log: "log line only (lookout, no monitor)",
  on: "lookout (partial buckets)",
  perreq: "lookout, per-request forwarding",
  seedjs: "design's JS middleware",
};
// Arms whose records go to a monitor (their records are counted after each run).
const MONITORED = ["on", "perreq", "seedjs"];
const FLEET_SHOPS = SMOKE ? 5 : 50;

// Sizes of each phase. The full run fits the 10-minute budget on 2 cores.
const P = SMOKE
  ? { durS: 1, reps: 1, conc: [1, 32], warmS: 1, exactN: 200, tputRecords: 4000, openRates: [20_000], openS: 1, logN: 2000, logReps: 2, detTrials: 1, cpuCalls: 20, fleetS: 1 }
  : { durS: 2, reps: 4, conc: [1, 8, 32], warmS: 1, exactN: 3000, tputRecords: 40000, openRates: [20_000, 40_000, 80_000, 160_000], openS: 2, logN: 20000, logReps: 5, detTrials: 3, cpuCalls: 400, fleetS: 4 };

// Cloudflare's published prices (Workers Paid, Standard usage model), read from
// https://developers.cloudflare.com/workers/platform/pricing/ and
// https://developers.cloudflare.com/durable-objects/platform/pricing/ (the stored copy of
// cloudflare/cloudflare-docs, read 2026-11-30). Marginal prices past the included allowances.
const PRICES = {
  source: ["https://developers.cloudflare.com/workers/platform/pricing/", "https://developers.cloudflare.com/durable-objects/platform/pricing/"],
  read: "2026-11-30",
  worker_cpu_per_million_ms: 0.02,
  do_requests_per_million: 0.15, // HTTP requests, RPC sessions and alarm invocations
  do_duration_per_million_gb_s: 12.5, // 128 MB billed per active object
  do_rows_written_per_million: 1.0, // each setAlarm() is one row written; deletes count
  do_rows_read_per_million: 0.001,
  do_storage_per_gb_month: 0.2,
};

const log = (...a) => console.error("[bench]", ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0Run = Date.now();

// ---------- small statistics ----------
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => {
  const s = sorted(xs);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const spread = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const fmtSpread = (s, d = 2, k = 1) => (s && s.n ? `${fmt(s.median * k, d)} (${fmt(s.min * k, d)}–${fmt(s.max * k, d)})` : "–");
const pct = (x, d = 2) => `${fmt(x * 100, d)}%`;

// ---------- machine and versions ----------
function sh(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd: ROOT, ...opts }).trim();
  } catch (e) {
    return `unavailable (${cmd}: ${String(e.message).split("\n")[0]})`;
  }
}

function machine() {
  const cpu = /model name\s*:\s*(.+)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model;
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0);
  const lock = fs.readFileSync(path.join(ROOT, "Cargo.lock"), "utf8");
  const worker = /name = "worker"\nversion = "([^"]+)"/.exec(lock)?.[1];
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no"]) !== "";
  return {
    nproc: sh("nproc", []),
    cpu,
    memory_gib: (memKb / 1024 / 1024).toFixed(1),
    kernel: os.release(),
    load_at_start: os.loadavg().map((x) => x.toFixed(2)).join(" "),
    rustc: sh("rustc", ["--version"]),
    worker,
    workerd: sh(WORKERD, ["--version"]),
    wrangler: JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
    node: process.version,
    // `wrk -v` prints its version and exits 1.
    wrk: (spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout ?? "").split("\n")[0].trim() || "wrk (version unknown)",
    commit: sh("git", ["rev-parse", "HEAD"]) + (dirty ? " (with uncommitted changes)" : ""),
    date: new Date().toISOString(),
  };
}

// ---------- phase 1: the core, natively ----------
const CRITERION = [
  ["isolate/fold_record", "isolate: fold one record into its shop's partial bucket", 1],
  ["isolate/take_serialize_64", "isolate: take + serialize a 64-record partial at a flush, per record", 64],
  ["ingest/parse_partial_of_64", "object: parse a body with one 64-record partial, per record", 64],
  ["ingest/partial_of_64_merge_only", "object: merge that partial (digests buffered), per record", 64],
  ["ingest/partial_of_64", "object: merge it and compress the bucket's digests at once (the object compresses once per evaluation), per record", 64],
  ["ingest/one_record_alone", "object, record path: ingest one record line alone (digests compressed lazily)", 1],
  ["ingest/batch_of_64", "object, record path: ingest, per record, in a batch of 64", 64],
  ["ingest/parse_batch_of_64", "object, record path: parse the body, per record (64 lines)", 64],
  ["evaluate/full_ring", "evaluate all default rules over full windows (360 buckets x 100 records)", 1],
  ["digest/merge_p95_600s", "merge the 60 digests of the 600 s window + p95", 1],
  ["state/persist_full_ring", "encode a shop's full state (359 closed bucket rows + strings + snapshot)", 1],
  ["state/restore_full_ring", "decode + restore a shop's full state", 1],
];

function cargo(args) {
  log("cargo", args.join(" "));
  const r = spawnSync("cargo", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`cargo ${args.join(" ")} failed (${r.status})`);
  return r.stdout;
}

function nativePhase() {
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
  let core = [];
  if (SMOKE) {
    // Criterion's test mode: every benchmark runs once (debug build), nothing is timed.
    cargo(["test", "--quiet", "-p", "lookout-core", "--bench", "core"]);
  } else {
    cargo(["bench", "--quiet", "-p", "lookout-core", "--bench", "core"]);
    core = CRITERION.map(([id, what, per]) => {
      const est = JSON.parse(fs.readFileSync(path.join(targetDir, "criterion", id, "new/estimates.json"), "utf8"));
      return { id, what, ns: est.median.point_estimate / per, lo: est.median.confidence_interval.lower_bound / per, hi: est.median.confidence_interval.upper_bound / per };
    });
  }
  const out = SMOKE ? cargo(["test", "--quiet", "-p", "lookout-core", "--bench", "figures", "--", "--smoke"]) : cargo(["bench", "--quiet", "-p", "lookout-core", "--bench", "figures"]);
  const line = out.split("\n").find((l) => l.startsWith("FIGURES "));
  if (!line) throw new Error("figures bench printed no FIGURES line");
  return { core, figures: JSON.parse(line.slice("FIGURES ".length)) };
}

// ---------- workerd ----------

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(port, pathname, { host = "swicked.localhost", headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: pathname, agent, headers: { host, cookie: "session=sess_robbie", ...headers }, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: String(e.message) }));
    req.end();
  });
}

class Workerd {
  constructor(configPath) {
    this.stdoutPath = path.join(OUT, "workerd.stdout.log");
    this.stderrPath = path.join(OUT, "workerd.stderr.log");
    const so = fs.openSync(this.stdoutPath, "w");
    const se = fs.openSync(this.stderrPath, "w");
    // Its own process group, so that stop() ends workerd and nothing else.
    this.child = spawn(WORKERD, ["serve", "--experimental", configPath], { cwd: OUT, stdio: ["ignore", so, se], detached: true });
    this.exited = null;
    this.child.on("exit", (code, sig) => (this.exited = `${code ?? sig}`));
    this.offset = 0;
  }
  async ready(ports) {
    const t = Date.now();
    for (const [name, port] of Object.entries(ports)) {
      for (;;) {
        if (this.exited !== null) throw new Error(`workerd exited (${this.exited}):\n${fs.readFileSync(this.stderrPath, "utf8").slice(0, 4000)}`);
        const r = await request(port, name === "driver" ? "/status?shop=ready" : "/health", { timeoutMs: 2000 });
        if (r.status === 200) break;
        if (Date.now() - t > 30_000) throw new Error(`workerd: ${name} not ready after 30 s (${r.status} ${r.body.slice(0, 200)})`);
        await sleep(100);
      }
    }
    log(`workerd ready in ${Date.now() - t} ms`);
  }
  /** Lines workerd printed since the last call. */
  newLines() {
    const fd = fs.openSync(this.stdoutPath, "r");
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(size - this.offset);
    fs.readSync(fd, buf, 0, buf.length, this.offset);
    fs.closeSync(fd);
    this.offset = size;
    return buf.toString("utf8").split("\n");
  }
  stop() {
    if (this.exited === null) {
      try {
        process.kill(-this.child.pid, "SIGTERM");
      } catch {}
    }
  }
}

/** Records named in `monitor_forward_failed` lines since the last call (lost, but logged). */
function forwardFailures(wd) {
  let lines = 0, records = 0;
  for (const l of wd.newLines()) {
    if (!l.includes("monitor_forward_failed")) continue;
    lines++;
    try {
      records += JSON.parse(l.slice(l.indexOf("{"))).records ?? 0;
    } catch {}
  }
  return { lines, records };
}

/** A shop's monitor counters (lookout arms: the status route; the JS arm: its object's count). */
async function monitorCounters(port, shop = "swicked", arm = "on") {
  if (arm === "seedjs") {
    const r = await request(port, `/__seed/count?shop=${shop}`);
    if (r.status !== 200) throw new Error(`seed count ${shop}: ${r.status} ${r.body.slice(0, 300)}`);
    const v = JSON.parse(r.body);
    // One object call per record, no storage, no alarm.
    return { accepted_records: v.records, ingest_calls: v.records, alarms_run: 0, alarms_set: 0, storage_rows_written: 0, storage_rows_read: 0, storage_bytes: 0 };
  }
  const r = await request(port, `/ops/shops/${shop}/status`, { headers: { authorization: `Bearer ${OPS_TOKEN}` } });
  if (r.status !== 200) throw new Error(`status ${shop}: ${r.status} ${r.body.slice(0, 300)}`);
  const v = JSON.parse(r.body);
  return {
    ...v.counters, storage_bytes: v.storage_bytes, storage_rows_written: v.storage_rows_written ?? 0,
    storage_rows_read: v.storage_rows_read ?? 0, alarms_run: v.alarms_run ?? 0, alarms_set: v.alarms_set ?? 0,
    wasm_memory_bytes: v.wasm_memory_bytes,
  };
}

/** Wait until the monitor's accepted count stops moving (flushes done), bounded. */
async function settledCounters(port, shop = "swicked", arm = "on") {
  let prev = await monitorCounters(port, shop, arm);
  const t = Date.now();
  for (;;) {
    await sleep(300);
    const cur = await monitorCounters(port, shop, arm);
    if (cur.accepted_records === prev.accepted_records || Date.now() - t > 5000) return cur;
    prev = cur;
  }
}

const COUNTED = ["accepted_records", "ingest_calls", "alarms_run", "alarms_set", "storage_rows_written", "storage_rows_read"];
const delta = (a, b) => Object.fromEntries(COUNTED.map((k) => [k, (a[k] ?? 0) - (b[k] ?? 0)]));

function wrk(port, route, conc, durS, env = {}) {
  const url = `http://127.0.0.1:${port}${route}`;
  const r = spawnSync("wrk", ["-t1", `-c${conc}`, `-d${durS}s`, "--timeout", "5s", "-s", path.join(ROOT, "bench/lib/wrk.lua"), url], {
    encoding: "utf8",
    timeout: (durS + 30) * 1000,
    env: { ...process.env, ...env },
  });
  const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`wrk printed no summary: ${r.stdout} ${r.stderr}`);
  const v = JSON.parse(line.slice(8));
  v.rps = v.requests / (v.duration_us / 1e6);
  v.errors = v.errors_connect + v.errors_read + v.errors_write + v.errors_status + v.errors_timeout;
  return v;
}

// ---------- phase 2: request overhead ----------
async function overheadPhase(wd, ports) {
  const runs = [];
  const last = {};
  for (const arm of MONITORED) last[arm] = await settledCounters(ports[arm], "swicked", arm);
  forwardFailures(wd);
  for (const route of ROUTES) {
    for (const arm of ARMS) wrk(ports[arm], route.path, 8, P.warmS); // warm the isolates and objects
    for (const arm of MONITORED) last[arm] = await settledCounters(ports[arm], "swicked", arm);
    forwardFailures(wd);
    for (const c of P.conc) {
      for (let rep = 0; rep < P.reps; rep++) {
        const order = rep % 2 === 0 ? ARMS : [...ARMS].reverse();
        for (const arm of order) {
          const cpu0 = cpuMs(wd.child.pid);
          const w = wrk(ports[arm], route.path, c, P.durS);
          // workerd's CPU time for the run and its flushes (before the status calls): what a
          // request costs in CPU, less sensitive than throughput to other work on the machine.
          await sleep(250);
          const run = { route: route.name, c, rep, arm, ...w, cpu_us_per_request: ((cpuMs(wd.child.pid) - cpu0) * 1000) / Math.max(1, w.requests) };
          if (MONITORED.includes(arm)) {
            const now = await settledCounters(ports[arm], "swicked", arm);
            Object.assign(run, delta(now, last[arm]));
            run.accepted = run.accepted_records;
            // The JS arm's object counts in memory only: workerd may evict it between runs,
            // and its count starts again from zero. Such a run's loss cannot be told.
            run.restarted = arm === "seedjs" && now.accepted_records < last[arm].accepted_records;
            last[arm] = now;
            const ff = forwardFailures(wd);
            run.forward_failed_lines = ff.lines;
            run.forward_failed_records = ff.records;
          }
          runs.push(run);
          log(`${route.name} c=${c} rep=${rep} ${arm}: ${fmt(w.rps, 0)} rps p50 ${w.p50_us} us p99 ${w.p99_us} us` +
            (run.accepted !== undefined ? ` | accepted ${run.accepted}/${w.requests}, calls ${run.ingest_calls}` : ""));
        }
      }
    }
  }
  // Aggregate.
  const rows = [];
  for (const route of ROUTES) {
    for (const c of P.conc) {
      const sel = (arm) => runs.filter((r) => r.route === route.name && r.c === c && r.arm === arm);
      const byRep = (arm) => Object.fromEntries(sel(arm).map((r) => [r.rep, r]));
      const off = byRep("off");
      const logOnly = byRep("log");
      for (const arm of ARMS) {
        const rs = sel(arm);
        const row = {
          route: route.name, c, arm,
          rps: spread(rs.map((r) => r.rps)),
          cpu_us: spread(rs.map((r) => r.cpu_us_per_request)),
          p50_ms: spread(rs.map((r) => r.p50_us / 1000)),
          p99_ms: spread(rs.map((r) => r.p99_us / 1000)),
          errors: rs.reduce((a, r) => a + r.errors, 0),
          requests: rs.reduce((a, r) => a + r.requests, 0),
          seconds: rs.reduce((a, r) => a + r.duration_us / 1e6, 0),
        };
        if (arm !== "off") {
          const mine = byRep(arm);
          const reps = Object.keys(mine).filter((k) => off[k]);
          row.ratio = spread(reps.map((k) => mine[k].rps / off[k].rps));
          row.added_p50_ms = spread(reps.map((k) => (mine[k].p50_us - off[k].p50_us) / 1000));
          row.added_p99_ms = spread(reps.map((k) => (mine[k].p99_us - off[k].p99_us) / 1000));
          row.added_cpu_us = spread(reps.map((k) => mine[k].cpu_us_per_request - off[k].cpu_us_per_request));
          if (arm !== "log") {
            const withLog = reps.filter((k) => logOnly[k]);
            row.ratio_to_log = spread(withLog.map((k) => mine[k].rps / logOnly[k].rps));
          }
        }
        if (MONITORED.includes(arm)) {
          for (const k of COUNTED) row[k] = rs.reduce((a, r) => a + (r[k] ?? 0), 0);
          row.accepted = row.accepted_records;
          row.calls = row.ingest_calls;
          row.calls_per_request = row.calls / Math.max(1, row.accepted);
          // wrk counts completed responses; requests still in flight when it stops (at most
          // c per run) are served and recorded too, so accepted may exceed it by that much.
          const counted = rs.filter((r) => !r.restarted);
          row.restarted_runs = rs.length - counted.length;
          row.lost = counted.reduce((a, r) => a + Math.max(0, r.requests - r.accepted), 0);
          row.in_flight_extra = rs.reduce((a, r) => a + Math.max(0, r.accepted - r.requests), 0);
          row.forward_failed_records = rs.reduce((a, r) => a + r.forward_failed_records, 0);
        }
        rows.push(row);
      }
    }
  }
  return { runs, rows };
}

// ---------- phase 3: every record reaches the monitor (exact counts) ----------
async function exactPhase(wd, ports) {
  const out = [];
  for (const arm of MONITORED) {
    const before = await settledCounters(ports[arm], "swicked", arm);
    forwardFailures(wd);
    let next = 0, ok = 0, other = 0;
    const t = Date.now();
    const worker = async () => {
      while (next < P.exactN && Date.now() - t < 60_000) {
        next++;
        const r = await request(ports[arm], "/health");
        if (r.status === 200) ok++;
        else other++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    const sendMs = Date.now() - t;
    const after = await settledCounters(ports[arm], "swicked", arm);
    const ff = forwardFailures(wd);
    const d = delta(after, before);
    const row = {
      arm, sent: next, ok, other, send_ms: sendMs, ...d,
      accepted: d.accepted_records,
      calls: d.ingest_calls,
      rejected: arm === "seedjs" ? 0 : after.rejected_too_old + after.rejected_future + after.rejected_other_shop - (before.rejected_too_old + before.rejected_future + before.rejected_other_shop),
      forward_failed_records: ff.records,
    };
    row.calls_per_request = row.calls / Math.max(1, row.sent);
    out.push(row);
    log(`exact ${arm}: sent ${row.sent}, accepted ${row.accepted}, object calls ${row.calls}, forward failures ${ff.records}`);
  }
  return out;
}

// ---------- phase 4: object CPU per record, monitor throughput (one shop's object) ----------
let tputSeq = 0;
async function drive(ports, q) {
  const shop = `tput-${++tputSeq}`;
  const qs = new URLSearchParams({ shop, ...q }).toString();
  const r = await request(ports.driver, `/drive?${qs}`, { timeoutMs: 90_000 });
  if (r.status !== 200) throw new Error(`driver: ${r.status} ${r.body.slice(0, 300)}`);
  const v = JSON.parse(r.body);
  const st = JSON.parse((await request(ports.driver, `/status?shop=${shop}`)).body);
  v.object_accepted = st.counters.accepted_records;
  v.object_calls = st.counters.ingest_calls;
  v.storage_bytes = st.storage_bytes;
  log(`drive ${qs}: ${fmt(v.records_per_s, 0)} records/s, accepted ${v.accepted}/${v.sent}, failed calls ${v.failed_calls}, call p99 ${v.call_ms_p99} ms`);
  return { kind: "records", ...q, ...v };
}

/** What the object spends per call and per record: sequential calls of pre-built bodies. */
async function cpuPhase(ports) {
  const cases = [["empty", 1], ["records", 64], ["partial", 64], ["partial", 512]];
  const reps = SMOKE ? 1 : 3;
  const out = {};
  for (let rep = 0; rep < reps; rep++) {
    for (const [kind, batch] of cases) {
      const shop = `cpu-${kind}-${batch}-${rep}`;
      const r = await request(ports.driver, `/cpu?shop=${shop}&kind=${kind}&batch=${batch}&calls=${P.cpuCalls}`, { timeoutMs: 120_000 });
      if (r.status !== 200) throw new Error(`driver cpu: ${r.status} ${r.body.slice(0, 300)}`);
      const v = JSON.parse(r.body);
      const key = `${kind}_${batch}`;
      (out[key] ??= { kind, batch, ms_per_call: [], accepted: 0, expected: 0, failed: 0 });
      out[key].ms_per_call.push(v.ms_per_call);
      out[key].accepted += v.accepted;
      out[key].expected += kind === "empty" ? 0 : batch * P.cpuCalls;
      out[key].failed += v.failed;
      log(`cpu ${key} rep ${rep}: ${fmt(v.ms_per_call, 3)} ms per call, accepted ${v.accepted}`);
    }
  }
  const empty = median(out.empty_1.ms_per_call);
  // The resolution of a per-record figure: 1 ms (the clock's step) over all records of a case.
  const resolution = (batch) => 1000 / (P.cpuCalls * batch);
  for (const v of Object.values(out)) {
    v.ms_per_call_median = median(v.ms_per_call);
    v.us_per_record = v.kind === "empty" ? null : Math.max(resolution(v.batch), ((v.ms_per_call_median - empty) * 1000) / v.batch);
    v.at_resolution = v.kind !== "empty" && v.us_per_record === resolution(v.batch);
  }
  const ratio = out.records_64.us_per_record / out.partial_64.us_per_record;
  return { cases: out, empty_call_ms: empty, ratio_records_to_partial_64: ratio, ratio_is_lower_bound: out.partial_64.at_resolution };
}

async function throughputPhase(ports) {
  const closed = [];
  for (const [kind, batch, inflight] of [["records", 64, 1], ["partial", 64, 1], ["partial", 64, 8], ["records", 1, 8], ["partial", 1, 8]]) {
    const records = batch === 1 ? Math.min(P.tputRecords, SMOKE ? 500 : 4000) : P.tputRecords;
    closed.push(await drive(ports, { kind, records, batch, inflight }));
  }
  // Open loop: a fixed ladder of offered rates, partials of 64 records released on schedule.
  const open = [];
  for (const rate of P.openRates) {
    const records = Math.min(Math.round(rate * P.openS), 800_000);
    const r = await drive(ports, { kind: "partial", records, batch: 64, inflight: 256, rate });
    r.expected_ms = (records / rate) * 1000;
    // Kept up: finished within 10% of its schedule (the queue never built up).
    r.kept_up = r.elapsed_ms <= r.expected_ms * 1.1;
    open.push(r);
  }
  const keptUp = open.filter((r) => r.kept_up);
  return {
    closed, open,
    sustained: keptUp.length ? Math.max(...keptUp.map((r) => r.records_per_s)) : null,
    saturated: Math.max(...open.map((r) => r.records_per_s)),
  };
}

// ---------- phase 7: fleet, many shops in one workerd ----------
/** CPU time (user + system) a process has used, ms. */
function cpuMs(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

function rssKb(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    return { rss_kb: Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0), hwm_kb: Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0) };
  } catch {
    return { rss_kb: null, hwm_kb: null };
  }
}

async function fleetPhase(wd, ports) {
  const shops = Array.from({ length: FLEET_SHOPS }, (_, i) => `fleet-${String(i + 1).padStart(2, "0")}`);
  const counters = async () => Promise.all(shops.map((s) => settledCounters(ports.on, s)));
  const before = await counters();
  forwardFailures(wd);
  const memBefore = rssKb(wd.child.pid);
  const w = wrk(ports.on, "/health", 32, P.fleetS, { BENCH_FLEET_SHOPS: String(FLEET_SHOPS) });
  // Let every shop's last flush land, then read every shop's counters.
  await sleep(500);
  const after = await counters();
  const memAfter = rssKb(wd.child.pid);
  const ff = forwardFailures(wd);
  const per = shops.map((s, i) => ({ shop: s, ...delta(after[i], before[i]) }));
  const sum = (k) => per.reduce((a, r) => a + r[k], 0);
  const accepted = sum("accepted_records");
  const out = {
    shops: FLEET_SHOPS, concurrency: 32, seconds: w.duration_us / 1e6, requests: w.requests, rps: w.rps, errors: w.errors,
    accepted, lost: Math.max(0, w.requests - accepted), in_flight_extra: Math.max(0, accepted - w.requests),
    forward_failed_records: ff.records,
    calls: sum("ingest_calls"), calls_per_request: sum("ingest_calls") / Math.max(1, accepted),
    alarms_run: sum("alarms_run"), alarms_set: sum("alarms_set"), rows_written: sum("storage_rows_written"),
    min_shop_accepted: Math.min(...per.map((r) => r.accepted_records)), max_shop_accepted: Math.max(...per.map((r) => r.accepted_records)),
    workerd_rss_kb_before: memBefore.rss_kb, workerd_rss_kb_after: memAfter.rss_kb, workerd_hwm_kb: memAfter.hwm_kb,
    wasm_memory_bytes: after[0].wasm_memory_bytes ?? null,
    p50_ms: w.p50_us / 1000, p99_ms: w.p99_us / 1000,
  };
  log(`fleet: ${out.requests} requests over ${FLEET_SHOPS} shops, accepted ${accepted}, calls ${out.calls} (${fmt(out.calls_per_request, 4)}/request), RSS ${memBefore.rss_kb} -> ${memAfter.rss_kb} kB`);
  return out;
}

// ---------- cost per million requests ----------
/**
 * The monitoring cost per million requests from counted work: object calls and alarm runs
 * (Durable Object requests), rows written (SQLite rows plus one per setAlarm), rows read,
 * object duration (calls x the driver-measured time per call, 128 MB), the Worker's added CPU
 * (the added time per request at c = 1 on the trivial route; locally wall time is CPU time).
 * Stored bytes are per shop and month, not per request.
 */
function costs({ overhead, exact, cpu, native }) {
  const at1 = (arm) => overhead.rows.find((r) => r.route === "trivial" && r.c === 1 && r.arm === arm);
  const off = at1("off");
  const addedCpuMs = (arm) => Math.max(0, 1000 / at1(arm).rps.median - 1000 / off.rps.median);
  const callMs = { on: cpu.cases.partial_64.ms_per_call_median, perreq: cpu.cases.partial_64.ms_per_call_median, seedjs: cpu.cases.empty_1.ms_per_call_median };
  const perArm = {};
  for (const arm of MONITORED) {
    const e = exact.find((x) => x.arm === arm);
    const n = Math.max(1, e.sent);
    const perReq = {
      object_calls: e.ingest_calls / n,
      alarm_runs: e.alarms_run / n,
      rows_written: (e.storage_rows_written + e.alarms_set) / n,
      rows_read: e.storage_rows_read / n,
      object_seconds: ((e.ingest_calls + e.alarms_run) * callMs[arm]) / 1000 / n,
      worker_cpu_ms: addedCpuMs(arm),
    };
    const usd = {
      do_requests: (perReq.object_calls + perReq.alarm_runs) * PRICES.do_requests_per_million,
      do_rows_written: perReq.rows_written * PRICES.do_rows_written_per_million,
      do_rows_read: perReq.rows_read * PRICES.do_rows_read_per_million,
      do_duration: perReq.object_seconds * 0.128 * PRICES.do_duration_per_million_gb_s,
      worker_cpu: perReq.worker_cpu_ms * PRICES.worker_cpu_per_million_ms,
    };
    usd.total = Object.values(usd).reduce((a, b) => a + b, 0);
    perArm[arm] = { per_request: perReq, usd_per_million_requests: usd };
  }
  const bytes = native.figures.persisted.map((x) => ({ requests_per_s: x.requests_per_s, bytes: x.total_bytes, usd_per_shop_month: (x.total_bytes / 1e9) * PRICES.do_storage_per_gb_month }));
  return { prices: PRICES, arms: perArm, storage: bytes };
}

// ---------- phase 5: the log line ----------
async function logPhase(ports) {
  const time = async (q) => {
    const t = process.hrtime.bigint();
    const r = await request(ports.driver, `/log?${q}`, { timeoutMs: 60_000 });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    return { ms, body: JSON.parse(r.body) };
  };
  const printUs = [], buildUs = [];
  let bytes = 0;
  for (let i = 0; i < P.logReps; i++) {
    const none = await time("n=0");
    const build = await time(`n=${P.logN}&print=0`);
    const print = await time(`n=${P.logN}&print=1`);
    bytes = print.body.bytes / P.logN;
    printUs.push(((print.ms - build.ms) * 1000) / P.logN);
    buildUs.push(((build.ms - none.ms) * 1000) / P.logN);
  }
  return { console_log_us: spread(printUs), build_line_us: spread(buildUs), bytes_per_line: bytes, lines: P.logN };
}

// ---------- phase 6: detection latency ----------
function startSink() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const at = Date.now();
      let body = null;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {}
      received.push({ at, path: req.url, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: server.address().port, received })));
}

async function detectionTrial(ports, sink, rules, kind, shop) {
  const rule = kind === "5xx" ? "http_5xx_rate" : "request_p95";
  const forS = rules[rule].for_s;
  const deadline = Date.now() + (forS + 10) * 1000;
  const pathq = kind === "5xx" ? "/__test/fault?status=503" : "/__test/fault?delay_ms=300";
  const firstAt = Date.now();
  let sent = 0;
  const fired = () => sink.received.find((r) => r.body && r.body.shop === shop && r.body.rule === rule && r.body.event === "trigger");
  const loop = async (gapMs) => {
    while (!fired() && Date.now() < deadline) {
      sent++;
      await request(ports.alert, pathq, { host: `${shop}.localhost` });
      if (gapMs) await sleep(gapMs);
    }
  };
  // 5xx: ~20 requests/s of 503s; p95: 8 clients of 300 ms requests (~25/s, all slow).
  await Promise.all(kind === "5xx" ? [loop(50)] : Array.from({ length: 8 }, () => loop(0)));
  const f = fired();
  if (!f) return { kind, shop, rule, fired: false, sent };
  const activeAt = Date.parse(f.body.active_at);
  const sustainAt = activeAt + forS * 1000;
  const since = Date.parse(f.body.since);
  return {
    kind, shop, rule, fired: true, sent, for_s: forS,
    detection_ms: f.at - sustainAt, // sustain time reached -> webhook received
    fired_after_sustain_ms: since - sustainAt, // the firing evaluation's lateness (alarm)
    delivery_ms: f.at - since, // firing -> webhook received
    onset_ms: activeAt - firstAt, // first bad request sent -> condition seen (pending)
  };
}

async function detectionPhase(ports, sink, rules) {
  const trials = [];
  for (let i = 1; i <= P.detTrials; i++) {
    const pair = await Promise.all([detectionTrial(ports, sink, rules, "5xx", `det-5xx-${i}`), detectionTrial(ports, sink, rules, "p95", `det-p95-${i}`)]);
    for (const t of pair) log(`detection ${t.kind} #${i}: ${t.fired ? `${t.detection_ms} ms after the sustain time (onset ${t.onset_ms} ms)` : "NOT FIRED"}`);
    trials.push(...pair);
  }
  return trials;
}

// ---------- report ----------
/** Every figure, judged against issue 11's targets. */
function judge({ native, overhead, exact, cpu, detection, fleet }) {
  const row = (route, c, arm) => overhead.rows.find((r) => r.route === route && r.c === c && r.arm === arm);
  const onRows = overhead.rows.filter((r) => r.arm === "on");
  const trivialOn = P.conc.map((c) => row("trivial", c, "on"));
  const d1On = P.conc.map((c) => row("D1", c, "on"));
  const gapToLog = P.conc.map((c) => row("trivial", c, "log").ratio.median - row("trivial", c, "on").ratio.median);
  const addedAt1 = (route) => row(route, 1, "on").added_p50_ms.median;
  const loadedCalls = Math.max(...onRows.filter((r) => r.c >= 8).map((r) => r.calls_per_request));
  const lostTimed = onRows.reduce((a, r) => a + r.lost + r.forward_failed_records, 0);
  const exactOn = exact.find((e) => e.arm === "on");
  const det = detection.filter((d) => d.fired);
  const worstDet = det.length ? Math.max(...det.map((d) => d.detection_ms)) : null;
  const maxBytes = Math.max(...native.figures.persisted.map((x) => x.total_bytes));
  const minBytes = Math.min(...native.figures.persisted.map((x) => x.total_bytes));
  const worstP95 = Math.max(...native.figures.accuracy.map((a) => a.p95.max));
  // lookout ahead of the JS middleware: throughput and added p50, every route and c.
  const vsSeed = [];
  for (const route of ROUTES) {
    for (const c of P.conc) {
      const on = row(route.name, c, "on"), js = row(route.name, c, "seedjs");
      vsSeed.push({ route: route.name, c, rps_ahead: on.rps.median > js.rps.median, p50_ahead: on.added_p50_ms.median < js.added_p50_ms.median, on_ratio: on.ratio.median, js_ratio: js.ratio.median, on_added_p50_ms: on.added_p50_ms.median, js_added_p50_ms: js.added_p50_ms.median });
    }
  }
  const t = (id, target, measured, met, value) => ({ id, target, measured, met, value });
  return [
    t("trivial_ratio", "trivial route, on/off throughput >= 0.80 at every c", `${trivialOn.map((r) => `${fmt(r.ratio.median, 3)} (c=${r.c})`).join(", ")}`, trivialOn.every((r) => r.ratio.median >= 0.8), Math.min(...trivialOn.map((r) => r.ratio.median))),
    t("trivial_vs_log_line", "trivial route within 0.05 of the log-line-only arm", `log-only minus lookout: ${gapToLog.map((g, i) => `${fmt(g, 3)} (c=${P.conc[i]})`).join(", ")}`, gapToLog.every((g) => g <= 0.05), Math.max(...gapToLog)),
    t("d1_ratio", "D1 route, on/off throughput >= 0.95 at every c", `${d1On.map((r) => `${fmt(r.ratio.median, 3)} (c=${r.c})`).join(", ")}`, d1On.every((r) => r.ratio.median >= 0.95), Math.min(...d1On.map((r) => r.ratio.median))),
    t("added_p50_c1", "added p50 at c = 1 < 0.05 ms, both routes", `trivial ${fmt(addedAt1("trivial"), 3)} ms, D1 ${fmt(addedAt1("D1"), 3)} ms`, Math.max(addedAt1("trivial"), addedAt1("D1")) < 0.05, Math.max(addedAt1("trivial"), addedAt1("D1"))),
    t("calls_per_request", "object calls per request under load (c >= 8) < 0.02", `worst ${fmt(loadedCalls, 4)} (one shop); ${fmt(fleet.calls_per_request, 4)} over ${fleet.shops} shops`, loadedCalls < 0.02, loadedCalls),
    t("object_cpu", "object CPU per record 10x lower than the re-parse path (driver)", `${fmt(cpu.cases.records_64.us_per_record, 2)} µs (64 record lines) vs ${cpu.ratio_is_lower_bound ? "≤ " : ""}${fmt(cpu.cases.partial_64.us_per_record, 2)} µs (a 64-record partial): ${cpu.ratio_is_lower_bound ? "≥ " : ""}${fmt(cpu.ratio_records_to_partial_64, 1)}x`, cpu.ratio_records_to_partial_64 >= 10, cpu.ratio_records_to_partial_64),
    t("bytes_per_shop", "persisted per shop, full ring, 1-100 req/s <= 64 KiB", `${fmt(minBytes / 1024, 1)}-${fmt(maxBytes / 1024, 1)} KiB`, maxBytes <= 65536, maxBytes),
    t("ahead_of_seed_js", "lookout ahead of the design's JS middleware on throughput and added p50 at every c", vsSeed.filter((v) => !(v.rps_ahead && v.p50_ahead)).map((v) => `behind at ${v.route} c=${v.c}`).join(", ") || `ahead at every route and c (ratio ${fmt(Math.min(...vsSeed.map((v) => v.on_ratio)), 2)}+ vs ${fmt(Math.max(...vsSeed.map((v) => v.js_ratio)), 2)} at most)`, vsSeed.every((v) => v.rps_ahead && v.p50_ahead), vsSeed),
    t("detection", "alerts within 1 s of the sustain time", `worst ${worstDet === null ? "–" : fmt(worstDet / 1000, 3) + " s"} over ${det.length} firings (${detection.length - det.length} did not fire)`, worstDet !== null && worstDet <= 1000 && det.length === detection.length, worstDet),
    t("records_lost", "zero records lost", `timed runs: ${lostTimed}; exact check: ${exactOn.accepted} of ${exactOn.sent}; fleet: ${fleet.lost} of ${fleet.requests}`, lostTimed === 0 && exactOn.accepted === exactOn.sent && fleet.lost === 0, lostTimed),
    t("p95_error", "p95 error < 1% (windowed, merged digests on the partial-bucket path)", `worst ${pct(worstP95)}`, worstP95 < 0.01, worstP95),
  ];
}

function report({ m, native, overhead, exact, cpu, tput, logc, detection, fleet, cost, verdicts, elapsedS, toml }) {
  const L = [];
  const p = (s = "") => L.push(s);
  const rowsFor = (route) => overhead.rows.filter((r) => r.route === route);
  const target = (ok) => (ok ? "**met**" : "**missed**");

  p(`# lookout bench results${SMOKE ? " (SMOKE run: sizes too small to quote)" : ""}`);
  p();
  p(`Written by \`bench/run${SMOKE ? " --smoke" : ""}\` in ${elapsedS.toFixed(0)} s. Every figure below comes from this one run (also in`);
  p("`bench/RESULTS.json`, under stable keys); spreads are median (min–max) over the repetitions. The");
  p("machine was shared with other work while it ran (see the load average), so absolute figures are");
  p("noisy; the arms were interleaved to cancel drift.");
  p();
  p("## Machine and versions");
  p();
  p("| | |");
  p("|---|---|");
  p(`| CPU | ${m.cpu}, nproc ${m.nproc} |`);
  p(`| memory | ${m.memory_gib} GiB |`);
  p(`| kernel | ${m.kernel} |`);
  p(`| load average (1, 5, 15 min) at start / end | ${m.load_at_start} / ${m.load_at_end} |`);
  p(`| rustc | ${m.rustc} |`);
  p(`| worker (workers-rs) | ${m.worker} |`);
  p(`| workerd | ${m.workerd} (npm wrangler ${m.wrangler}) |`);
  p(`| node | ${m.node} |`);
  p(`| load generator | ${m.wrk} |`);
  p(`| git commit | ${m.commit} |`);
  p(`| date | ${m.date} |`);
  p();
  p("## Targets (issue 11)");
  p();
  p("| target | measured | verdict |");
  p("|---|---|---|");
  for (const v of verdicts) p(`| ${v.target} | ${v.measured} | ${target(v.met)} |`);
  p();
  p("Misses, where the cost goes and what would close each: [NOTES.md](NOTES.md).");
  p();
  p("## 1. Added request overhead (plain workerd, wrk closed loop on 127.0.0.1)");
  p();
  p(`One \`workerd serve\` (generated config, bench/lib/config.mjs) serves the same build five ways:`);
  p("**off** (`LOOKOUT_INSTRUMENT=off`: no wrapper, no log line, no monitor call), **log line only**");
  p("(`LOOKOUT_INSTRUMENT=log`: lookout's wrapper and line, no monitor), **lookout** (records folded");
  p(`into partial buckets, MONITOR_FLUSH_MS=${toml.vars.MONITOR_FLUSH_MS}, MONITOR_BATCH_MAX=${toml.vars.MONITOR_BATCH_MAX}), **per-request forwarding** (MONITOR_FLUSH_MS=0: one`);
  p("object call per request) and the **design's JS middleware** (bench/seed_entry.mjs: `withInstrumentation`");
  p("from the design, its log line and one Durable Object call per request through `waitUntil`, around the");
  p("app served bare; its object only counts in memory). Routes: trivial `GET /health`; D1 `GET /api/tickets/2506`");
  p(`(session lookup + ticket + lines: 3 D1 queries). \`wrk -t1 -c{${P.conc.join(",")}}\`, ${P.durS} s per run, ${P.reps} repetitions,`);
  p("arms interleaved (forward, then reversed). Ratios and added latencies are paired per repetition with");
  p("the off run (and, for \"ratio to log line\", with the log-line-only run). workerd's stdout goes to a file.");
  p("\"workerd CPU µs per request\": the workerd process's CPU time (user + system, /proc) over the run and its");
  p("flushes, per request, with the paired difference to off: what each arm costs in CPU, less disturbed by");
  p("other work on a shared machine than throughput.");
  p();
  for (const route of ROUTES) {
    p(`### ${route.name} route (\`${route.path}\`)`);
    p();
    p("| c | arm | requests/s | p50 ms | p99 ms | ratio to off | ratio to log line | added p50 ms | added p99 ms | workerd CPU µs per request (added) | object calls per request | records accepted / completed (lost) |");
    p("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rowsFor(route.name)) {
      const acc = MONITORED.includes(r.arm)
        ? r.restarted_runs
          ? `${r.lost} lost in the runs it could count (${r.restarted_runs} of ${P.reps} runs had the object restarted: not counted)`
          : `${r.accepted} / ${r.requests} (${r.lost}${r.forward_failed_records ? `; ${r.forward_failed_records} in monitor_forward_failed` : ""})`
        : "–";
      p(`| ${r.c} | ${ARM_LABEL[r.arm]} | ${fmtSpread(r.rps, 0)} | ${fmtSpread(r.p50_ms, 3)} | ${fmtSpread(r.p99_ms, 3)} | ${r.ratio ? fmtSpread(r.ratio, 3) : "1"} | ${r.ratio_to_log ? fmtSpread(r.ratio_to_log, 3) : "–"} | ${r.added_p50_ms ? fmtSpread(r.added_p50_ms, 3) : "–"} | ${r.added_p99_ms ? fmtSpread(r.added_p99_ms, 3) : "–"} | ${fmt(r.cpu_us.median, 0)}${r.added_cpu_us ? ` (${fmt(r.added_cpu_us.median, 0)})` : ""} | ${r.calls_per_request !== undefined ? fmt(r.calls_per_request, 4) : "–"} | ${acc} |`);
    }
    p();
  }
  const errs = overhead.rows.reduce((a, r) => a + r.errors, 0);
  p(`wrk errors (connect/read/write/timeout/non-2xx) over all runs: ${errs}.`);
  p("Accepted may exceed completed by up to c per run: wrk stops counting at its deadline while");
  p("requests already sent are still served and recorded. \"lost\" counts runs where the monitor");
  p("accepted fewer records than wrk saw completed.");
  p();
  p("### Every record reaches the monitor (exact count)");
  p();
  p(`${P.exactN} requests to \`/health\` from 32 concurrent keep-alive clients, then wait until the`);
  p("monitor's counters settle; compare with the object's `accepted_records` and `ingest_calls` (the JS arm: its object's count).");
  p();
  p("| arm | sent | 200 | accepted by the monitor | object calls | calls per request | alarms run / set | SQLite rows written | logged forward failures (records) |");
  p("|---|---|---|---|---|---|---|---|---|");
  for (const e of exact) p(`| ${ARM_LABEL[e.arm]} | ${e.sent} | ${e.ok} | ${e.accepted} | ${e.calls} | ${fmt(e.calls_per_request, 4)} | ${e.alarms_run} / ${e.alarms_set} | ${e.storage_rows_written} | ${e.forward_failed_records} |`);
  p();
  p("### What the log line itself costs");
  p();
  p(`Measured in the same workerd (bench-only driver service): building and \`console.log\`-ing ${logc.lines}`);
  p(`request-shaped lines (${fmt(logc.bytes_per_line, 0)} bytes each) in one request, timed from outside, minus the same`);
  p("request building them without printing (and that minus an empty request), stdout to a file.");
  p();
  p(`- \`console.log\` of one line: **${fmtSpread(logc.console_log_us, 2)} µs** (stdout to a file)`);
  p(`- building the line (JS \`JSON.stringify\`, for scale; the Worker builds it with serde in wasm): ${fmtSpread(logc.build_line_us, 2)} µs`);
  p();
  p("## 2. The core's cost, natively (criterion)");
  p();
  if (native.core.length) {
    p("Release profile (opt-level \"s\", LTO, as the wasm ships), median with its 95% confidence interval.");
    p();
    p("| operation | ns per op | 95% CI |");
    p("|---|---|---|");
    for (const c of native.core) p(`| ${c.what} (\`${c.id}\`) | ${fmt(c.ns, 0)} | ${fmt(c.lo, 0)}–${fmt(c.hi, 0)} |`);
  } else {
    p("Smoke run: criterion ran each benchmark once in test mode; no timings.");
  }
  p();
  p("### Bytes persisted per shop (full ring of the longest window)");
  p();
  p("Default rules: the ring covers the longest rule window (stripe_signature_failures, 3600 s) = 360 buckets");
  p("of 10 s, filled through partial buckets. Each closed bucket is one binary row: the 60 buckets of the");
  p("detail window (600 s, the longest window of a rule reading latency or diagnosis) keep their two digests");
  p("and diagnosis, older ones only their counts; plus the diagnosis string table, the snapshot (alerts,");
  p("outbox, recent ids, counters) and the cron state. Heavy-tailed latencies, D1 on 3 of 4 requests, 2% 5xx");
  p("in three classes, eight routes, six query signatures. Payload bytes (SQLite adds its page overhead:");
  p("an empty database is ~12 KB, see §3's object SQLite bytes).");
  p();
  p("| traffic | closed buckets | detail rows | mean detail row | counts rows | mean counts row | strings | snapshot | cron state | total | centroids in a request digest |");
  p("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const x of native.figures.persisted) {
    p(`| ${fmt(x.requests_per_s, 0)} req/s (${x.records_per_bucket}/bucket) | ${x.closed_buckets} | ${x.detail_buckets}: ${fmt(x.detail_bytes / 1024, 1)} KiB | ${fmt(x.detail_row_mean, 0)} B | ${x.counts_buckets}: ${fmt(x.counts_bytes / 1024, 1)} KiB | ${fmt(x.counts_row_mean, 1)} B | ${fmt(x.strings_bytes / 1024, 1)} KiB | ${fmt(x.snapshot_bytes / 1024, 1)} KiB | ${fmt(x.cron_bytes / 1024, 1)} KiB | **${fmt(x.total_bytes / 1024, 1)} KiB** | ${x.centroids_per_request_digest} |`);
  }
  p();
  p("A partial bucket as an isolate sends it (JSON, digests base64):");
  p(native.figures.partial_bytes.map((x) => `${x.records} record(s): ${x.bytes} B`).join("; ") + ".");
  p();
  p("## 3. The monitor object in workerd: CPU per record, throughput");
  p();
  p("A bench-only driver service (bench/driver.mjs, only in the bench's workerd config) calls ShopMonitor");
  p("objects through their namespace binding as the Worker does, a fresh shop (object) per case.");
  p();
  p(`**Object CPU per record.** ${P.cpuCalls} bodies built first, then sent one after the other (one call in`);
  p("flight, so the call time is the object's work plus the call's overhead; locally the object runs on the");
  p("same thread); per record = (median ms per call − an empty body's) / records in the body; median of");
  p(`${SMOKE ? 1 : 3} repetitions.`);
  p();
  p("| body | records | ms per call (median) | µs per record | accepted / sent |");
  p("|---|---|---|---|---|");
  for (const v of Object.values(cpu.cases)) {
    const what = { empty: "empty batch (`{\"partials\":[]}`)", records: "record lines (the re-parse path)", partial: "one partial bucket (what isolates send)" }[v.kind];
    p(`| ${what} | ${v.kind === "empty" ? 0 : v.batch} | ${fmt(v.ms_per_call_median, 3)} | ${v.us_per_record === null ? "–" : (v.at_resolution ? "≤ " : "") + fmt(v.us_per_record, 3)} | ${v.kind === "empty" ? "–" : `${v.accepted} / ${v.expected}`} |`);
  }
  p();
  p(`The re-parse path costs **${cpu.ratio_is_lower_bound ? "at least " : ""}${fmt(cpu.ratio_records_to_partial_64, 1)}x** the partial path per record (64 records a call)` +
    (cpu.ratio_is_lower_bound ? ": a 64-record partial costs no more than an empty call within the clock's resolution (≤ marks a figure at the resolution)." : "."));
  p("Each call also costs the object what an empty one does (the call itself: request, response, storage checks), whatever it carries.");
  p();
  p("**Throughput.** Closed loop: the next call leaves when one completes.");
  p();
  p("| body | records per call | in flight | records | records/s absorbed | call p50 / p99 / max ms | accepted (driver / object) | failed calls | object SQLite bytes |");
  p("|---|---|---|---|---|---|---|---|---|");
  for (const r of tput.closed) {
    p(`| ${r.kind} | ${r.batch} | ${r.inflight} | ${r.sent} | ${fmt(r.records_per_s, 0)} | ${r.call_ms_p50} / ${r.call_ms_p99} / ${r.call_ms_max} | ${r.accepted} / ${r.object_accepted} | ${r.failed_calls} | ${r.storage_bytes} |`);
  }
  p();
  p("Open loop, partial buckets of 64 records released on a fixed schedule whatever the object's pace;");
  p("\"kept up\" = finished within 10% of the schedule.");
  p();
  p("| offered records/s | records | achieved records/s | run took vs schedule | kept up | max calls in flight | call p50 / p99 / max ms | accepted (driver / object) | failed calls |");
  p("|---|---|---|---|---|---|---|---|---|");
  for (const r of tput.open) {
    p(`| ${r.rate} | ${r.sent} | ${fmt(r.records_per_s, 0)} | ${fmt(r.elapsed_ms / 1000, 2)} s vs ${fmt(r.expected_ms / 1000, 2)} s | ${r.kept_up ? "yes" : "**no**"} | ${r.max_in_flight} | ${r.call_ms_p50} / ${r.call_ms_p99} / ${r.call_ms_max} | ${r.accepted} / ${r.object_accepted} | ${r.failed_calls} |`);
  }
  p();
  const behind = tput.open.find((r) => !r.kept_up);
  p(`One shop's object absorbs **${tput.sustained === null ? "–" : fmt(tput.sustained, 0)} records/s** in partial buckets without falling behind` +
    (behind ? `; offered ${behind.rate}/s, it managed ${fmt(behind.records_per_s, 0)}/s and fell behind.` : "; it kept up with every offered rate."));
  p("Past its capacity calls queue at the object (locally nothing bounds the queue; a deployed object");
  p("answers \"overloaded\", which `forward.rs` tries once more and then logs as `monitor_forward_failed` with");
  p("the number of records). The driver shares the workerd process with the object.");
  p();
  p("## 4. Digest accuracy on the alert path");
  p();
  p("Records folded into partial buckets as an isolate does (flushes of 64), sent as binary digests, merged");
  p("by the monitor (`Window::add_partial`, `merged` over the 600 s window of 60 buckets, `quantile`), against");
  p("exact nearest-rank quantiles of the same values; relative error, median and max over seeds.");
  p("heavy_tail: lognormal (median 40 ms, sigma 0.6) with 2% log-uniform in 300–2000 ms; p95_near_200ms:");
  p("lognormal median 80 ms, sigma 0.554.");
  p();
  p("| dataset | values per bucket (x60) | seeds | p50 error median [max] | p95 error median [max] | p99 error median [max] |");
  p("|---|---|---|---|---|---|");
  for (const a of native.figures.accuracy) {
    p(`| ${a.dataset} | ${a.records_per_bucket} | ${a.seeds} | ${pct(a.p50.median, 3)} [${pct(a.p50.max, 3)}] | ${pct(a.p95.median, 3)} [${pct(a.p95.max, 3)}] | ${pct(a.p99.median, 3)} [${pct(a.p99.max, 3)}] |`);
  }
  p();
  p("## 5. Detection latency (workerd, compressed rules, webhook to a local sink)");
  p();
  p("The `alert` service runs with ENVIRONMENT=test and wrangler.toml's [env.test] ALERT_RULES");
  p(`(bucket 1 s, window 5 s, sustain ${toml.testRules.http_5xx_rate.for_s} s), records in partial buckets as in production, ALERT_WEBHOOK_URL`);
  p("pointing at a sink in the harness on 127.0.0.1. 5xx: ~20 requests/s of `/__test/fault?status=503`;");
  p("p95: 8 clients of 300 ms requests. A fresh shop per trial; the 5xx and p95 trials run side by side.");
  p("Each shop reports to the fleet object before its trigger goes out, as in production; fleet incidents");
  p("are off (`FLEET_ALERTING={\"enabled\": false}`), since trials in several shops at once would page once as");
  p("`fleet:{rule}` and hold the later shops' own alerts (that grouping is tested in e2e_fleet.rs).");
  p("Sustain time reached = the payload's `active_at` + `for_s`; detection = webhook received − that.");
  p();
  p("| rule | trial | fired | detection ms (sustain reached -> webhook received) | firing evaluation late by ms | delivery ms (since -> received) | onset ms (first bad request -> active_at) |");
  p("|---|---|---|---|---|---|---|");
  for (const d of detection) {
    p(`| ${d.rule} | ${d.shop} | ${d.fired ? "yes" : "**no**"} | ${d.fired ? d.detection_ms : "–"} | ${d.fired ? d.fired_after_sustain_ms : "–"} | ${d.fired ? d.delivery_ms : "–"} | ${d.fired ? d.onset_ms : "–"} |`);
  }
  p();
  p(`## 6. Fleet: ${fleet.shops} shops in one workerd`);
  p();
  p(`The lookout service (partial buckets) with \`SHOPS\` listing ${fleet.shops} more shops: \`wrk -t1 -c${fleet.concurrency} -d${P.fleetS}s\` on \`/health\`,`);
  p(`each request to the next shop in turn (bench/lib/wrk.lua, \`BENCH_FLEET_SHOPS\`), then every shop's counters.`);
  p("Memory: the workerd process's resident set (all services and objects of the bench), and the wasm");
  p("memory of the lookout service's instance (shared by its Worker and its objects in one isolate).");
  p();
  p("| shops | requests | requests/s | records accepted (per shop min–max) | lost | object calls | calls per request | alarms run | SQLite rows written | workerd RSS before → after | peak RSS | wasm memory |");
  p("|---|---|---|---|---|---|---|---|---|---|---|---|");
  p(`| ${fleet.shops} | ${fleet.requests} | ${fmt(fleet.rps, 0)} | ${fleet.accepted} (${fleet.min_shop_accepted}–${fleet.max_shop_accepted}) | ${fleet.lost}${fleet.forward_failed_records ? ` (${fleet.forward_failed_records} logged)` : ""} | ${fleet.calls} | ${fmt(fleet.calls_per_request, 4)} | ${fleet.alarms_run} | ${fleet.rows_written} | ${fmt(fleet.workerd_rss_kb_before / 1024, 0)} → ${fmt(fleet.workerd_rss_kb_after / 1024, 0)} MiB | ${fmt(fleet.workerd_hwm_kb / 1024, 0)} MiB | ${fleet.wasm_memory_bytes === null ? "–" : fmt(fleet.wasm_memory_bytes / 1048576, 1) + " MiB"} |`);
  p();
  p("With requests spread over many shops each isolate flushes each shop's partial on its own, so object");
  p("calls per request grow with the number of shops a busy isolate serves at once (about one call per shop");
  p("per flush interval), not with its traffic.");
  p();
  p("## 7. What monitoring costs in money");
  p();
  p(`Cloudflare's published prices, read ${cost.prices.read}: ${cost.prices.source.join(" and ")} (Workers Paid,`);
  p(`Standard usage model; marginal prices past the included allowances): Worker CPU $${cost.prices.worker_cpu_per_million_ms}/million ms;`);
  p(`Durable Object requests (calls and alarm runs) $${cost.prices.do_requests_per_million}/million; duration $${cost.prices.do_duration_per_million_gb_s}/million GB-s (128 MB per`);
  p(`active object); SQLite rows written $${cost.prices.do_rows_written_per_million}/million (each \`setAlarm\` counts as one); rows read $${cost.prices.do_rows_read_per_million}/million; stored data $${cost.prices.do_storage_per_gb_month}/GB-month.`);
  p();
  p("Per million app requests, from the exact-count run's counters (§1: object calls, alarm runs and sets, SQLite");
  p("rows the object wrote and read), the object's time per call from §3 (duration: an estimate, locally measured),");
  p("and the Worker's added CPU (the added time per request at c = 1 on the trivial route, wall time = CPU time");
  p("locally). The bench's shop is busy (thousands of requests/s): alarms and bucket rows are per second, not per");
  p("request, so a quieter shop pays more of them per request (see NOTES.md for 1–100 req/s).");
  p();
  p("| arm | object calls / request | alarm runs / request | rows written / request | DO requests $ | rows written $ | rows read $ | duration $ | Worker CPU $ | **total $ per million requests** |");
  p("|---|---|---|---|---|---|---|---|---|---|");
  for (const [arm, c] of Object.entries(cost.arms)) {
    const u = c.usd_per_million_requests, q = c.per_request;
    p(`| ${ARM_LABEL[arm]} | ${fmt(q.object_calls, 4)} | ${fmt(q.alarm_runs, 5)} | ${fmt(q.rows_written, 5)} | ${fmt(u.do_requests, 4)} | ${fmt(u.do_rows_written, 4)} | ${fmt(u.do_rows_read, 6)} | ${fmt(u.do_duration, 5)} | ${fmt(u.worker_cpu, 5)} | **${fmt(u.total, 4)}** |`);
  }
  p();
  p("Stored data per shop and month (full ring, §2): " + cost.storage.map((s) => `${fmt(s.requests_per_s, 0)} req/s: ${fmt(s.bytes / 1024, 1)} KiB = $${s.usd_per_shop_month.toExponential(1)}`).join("; ") + ".");
  p("The JS middleware's object stores nothing and evaluates nothing (it only counts), so its figure is a lower bound for that approach.");
  p();
  return L.join("\n");
}

/** Every figure under stable keys (bench/RESULTS.json). */
function resultsJson({ m, native, overhead, exact, cpu, tput, logc, detection, fleet, cost, verdicts, elapsedS }) {
  const overheadByKey = {};
  for (const r of overhead.rows) {
    const o = ((overheadByKey[r.route] ??= {})[`c${r.c}`] ??= {});
    o[r.arm] = {
      rps: r.rps.median, p50_ms: r.p50_ms.median, p99_ms: r.p99_ms.median,
      cpu_us_per_request: r.cpu_us.median, added_cpu_us_per_request: r.added_cpu_us?.median ?? null,
      ratio_to_off: r.ratio?.median ?? 1, ratio_to_log_line: r.ratio_to_log?.median ?? null,
      added_p50_ms: r.added_p50_ms?.median ?? null, added_p99_ms: r.added_p99_ms?.median ?? null,
      calls_per_request: r.calls_per_request ?? null, accepted: r.accepted ?? null, completed: r.requests, lost: r.lost ?? null,
      spread: { rps: r.rps, ratio_to_off: r.ratio ?? null, added_p50_ms: r.added_p50_ms ?? null },
    };
  }
  const det = (rule) => detection.filter((d) => d.rule === rule).map((d) => (d.fired ? d.detection_ms : null));
  return {
    schema: 1,
    smoke: SMOKE,
    run: { date: m.date, commit: m.commit, elapsed_s: Math.round(elapsedS), load_average_start: m.load_at_start, load_average_end: m.load_at_end, nproc: m.nproc, cpu: m.cpu, workerd: m.workerd, rustc: m.rustc },
    targets: Object.fromEntries(verdicts.map((v) => [v.id, { target: v.target, measured: v.measured, met: v.met, value: v.value }])),
    overhead: overheadByKey,
    calls_per_request: Object.fromEntries(MONITORED.map((arm) => [arm, {
      worst_loaded: Math.max(...overhead.rows.filter((r) => r.arm === arm && r.c >= 8).map((r) => r.calls_per_request)),
      exact: exact.find((e) => e.arm === arm)?.calls_per_request ?? null,
    }])),
    exact: Object.fromEntries(exact.map((e) => [e.arm, e])),
    object_cpu_us_per_record: {
      records_64: cpu.cases.records_64.us_per_record, partial_64: cpu.cases.partial_64.us_per_record, partial_512: cpu.cases.partial_512.us_per_record,
      empty_call_ms: cpu.empty_call_ms, ratio_records_to_partial_64: cpu.ratio_records_to_partial_64,
    },
    bytes_per_shop: Object.fromEntries(native.figures.persisted.map((x) => [`${x.requests_per_s}_req_per_s`, x])),
    partial_bytes: native.figures.partial_bytes,
    accuracy: native.figures.accuracy,
    native_ns: Object.fromEntries(native.core.map((c) => [c.id, { ns: c.ns, lo: c.lo, hi: c.hi }])),
    log_line_us: { console_log: logc.console_log_us.median, build_line: logc.build_line_us.median },
    throughput: { sustained_records_per_s: tput.sustained, saturated_records_per_s: tput.saturated, closed: tput.closed, open: tput.open },
    detection_ms: { http_5xx_rate: det("http_5xx_rate"), request_p95: det("request_p95"), worst: Math.max(...detection.filter((d) => d.fired).map((d) => d.detection_ms)) },
    fleet,
    cost_per_million_requests_usd: Object.fromEntries(Object.entries(cost.arms).map(([arm, c]) => [arm, { ...c.usd_per_million_requests, per_request: c.per_request }])),
    storage_usd_per_shop_month: cost.storage,
    prices: cost.prices,
  };
}

// ---------- main ----------
async function main() {
  fs.rmSync(path.join(OUT, "do"), { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  if (!fs.existsSync(path.join(STATE, "v3/d1"))) throw new Error(`no D1 state in ${STATE} (bench/run prepares it)`);
  const m = machine();
  log(`machine: ${m.cpu}, nproc ${m.nproc}; commit ${m.commit}; load ${m.load_at_start}`);
  const native = nativePhase();

  const toml = readWranglerToml(ROOT);
  toml.testRules = JSON.parse(toml.testAlertRules);
  const sink = await startSink();
  const ports = {};
  for (const n of [...ARMS, "alert", "driver"]) ports[n] = await freePort();
  const detShops = [];
  for (let i = 1; i <= P.detTrials; i++) detShops.push(`det-5xx-${i}`, `det-p95-${i}`);
  const fleetShops = Array.from({ length: FLEET_SHOPS }, (_, i) => `fleet-${String(i + 1).padStart(2, "0")}`);
  const cfg = writeConfig({
    root: ROOT, outDir: OUT, stateDir: STATE, toml, ports,
    serviceVars: {
      off: { LOOKOUT_INSTRUMENT: "off" },
      log: { LOOKOUT_INSTRUMENT: "log" },
      on: { OPS_TOKEN, SHOPS: [toml.vars.SHOPS, ...fleetShops].join(",") },
      perreq: { OPS_TOKEN, MONITOR_FLUSH_MS: "0" },
      seedjs: { LOOKOUT_INSTRUMENT: "off" },
      // Fleet incidents off: the trials fire the same rules in several shops within the fleet
      // window, which would (rightly) page once as `fleet:{rule}` and hold the later shops' own
      // alerts; each shop's path is what is timed here (the fleet object still answers each
      // shop's report before its trigger). Fleet grouping is tested end to end (e2e_fleet.rs).
      alert: { OPS_TOKEN, ENVIRONMENT: "test", ALERT_RULES: toml.testAlertRules, ALERT_WEBHOOK_URL: `http://127.0.0.1:${sink.port}/hook`, SHOPS: [toml.vars.SHOPS, ...detShops].join(","), FLEET_ALERTING: '{"enabled": false}' },
    },
  });
  const wd = new Workerd(cfg);
  const stopAll = () => {
    wd.stop();
    sink.server.close();
    agent.destroy();
  };
  process.on("SIGINT", () => (stopAll(), process.exit(130)));
  process.on("SIGTERM", () => (stopAll(), process.exit(143)));
  try {
    await wd.ready(ports);
    const overhead = await overheadPhase(wd, ports);
    const exact = await exactPhase(wd, ports);
    const cpu = await cpuPhase(ports);
    const tput = await throughputPhase(ports);
    const logc = await logPhase(ports);
    const detection = await detectionPhase(ports, sink, toml.testRules);
    const fleet = await fleetPhase(wd, ports);
    const cost = costs({ overhead, exact, cpu, native });
    m.load_at_end = os.loadavg().map((x) => x.toFixed(2)).join(" ");
    const elapsedS = (Date.now() - t0Run) / 1000;
    const verdicts = judge({ native, overhead, exact, cpu, detection, fleet });
    const all = { m, native, overhead, exact, cpu, tput, logc, detection, fleet, cost, verdicts, elapsedS, toml };
    const md = report(all);
    fs.writeFileSync(RESULTS, md + "\n" + keptSections(RESULTS));
    fs.writeFileSync(RESULTS_JSON, JSON.stringify({ ...keptKeys(RESULTS_JSON), ...resultsJson(all) }, null, 1) + "\n");
    fs.writeFileSync(path.join(OUT, "raw.json"), JSON.stringify({ m, native, overhead, exact, cpu, tput, logc, detection, fleet, cost }, null, 1));
    console.log(md);
    log(`wrote ${path.relative(ROOT, RESULTS)} and ${path.relative(ROOT, RESULTS_JSON)} in ${elapsedS.toFixed(0)} s`);
    if (SMOKE) {
      // The smoke run checks that every phase produced its figures, not what they are.
      const problems = [];
      if (overhead.rows.some((r) => r.rps.n === 0 || !(r.rps.median > 0))) problems.push("an overhead run served nothing");
      if (overhead.rows.some((r) => r.errors > 0)) problems.push("wrk saw errors");
      for (const e of exact) if (e.accepted !== e.sent || e.ok !== e.sent) problems.push(`${e.arm}: ${e.accepted} of ${e.sent} records reached the monitor`);
      if ([...tput.closed, ...tput.open].some((r) => r.accepted !== r.sent)) problems.push("driver: records not accepted");
      for (const v of Object.values(cpu.cases)) if (v.kind !== "empty" && v.accepted !== v.expected) problems.push(`cpu ${v.kind}_${v.batch}: ${v.accepted} of ${v.expected} accepted`);
      if (!Number.isFinite(logc.console_log_us.median)) problems.push("log cost not measured");
      if (detection.some((d) => !d.fired)) problems.push("an alert did not fire");
      if (fleet.lost > 0 || fleet.accepted === 0) problems.push(`fleet: ${fleet.accepted} accepted of ${fleet.requests}`);
      if (problems.length) throw new Error("smoke: " + problems.join("; "));
    }
  } finally {
    stopAll();
  }
}

// Sections other benches write into the same file between `<!-- NAME:begin -->` (or
// `<!-- NAME:start ...`) and `<!-- NAME:end -->` (bench/forensics.sh's), carried over when this
// run rewrites it.
function keptSections(file) {
  let old = "";
  try {
    old = fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
  const blocks = old.match(/<!-- ([a-z]+):(?:begin|start)[\s\S]*?<!-- \1:end -->/g) ?? [];
  return blocks.map((b) => "\n" + b + "\n").join("");
}

main().catch((e) => {
  console.error("[bench] FAILED:", e.stack ?? e);
  process.exit(1);
});

/** The keys of an existing RESULTS.json that other benches write (bench/forensics.sh, bench/run --fleet): kept as they are. */
function keptKeys(file) {
  const OTHERS = ["forensics", "dashboards"];
  try {
    const old = JSON.parse(fs.readFileSync(file, "utf8"));
    return Object.fromEntries(Object.entries(old).filter(([k]) => OTHERS.includes(k)));
  } catch {
    return {};
  }
}
