// The Worker's module entry: worker-build's output (build/index.js) wrapped so that a Rust
// panic, which kills the wasm instance, still answers 500 with the request id and still
// reaches the shop's monitor. The Rust panic hook (src/edge/panic.rs) writes the request's
// log line and calls __lookout_on_panic with it. For a cron run it writes the run's summary
// line and calls __lookout_on_cron_panic with the run's End check-in, which is sent here.
import Base from "../build/index.js";
export * from "../build/index.js";

const pending = new WeakMap();

globalThis.__lookout_on_panic = (request, requestId, line) => {
  const settle = pending.get(request);
  if (settle) settle({ requestId, line });
};

function internalError(requestId) {
  return new Response(JSON.stringify({ error: "InternalError", message: "internal error", request_id: requestId }), {
    status: 500,
    headers: { "content-type": "application/json", "x-request-id": requestId },
  });
}

// The record of a panicked request goes to its shop's monitor like any other.
async function forwardToMonitor(env, line) {
  try {
    const shop = JSON.parse(line).shop;
    if (!shop || !env.SHOP_MONITOR) return;
    const stub = env.SHOP_MONITOR.get(env.SHOP_MONITOR.idFromName(shop));
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

async function sendCheckIn(env, shop, body) {
  try {
    const stub = env.SHOP_MONITOR.get(env.SHOP_MONITOR.idFromName(shop));
    const res = await stub.fetch(`https://monitor/ingest?shop=${encodeURIComponent(shop)}`, { method: "POST", body });
    if (res.status !== 200) throw new Error(`monitor answered ${res.status}`);
  } catch (e) {
    console.log(JSON.stringify({ kind: "cron_check_in_failed", shop, type: "end", error: String(e && e.message) }));
  }
}

globalThis.__lookout_on_cron_panic = (shop, body) => {
  const waiter = cronWaiters.values().next().value;
  if (!waiter) return;
  const sent = sendCheckIn(waiter.env, shop, body);
  waiter.ctx.waitUntil(sent);
  for (const w of cronWaiters) w.settle({ sent });
};

export default class Lookout extends Base {
  // A panicked cron run still sends its End check-in (the summary line is already written);
  // the invocation then fails, so the platform's cron history shows it.
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
    // Bench baseline only (LOOKOUT_INSTRUMENT=off): no panic bookkeeping either.
    if (this.env.LOOKOUT_INSTRUMENT === "off") return super.fetch(request);
    let settle;
    const panicked = new Promise((resolve) => (settle = resolve));
    pending.set(request, settle);
    try {
      const outcome = await Promise.race([super.fetch(request), panicked]);
      if (outcome instanceof Response) return outcome;
      this.ctx.waitUntil(forwardToMonitor(this.env, outcome.line));
      return internalError(outcome.requestId);
    } catch (e) {
      const seen = await Promise.race([panicked, Promise.resolve(null)]);
      if (seen) {
        this.ctx.waitUntil(forwardToMonitor(this.env, seen.line));
        return internalError(seen.requestId);
      }
      throw e;
    } finally {
      pending.delete(request);
    }
  }
}
