// The Worker's module entry: worker-build's output wrapped by lookout's entry.
import Base from "./build/index.js";
import { withLookout } from "../../crates/lookout/js/entry.mjs";
export * from "./build/index.js";
export default withLookout(Base);
