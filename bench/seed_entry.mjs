// Bench-only module (exists only in the bench's workerd config, never deployed): the design's
// own JavaScript middleware, `withInstrumentation` from shared/seed/observability.txt ("How
// instrumentation lands in code"), around the same app build served bare
// (LOOKOUT_INSTRUMENT=off), plus what that design pairs it with: one Durable Object call per
// request through `ctx.waitUntil`, carrying the line. The object (SeedMonitor) is the least a
// team would write: it parses the line and counts in memory (no windows, no rules, no
// storage), so this arm is a lower bound of what that approach costs.
//
//   GET /__seed/count?shop=S   records the shop's SeedMonitor received (the bench's loss check)

import { DurableObject } from "cloudflare:workers";
import Base from "../examples/shop/build/index.js";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

function makeRequestId(request) {
  let suffix = "";
  for (let i = 0; i < 6; i++) suffix += ALPHABET[Math.floor(Math.random() * 36)];
  const ray = request.headers.get("cf-ray");
  return ray ? `${ray}-${suffix}` : `req_${suffix}${suffix}`;
}

// The seed's middleware, as written there (its `shop` is the host's first label here, as the
// app resolves it, where the seed has one Worker per shop and reads env.SHOP_SLUG), with the
// line also sent to the shop's object.
async function withInstrumentation(handler, request, env, ctx) {
  const request_id = makeRequestId(request);
  const t0 = performance.now();
  let status = 500,
    error_class = null,
    error_msg = null;
  const shop = (request.headers.get("host") ?? "").split(".")[0] || null;
  try {
    const res = await handler(request, env, { ...ctx, request_id });
    status = res.status;
    return res;
  } catch (e) {
    status = 500;
    error_class = e.constructor.name;
    error_msg = e.message;
    return new Response("Internal Error", { status: 500 });
  } finally {
    const ms = Math.round(performance.now() - t0);
    const line = JSON.stringify({
      ts: new Date().toISOString(),
      request_id,
      shop,
      path: new URL(request.url).pathname,
      method: request.method,
      status,
      ms,
      error_class,
      error_msg,
    });
    console.log(line);
    if (shop) {
      const stub = env.SEED_MONITOR.get(env.SEED_MONITOR.idFromName(shop));
      ctx.waitUntil(stub.fetch("https://seed/ingest", { method: "POST", body: line }).then((r) => r.arrayBuffer(), () => null));
    }
  }
}

export class SeedMonitor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.records = 0;
    this.errors5xx = 0;
  }
  async fetch(request) {
    if (request.method === "POST") {
      const r = JSON.parse(await request.text());
      this.records++;
      if (r.status >= 500) this.errors5xx++;
      return new Response("ok");
    }
    return Response.json({ records: this.records, errors_5xx: this.errors5xx });
  }
}

export default class Seed extends Base {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/__seed/count") {
      const shop = url.searchParams.get("shop") ?? "swicked";
      return this.env.SEED_MONITOR.get(this.env.SEED_MONITOR.idFromName(shop)).fetch("https://seed/count");
    }
    return withInstrumentation((req) => super.fetch(req), request, this.env, this.ctx);
  }
}
