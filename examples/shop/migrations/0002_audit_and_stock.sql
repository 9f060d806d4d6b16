-- Issue 4: the hash-chained audit log and the stock the daily reconciliation checks.

-- One hash chain per shop (see crates/lookout-core/src/audit/): `prev_hash` is the shop's previous row's
-- `hash` (64 zeros for its first row); `hash` = sha256(prev_hash || "\n" || canonical JSON of
-- {build_version, content, id}). `content` holds the event as canonical JSON (ids, amounts,
-- labels; never customer text). Rows are only ever appended.
CREATE TABLE audit_events (
  id INTEGER PRIMARY KEY,
  shop TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  content TEXT NOT NULL,
  build_version TEXT NOT NULL,
  -- Forensic pivots, derived from the hashed content so they cannot disagree with it.
  action TEXT GENERATED ALWAYS AS (json_extract(content, '$.action')) VIRTUAL,
  context_customer_id INTEGER GENERATED ALWAYS AS (json_extract(content, '$.context_customer_id')) VIRTUAL
);
CREATE INDEX idx_audit_shop ON audit_events(shop, id);
-- Two rows with one predecessor would fork the chain: refused, the writer retries.
CREATE UNIQUE INDEX idx_audit_link ON audit_events(shop, prev_hash);
CREATE INDEX idx_audit_build ON audit_events(build_version);
CREATE INDEX idx_audit_customer ON audit_events(context_customer_id) WHERE context_customer_id IS NOT NULL;

CREATE TABLE products (
  id INTEGER PRIMARY KEY,
  shop TEXT NOT NULL,
  sku TEXT NOT NULL,
  name TEXT NOT NULL,
  stock_qty INTEGER NOT NULL,
  reorder_level INTEGER NOT NULL DEFAULT 0,
  UNIQUE (shop, sku)
);
CREATE INDEX idx_txn_created ON transactions(created_at);
