// Bench-only Worker (exists only in the bench's workerd config, never deployed): drives a
// shop's ShopMonitor object directly through its namespace binding, the way forward.rs does
// (POST /ingest?shop=...), and measures what a log line costs.
//
//   GET /drive?shop=S&records=N&batch=B&inflight=K[&rate=R][&kind=records|partial]
//       send N synthetic request records, B per call, at most K calls in flight: as record
//       lines (kind=records, what an isolate sent before partial buckets, and what a panicked
//       request's line still is) or folded into one partial bucket per call (kind=partial,
//       what isolates send now); with rate=R (records/s) calls are released on a schedule
//       (open loop), else as fast as calls complete (closed loop). Answers sent/accepted/failed
//       counts and call timings.
//   GET /cpu?shop=S&kind=records|partial|empty&batch=B&calls=C
//       build C bodies first, then send them one after the other and time the calls (what the
//       object spends per call; minus kind=empty, per record)
//   GET /status?shop=S      the object's status (counters)
//   GET /log?n=N[&print=0]  build N request-shaped lines and console.log them (print=0: build
//                           only), N <= 100000; timed from outside
//
// Every loop is bounded by N and by a deadline.

const MAX_RECORDS = 2_000_000;
const DEADLINE_MS = 60_000;
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

function requestId(n) {
  let s = "";
  for (let i = 0; i < 12; i++) {
    s = ALPHABET[n % 36] + s;
    n = Math.floor(n / 36);
  }
  return "req_" + s;
}

// A line with every field the Worker writes (crates/lookout-core/src/record.rs), latency-like `ms`.
function recordLine(shop, seq, tsIso) {
  const slow = seq % 50 === 0;
  return JSON.stringify({
    ts: tsIso,
    request_id: requestId(seq),
    shop,
    staff_id: 3,
    staff_label: "Robbie",
    path: "/api/tickets/2506",
    method: "GET",
    status: seq % 200 === 0 ? 503 : 200,
    ms: slow ? 350 + (seq % 1500) : 20 + (seq % 60),
    d1_queries: 3,
    d1_slowest: { sql: "SELECT t.id, t.status FROM tickets t WHERE t.id = ? AND t.shop = ?", ms: 2 + (seq % 7) },
    d1_n_plus_one: null,
    r2_ops: 0,
    external_calls: ["stripe:0", "twilio:0", "claude:0", "gbp:0"],
    cost_micros: { twilio: 0, claude: 0 },
    error_class: null,
    error_msg: null,
    error_context: null,
    build_version: "0.1.0+bench",
  });
}

// ---- partial buckets, as crates/lookout-core/src/partial.rs defines them ----

function varint(out, v) {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function f64(out, v) {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, v, true);
  for (let i = 0; i < 8; i++) out.push(b.getUint8(i));
}

// The binary digest (crates/lookout-core/src/monitor/digest.rs `encode`) of latencies: each
// value a centroid while there are at most 100, else 100 equal-weight groups (a valid digest).
function digest(values) {
  const out = [];
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) {
    varint(out, 0);
  } else {
    const per = Math.ceil(v.length / 100);
    const groups = [];
    for (let i = 0; i < v.length; i += per) {
      const g = v.slice(i, i + per);
      groups.push([g.reduce((a, b) => a + b, 0) / g.length, g.length]);
    }
    varint(out, groups.length);
    f64(out, v.reduce((a, b) => a + b, 0));
    f64(out, v[0]);
    f64(out, v[v.length - 1]);
    let last = 0;
    for (const [mean, w] of groups) {
      const k = Math.max(last, Math.round(Math.log1p(mean) * 10000));
      varint(out, k - last);
      varint(out, w);
      last = k;
    }
  }
  return btoa(String.fromCharCode(...out));
}

const SQL = "SELECT t.id, t.status FROM tickets t WHERE t.id = ? AND t.shop = ?";

// One partial bucket folding `n` records like recordLine's, all in the second of `nowMs`.
function partialJson(shop, id, seq0, n, nowMs) {
  const start = nowMs - (nowMs % 1000);
  const ms = [], d1 = [], samples = [];
  let errors = 0, maxMs = 0, sumMs = 0, maxD1 = 0, sumD1 = 0;
  for (let i = 0; i < n; i++) {
    const seq = seq0 + i;
    const slow = seq % 50 === 0;
    const m = slow ? 350 + (seq % 1500) : 20 + (seq % 60);
    const status = seq % 200 === 0 ? 503 : 200;
    ms.push(m);
    d1.push(2 + (seq % 7));
    maxMs = Math.max(maxMs, m);
    sumMs += m;
    maxD1 = Math.max(maxD1, 2 + (seq % 7));
    sumD1 += 2 + (seq % 7);
    if (status >= 500) errors++;
    if ((status >= 500 || slow) && samples.length < 20) {
      samples.push({ request_id: requestId(seq), ts_ms: start + 1, status, ms: m, d1_ms: 2 + (seq % 7), stripe: false });
    }
  }
  return JSON.stringify({
    v: 1, id, shop, start_ms: start, span_ms: 1000, requests: n, errors_5xx: errors, stripe_signature_failures: 0,
    unusable: 0, first_ts_ms: start, last_ts_ms: start + 999, request_ms: digest(ms), d1_ms: digest(d1),
    build_version: "0.1.0+bench",
    errors: errors ? [{ class: "HTTP 503", count: errors, count_5xx: errors, route: "/api/tickets/2506", first_build: "0.1.0+bench", first_ts_ms: start }] : [],
    slow_routes: [{ key: "/api/tickets/2506", max_ms: maxMs, count: n, sum_ms: sumMs }],
    slow_d1: [{ key: SQL, max_ms: maxD1, count: n, sum_ms: sumD1 }],
    samples, cost_micros: { twilio: 0, claude: 0 },
  });
}

