// Bench-only Worker (exists only in the bench's workerd config, never deployed): drives a
// shop's ShopMonitor object directly through its namespace binding, the way forward.rs does
// (POST /ingest?shop=..., body {"records":[...]}), and measures what a log line costs.
//
//   GET /drive?shop=S&records=N&batch=B&inflight=K[&rate=R]
//       send N synthetic request records in batches of B, at most K calls in flight; with
//       rate=R (records/s) batches are released on a schedule (open loop), else as fast as
//       calls complete (closed loop). Answers sent/accepted/failed counts and call timings.
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

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function drive(env, shop, total, batch, inflight, rate) {
  const stub = env.MONITOR.get(env.MONITOR.idFromName(shop));
  const t0 = Date.now();
  let seq = 0, sent = 0, accepted = 0, rejected = 0, failedCalls = 0, failedRecords = 0, calls = 0;
  let maxInFlight = 0, inFlight = 0, maxLagMs = 0;
  const callMs = [];
  const statuses = {};
  const one = async (n, dueMs) => {
    const ts = new Date().toISOString();
    const lines = [];
    for (let i = 0; i < n; i++) lines.push(recordLine(shop, seq++, ts));
    const body = `{"records":[${lines.join(",")}]}`;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const c0 = Date.now();
    if (dueMs !== undefined) maxLagMs = Math.max(maxLagMs, c0 - dueMs);
    try {
      const resp = await stub.fetch(`https://monitor/ingest?shop=${shop}`, { method: "POST", body });
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
    if (url.pathname === "/drive") {
      const total = Math.min(p("records", 1000), MAX_RECORDS);
      const batch = Math.max(1, Math.min(p("batch", 64), 2000));
      const inflight = Math.max(1, Math.min(p("inflight", 1), 256));
      const rate = p("rate", 0);
      return Response.json(await drive(env, shop, total, batch, inflight, rate));
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
