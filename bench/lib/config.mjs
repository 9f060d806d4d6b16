// The workerd config of the bench: the same build (examples/shop/entry.mjs + its build/ +
// crates/lookout/js/entry.mjs) served by plain `workerd serve`, without wrangler's proxy, as several
// services that differ only in vars, each on its own 127.0.0.1 socket:
//
//   off     LOOKOUT_INSTRUMENT=off: no wrapper, no log line, no monitor call (the baseline)
//   log     LOOKOUT_INSTRUMENT=log: lookout's wrapper and log line, no monitor call
//   on      instrumented, records folded into partial buckets (MONITOR_FLUSH_MS default)
//   perreq  instrumented, every record sent alone (MONITOR_FLUSH_MS=0)
//   seedjs  bench/seed_entry.mjs: the design's JS middleware (log line + one object call per
//           request through waitUntil) around the app served bare
//   alert   instrumented, ENVIRONMENT=test, compressed ALERT_RULES, webhook to a local sink
//   driver  bench/driver.mjs: drives ShopMonitor objects directly (throughput, log cost)
//
// D1 is miniflare's local implementation wired by hand, as wrangler dev does it: the
// `cloudflare-internal:d1-api` wrapped binding over a service whose Durable Object
// (miniflare's database.worker.js) keeps the database in SQLite on disk. The database file
// is the one `wrangler d1 migrations apply --local --persist-to <state>` wrote.
// ShopMonitor objects use SQLite storage on local disk (as deployed objects do).

import fs from "node:fs";
import path from "node:path";

/** Vars, compatibility date and the test environment's ALERT_RULES from wrangler.toml. */
export function readWranglerToml(root) {
  const text = fs.readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(text)?.[1];
  if (!date) throw new Error("wrangler.toml: no compatibility_date");
  const vars = {};
  const section = /^\[vars\]\s*$([\s\S]*?)^\[/m.exec(text)?.[1] ?? "";
  for (const m of section.matchAll(/^([A-Z_][A-Z0-9_]*)\s*=\s*"([^"]*)"\s*$/gm)) vars[m[1]] = m[2];
  const testRules = /^\[env\.test\.vars\][\s\S]*?^ALERT_RULES\s*=\s*"""([\s\S]*?)"""/m.exec(text)?.[1];
  if (!testRules) throw new Error("wrangler.toml: no [env.test.vars] ALERT_RULES");
  JSON.parse(testRules); // must be valid JSON
  const d1Id = /\[\[d1_databases\]\][\s\S]*?database_id\s*=\s*"([^"]+)"/m.exec(text)?.[1];
  return { compatibilityDate: date, vars, testAlertRules: testRules.replace(/\s+/g, " "), d1DatabaseId: d1Id };
}

const q = (s) => JSON.stringify(String(s)); // capnp text strings use JSON-compatible escapes

function embed(fromDir, file) {
  let rel = path.relative(fromDir, file);
  if (!rel.startsWith(".")) rel = "./" + rel;
  return `embed ${q(rel)}`;
}

/**
 * Write the capnp config. `ports` maps service name to port; `vars` per service.
 * Returns the config file's path.
 */