let partialSeq = 0;

// A body carrying `n` records of `kind`.
function body(kind, shop, seq0, n) {
  if (kind === "empty") return '{"partials":[]}';
  const now = Date.now();
  if (kind === "partial") return `{"partials":[${partialJson(shop, `drv${Math.floor(now / 1000)}-${++partialSeq}`, seq0, n, now)}]}`;
  const ts = new Date(now).toISOString();
  const lines = [];
  for (let i = 0; i < n; i++) lines.push(recordLine(shop, seq0 + i, ts));
  return `{"records":[${lines.join(",")}]}`;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function drive(env, shop, total, batch, inflight, rate, kind) {
  const stub = env.MONITOR.get(env.MONITOR.idFromName(shop));
  const t0 = Date.now();
  let seq = 0, sent = 0, accepted = 0, rejected = 0, failedCalls = 0, failedRecords = 0, calls = 0;
  let maxInFlight = 0, inFlight = 0, maxLagMs = 0;
  const callMs = [];
  const statuses = {};
  const one = async (n, dueMs) => {
    const payload = body(kind, shop, seq, n);
    seq += n;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const c0 = Date.now();
    if (dueMs !== undefined) maxLagMs = Math.max(maxLagMs, c0 - dueMs);
    try {
      const resp = await stub.fetch(`https://monitor/ingest?shop=${shop}`, { method: "POST", body: payload });
      statuses[resp.status] = (statuses[resp.status] ?? 0) + 1;
      if (resp.status === 200) {
        const v = await resp.json();
        accepted += v.report.accepted;
        rejected += v.rejected.length + v.report.rejected_too_old + v.report.rejected_future + v.report.rejected_other_shop;
      } else {
        await resp.arrayBuffer();
        failedCalls++;
        failedRecords += n;
      }
    } catch (e) {
      statuses[String(e && e.message).slice(0, 80)] = (statuses[String(e && e.message).slice(0, 80)] ?? 0) + 1;
      failedCalls++;
      failedRecords += n;
    }
    callMs.push(Date.now() - c0);
    inFlight--;
    calls++;
  };
  const pending = new Set();
  const launch = (n, dueMs) => {
    const p = one(n, dueMs).finally(() => pending.delete(p));
    pending.add(p);
    sent += n;
  };
  if (rate) {
    // Open loop: batch k is due at t0 + k * batch / rate, whatever the object's pace.
    const interval = (batch * 1000) / rate;
    let k = 0;
    while (sent < total && Date.now() - t0 < DEADLINE_MS) {
      const due = t0 + k * interval;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      launch(Math.min(batch, total - sent), due);
      k++;
    }
  } else {
    while (sent < total && Date.now() - t0 < DEADLINE_MS) {
      while (pending.size < inflight && sent < total) launch(Math.min(batch, total - sent));
      await Promise.race(pending);
    }
  }
  await Promise.all(pending);
  const elapsedMs = Date.now() - t0;
  callMs.sort((a, b) => a - b);
  return {
    shop, sent, accepted, rejected, failed_calls: failedCalls, failed_records: failedRecords, calls, elapsed_ms: elapsedMs,
    records_per_s: elapsedMs > 0 ? (accepted * 1000) / elapsedMs : null,
    call_ms_p50: quantile(callMs, 0.5), call_ms_p99: quantile(callMs, 0.99), call_ms_max: callMs[callMs.length - 1] ?? null,
    max_in_flight: maxInFlight, max_release_lag_ms: maxLagMs, statuses,
  };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const p = (k, d) => {
      const v = url.searchParams.get(k);
      return v === null ? d : Number(v);
    };
    const shop = url.searchParams.get("shop") ?? "tput";
    const kind = ["records", "partial", "empty"].includes(url.searchParams.get("kind")) ? url.searchParams.get("kind") : "records";
    if (url.pathname === "/drive") {
      const total = Math.min(p("records", 1000), MAX_RECORDS);
      const batch = Math.max(1, Math.min(p("batch", 64), 2000));
      const inflight = Math.max(1, Math.min(p("inflight", 1), 256));
      const rate = p("rate", 0);
      return Response.json(await drive(env, shop, total, batch, inflight, rate, kind));
    }
    if (url.pathname === "/cpu") {
      const batch = Math.max(1, Math.min(p("batch", 64), 2000));
      const calls = Math.max(1, Math.min(p("calls", 100), 5000));
      const stub = env.MONITOR.get(env.MONITOR.idFromName(shop));
      const bodies = [];
      for (let i = 0; i < calls; i++) bodies.push(body(kind, shop, i * batch, batch));
      let accepted = 0, failed = 0;
      const t0 = Date.now();
      for (const b of bodies) {
        const resp = await stub.fetch(`https://monitor/ingest?shop=${shop}`, { method: "POST", body: b });
        if (resp.status === 200) accepted += (await resp.json()).report.accepted;
        else {
          failed++;
          await resp.arrayBuffer();
        }
      }
      const ms = Date.now() - t0;
      return Response.json({ kind, batch, calls, accepted, failed, ms, ms_per_call: ms / calls });
    }
    if (url.pathname === "/status") {
      const stub = env.MONITOR.get(env.MONITOR.idFromName(shop));
      return stub.fetch(`https://monitor/status?shop=${shop}`);
    }
    if (url.pathname === "/log") {
      const n = Math.max(0, Math.min(p("n", 0), 100_000));
      const print = url.searchParams.get("print") !== "0";
      const ts = new Date().toISOString();
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const line = recordLine("logcost", i, ts);
        bytes += line.length;
        if (print) console.log(line);
      }
      return Response.json({ n, bytes });
    }
    return new Response("no such route", { status: 404 });
  },
};
