// lookout's module entry wrapper. A Rust panic kills the wasm instance: the Rust panic hook
// (crates/lookout/src/inflight.rs) writes the line of every request and cron run in flight and
// hands it here, so that a panicked request still answers 500 with its request id and its
// record still reaches the shop's monitor, and a panicked cron run still sends its End
// check-in (the invocation then fails, so the platform's cron history shows it). The hook
// also hands over the partial buckets the isolate had not yet sent (the records of requests
// that finished before the panic, crates/lookout/src/forward.rs): they are kept here, outside
// the wasm instance, and sent by the panicked request, or by the next request or cron run when
// none is at hand. A send that fails is logged as `monitor_forward_failed` with its records.
//
// Use it as your Worker's `main` (see README "Use lookout in your Worker"):
//
//   import Base from "./build/index.js";          // worker-build's output
//   import { withLookout } from "<path to the lookout crate>/js/entry.mjs";
//   export * from "./build/index.js";             // your Durable Object classes (ShopMonitor)
//   export default withLookout(Base);
//
// Options: `bypass(env)`: when it returns true, fetch goes straight to the wasm (the sample
// app's bench baseline uses it; leave it unset).

const pending = new WeakMap();

globalThis.__lookout_on_panic = (request, requestId, line, binding) => {
  const settle = pending.get(request);
  if (settle) settle({ requestId, line, binding });
};

// Partial buckets handed over by a panic, waiting for a request or cron run to send them.
const MAX_ORPHANS = 256;
let orphans = [];

globalThis.__lookout_on_panic_partials = (binding, shop, body, records) => {
  if (orphans.length >= MAX_ORPHANS) {
    console.log(JSON.stringify({ kind: "monitor_forward_failed", shop, records, error: "too many partials handed over" }));
    return;
  }
  orphans.push({ binding, shop, body, records });
};

// What shop monitors (Durable Objects in this isolate) had not stored when a panic reset the
// wasm instance they live in: put back by each object's next load (crates/lookout/src/shop_monitor.rs).
const handedOver = new Map();
globalThis.__lookout_on_panic_monitor = (shop, state) => handedOver.set(shop, state);
globalThis.__lookout_take_monitor_handover = (shop) => {
  const state = handedOver.get(shop);
  handedOver.delete(shop);
  return state ?? null;
};

const MONITOR_TIMEOUT_MS = 5000;

// POST a body to a shop's monitor: tried again once (200 ms later) after an error, a timeout,
// a 5xx, 408 or 429, as crates/lookout/src/forward.rs does. Resolves to null or the failure.
async function ingest(env, binding, shop, body) {
  let failure = null;
  for (let attempt = 1; attempt <= 2; attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, 200));
    try {
      const stub = monitor(env, binding, shop);
      if (!stub) return { status: null, attempts: attempt, error: `no ${binding} binding` };
      const call = stub.fetch(`https://monitor/ingest?shop=${encodeURIComponent(shop)}`, { method: "POST", body });
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("monitor did not answer within 5 s")), MONITOR_TIMEOUT_MS));
      const res = await Promise.race([call, timeout]);
      await res.arrayBuffer();
      if (res.status === 200) return null;
      failure = { status: res.status, attempts: attempt, error: `monitor answered ${res.status}` };
      if (!(res.status >= 500 || res.status === 408 || res.status === 429)) return failure;
    } catch (e) {
      failure = { status: null, attempts: attempt, error: String(e && e.message) };
    }
  }
  return failure;
}

function logFailure(shop, records, failure) {
  console.log(JSON.stringify({ kind: "monitor_forward_failed", shop, records, ...failure }));
}

// Send what panics handed over (every shop's partials) from an invocation's context.
function sendOrphans(env, ctx) {
  if (orphans.length === 0) return;
  const batch = orphans;
  orphans = [];
  ctx.waitUntil(
    Promise.all(
      batch.map(async ({ binding, shop, body, records }) => {
        const failure = await ingest(env, binding, shop, body);
        if (failure) logFailure(shop, records, failure);
      }),
    ),
  );
}

function internalError(requestId) {
  return new Response(JSON.stringify({ error: "InternalError", message: "internal error", request_id: requestId }), {
    status: 500,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

function monitor(env, binding, shop) {
  const ns = env[binding];
  return ns ? ns.get(ns.idFromName(shop)) : null;
}

// The record of a panicked request goes to its shop's monitor as a record line.
async function forwardToMonitor(env, { line, binding }) {
  let shop = null;
  try {
    shop = JSON.parse(line).shop;
  } catch (e) {
    logFailure(null, 1, { status: null, attempts: 0, error: String(e && e.name) });
    return;
  }
  if (!shop) return;
  const failure = await ingest(env, binding, shop, `{"records":[${line}]}`);
  if (failure) logFailure(shop, 1, failure);
}

// Scheduled invocations in progress: a panic in any of them kills the instance for all.
const cronWaiters = new Set();

async function sendCheckIn(env, binding, shop, body) {
  try {
    const stub = monitor(env, binding, shop);
    if (!stub) throw new Error(`no ${binding} binding`);
    const res = await stub.fetch(`https://monitor/ingest?shop=${encodeURIComponent(shop)}`, { method: "POST", body });
    if (res.status !== 200) throw new Error(`monitor answered ${res.status}`);
  } catch (e) {
    console.log(JSON.stringify({ kind: "cron_check_in_failed", shop, type: "end", error: String(e && e.message) }));
  }
}

globalThis.__lookout_on_cron_panic = (shop, body, binding) => {
  const waiter = cronWaiters.values().next().value;
  if (!waiter) return;
  const sent = sendCheckIn(waiter.env, binding, shop, body);
  waiter.ctx.waitUntil(sent);
  for (const w of cronWaiters) w.settle({ sent });
};

export function withLookout(Base, options = {}) {
  const bypass = options.bypass || (() => false);
  return class Lookout extends Base {
    async scheduled(controller) {
      sendOrphans(this.env, this.ctx);
      let settle;
      const panicked = new Promise((resolve) => (settle = resolve));
      const waiter = { env: this.env, ctx: this.ctx, settle };
      cronWaiters.add(waiter);
      try {
        const outcome = await Promise.race([super.scheduled(controller).then(() => null), panicked]);
        if (outcome) {
          sendOrphans(this.env, this.ctx);
          await outcome.sent;
          throw new Error("a cron job panicked (see its summary line)");
        }
      } catch (e) {
        const seen = await Promise.race([panicked, Promise.resolve(null)]);
        if (seen) await seen.sent;
        throw e;
      } finally {
        cronWaiters.delete(waiter);
      }
    }

    async fetch(request) {
      if (bypass(this.env)) return super.fetch(request);
      sendOrphans(this.env, this.ctx);
      let settle;
      const panicked = new Promise((resolve) => (settle = resolve));
      pending.set(request, settle);
      try {
        const outcome = await Promise.race([super.fetch(request), panicked]);
        if (outcome instanceof Response) return outcome;
        this.ctx.waitUntil(forwardToMonitor(this.env, outcome));
        sendOrphans(this.env, this.ctx);
        return internalError(outcome.requestId);
      } catch (e) {
        const seen = await Promise.race([panicked, Promise.resolve(null)]);
        if (seen) {
          this.ctx.waitUntil(forwardToMonitor(this.env, seen));
          sendOrphans(this.env, this.ctx);
          return internalError(seen.requestId);
        }
        throw e;
      } finally {
        pending.delete(request);
      }
    }
  };
}