export function writeConfig({ root, outDir, stateDir, ports, serviceVars, toml }) {
  const cfgPath = path.join(outDir, "workerd.capnp");
  const mf = path.join(root, "node_modules/miniflare/dist/src/workers");
  const e = (f) => embed(outDir, f);
  // Module names are the files' paths from the root, so the entries' relative imports resolve.
  const appModules = `[
      (name = "examples/shop/entry.mjs", esModule = ${e(path.join(root, "examples/shop/entry.mjs"))}),
      (name = "examples/shop/build/index.js", esModule = ${e(path.join(root, "examples/shop/build/index.js"))}),
      (name = "examples/shop/build/index_bg.wasm", wasm = ${e(path.join(root, "examples/shop/build/index_bg.wasm"))}),
      (name = "crates/lookout/js/entry.mjs", esModule = ${e(path.join(root, "crates/lookout/js/entry.mjs"))}),
    ]`;
  const d1Binding = `(name = "DB", wrapped = (moduleName = "cloudflare-internal:d1-api", innerBindings = [
        (name = "fetcher", service = (name = "d1-entry", props = (json = ${q(JSON.stringify({ MINIFLARE_NAMESPACE: toml.d1DatabaseId }))}))),
      ]))`;

  const seedModules = `[
      (name = "bench/seed_entry.mjs", esModule = ${e(path.join(root, "bench/seed_entry.mjs"))}),
      (name = "examples/shop/build/index.js", esModule = ${e(path.join(root, "examples/shop/build/index.js"))}),
      (name = "examples/shop/build/index_bg.wasm", wasm = ${e(path.join(root, "examples/shop/build/index_bg.wasm"))}),
    ]`;
  const appWorker = (name) => {
    const vars = { ...toml.vars, ...serviceVars[name] };
    const bindings = Object.entries(vars).map(([k, v]) => `(name = ${q(k)}, text = ${q(v)})`);
    if (name === "seedjs") {
      bindings.push(d1Binding, `(name = "SEED_MONITOR", durableObjectNamespace = "SeedMonitor")`);
      return `const ${name}Worker :Workerd.Worker = (
  modules = ${seedModules},
  compatibilityDate = ${q(toml.compatibilityDate)},
  bindings = [
    ${bindings.join(",\n    ")},
  ],
  durableObjectNamespaces = [ (className = "SeedMonitor", uniqueKey = "lookout-bench-seedjs-SeedMonitor") ],
  durableObjectStorage = (inMemory = void),
  globalOutbound = "loopback-net",
);`;
    }
    bindings.push(
      d1Binding,
      `(name = "SHOP_MONITOR", durableObjectNamespace = "ShopMonitor")`,
      `(name = "FLEET_MONITOR", durableObjectNamespace = "FleetMonitor")`,
    );
    return `const ${name}Worker :Workerd.Worker = (
  modules = ${appModules},
  compatibilityDate = ${q(toml.compatibilityDate)},
  bindings = [
    ${bindings.join(",\n    ")},
  ],
  durableObjectNamespaces = [
    (className = "ShopMonitor", uniqueKey = ${q(`lookout-bench-${name}-ShopMonitor`)}, enableSql = true),
    (className = "FleetMonitor", uniqueKey = ${q(`lookout-bench-${name}-FleetMonitor`)}, enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-disk"),
  globalOutbound = "loopback-net",
);`;
  };

  const apps = Object.keys(serviceVars);
  const services = [
    ...apps.map((n) => `(name = ${q(n)}, worker = .${n}Worker)`),
    `(name = "driver", worker = .driverWorker)`,
    `(name = "d1-entry", worker = .d1EntryWorker)`,
    `(name = "d1-db", worker = .d1DbWorker)`,
    `(name = "d1-disk", disk = (path = ${q(path.join(stateDir, "v3/d1"))}, writable = true))`,
    `(name = "do-disk", disk = (path = ${q(path.join(outDir, "do"))}, writable = true))`,
    // Outbound fetches (the alert webhook) may reach 127.0.0.1 only.
    `(name = "loopback-net", network = (allow = ["local"]))`,
  ];
  const sockets = Object.entries(ports).map(
    ([n, port]) => `(name = ${q(n)}, address = ${q(`127.0.0.1:${port}`)}, http = (), service = ${q(n)})`,
  );
  fs.mkdirSync(path.join(outDir, "do"), { recursive: true });
  const text = `# Generated by bench/lib/config.mjs; do not edit.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${services.join(",\n    ")},
  ],
  sockets = [
    ${sockets.join(",\n    ")},
  ],
  extensions = [ (modules = [
    (name = "miniflare:shared", esModule = ${e(path.join(mf, "shared/index.worker.js"))}),
    (name = "miniflare:zod", esModule = ${e(path.join(mf, "shared/zod.worker.js"))}),
  ]) ],
);

${apps.map(appWorker).join("\n\n")}

const driverWorker :Workerd.Worker = (
  modules = [ (name = "driver.mjs", esModule = ${e(path.join(root, "bench/driver.mjs"))}) ],
  compatibilityDate = ${q(toml.compatibilityDate)},
  bindings = [ (name = "MONITOR", durableObjectNamespace = (className = "ShopMonitor", serviceName = "on")) ],
);

const d1EntryWorker :Workerd.Worker = (
  modules = [ (name = "entry.worker.js", esModule = ${e(path.join(mf, "d1/entry.worker.js"))}) ],
  compatibilityDate = "2023-07-24",
  compatibilityFlags = ["enhanced_error_serialization"],
  bindings = [ (name = "MINIFLARE_OBJECT", durableObjectNamespace = (className = "D1DatabaseObject", serviceName = "d1-db")) ],
);

const d1DbWorker :Workerd.Worker = (
  modules = [ (name = "database.worker.js", esModule = ${e(path.join(mf, "d1/database.worker.js"))}) ],
  compatibilityDate = "2023-07-24",
  compatibilityFlags = ["nodejs_compat", "experimental"],
  durableObjectNamespaces = [ (className = "D1DatabaseObject", uniqueKey = "miniflare-D1DatabaseObject") ],
  durableObjectStorage = (localDisk = "d1-disk"),
  bindings = [ (name = "MINIFLARE_BLOBS", service = "d1-disk") ],
);
`;
  fs.writeFileSync(cfgPath, text);
  return cfgPath;
}
