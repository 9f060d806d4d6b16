// The sample shop app's module entry: worker-build's output wrapped by lookout's entry, which
// answers 500 with the request id when a panic kills the wasm instance. The bench baseline
// (LOOKOUT_INSTRUMENT=off) bypasses it.
import Base from "./build/index.js";
import { withLookout } from "../../crates/lookout/js/entry.mjs";
export * from "./build/index.js";
export default withLookout(Base, { bypass: (env) => env.LOOKOUT_INSTRUMENT === "off" });
