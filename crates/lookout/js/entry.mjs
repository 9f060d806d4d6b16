// lookout's module entry wrapper. A Rust panic kills the wasm instance: the Rust panic hook
// (crates/lookout/src/inflight.rs) writes the line of every request and cron run in flight and
// hands it here, so that a panicked request still answers 500 with its request id and its
// record still reaches the shop's monitor, and a panicked cron run still sends its End
// check-in (the invocation then fails, so the platform's cron history shows it).
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

// The record of a panicked request goes to its shop's monitor like any other.
async function forwardToMonitor(env, { line, binding }) {
  try {
    const shop = JSON.parse(line).shop;
    const stub = shop && monitor(env, binding, shop);
    if (!stub) return;
    await stub.fetch(`https://monitor/ingest?shop=${encodeURIComponent(shop)}`, {
      method: "POST",
      body: `{"records":[${line}]}`,
    });
  } catch (e) {
    console.log(JSON.stringify({ kind: "monitor_forward_failed", records: 1, error: String(e && e.name) }));
  }
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
      let settle;
      const panicked = new Promise((resolve) => (settle = resolve));
      const waiter = { env: this.env, ctx: this.ctx, settle };
      cronWaiters.add(waiter);
      try {
        const outcome = await Promise.race([super.scheduled(controller).then(() => null), panicked]);
        if (outcome) {
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
      let settle;
      const panicked = new Promise((resolve) => (settle = resolve));
      pending.set(request, settle);
      try {
        const outcome = await Promise.race([super.fetch(request), panicked]);
        if (outcome instanceof Response) return outcome;
        this.ctx.waitUntil(forwardToMonitor(this.env, outcome));
        return internalError(outcome.requestId);
      } catch (e) {
        const seen = await Promise.race([panicked, Promise.resolve(null)]);
        if (seen) {
          this.ctx.waitUntil(forwardToMonitor(this.env, seen));
          return internalError(seen.requestId);
        }
        throw e;
      } finally {
        pending.delete(request);
      }
    }
  };
}
