"""The forensic questions, as DuckDB SQL over the store's tables; each returns plain data
(dicts and lists, JSON-ready). Formatting for a person is cli.py's; reading the archive and the
Parquet files is store.py's. User input only ever reaches SQL as a bound parameter.
"""

import datetime as dt
import json
import os
import sqlite3
import tempfile

from store import route_of, sql_str

# The rule a request counts toward, with the window (s) during which it counts: the request
# "fed" an incident of that rule for its shop that was pending or firing within the window
# after the request. Defaults of the README's rule table; the cost projections look ahead a
# week (Twilio) or a month (AI).
RULE_WINDOWS_S = {
    "http_5xx_rate": 300,
    "request_p95": 600,
    "d1_p95": 600,
    "stripe_signature_failures": 3600,
    "twilio_cost_projection": 7 * 86400,
    "ai_cost_projection": 31 * 86400,
}
SLOW_MS = 200  # the p95 rules' default threshold


def rows(con, sql, params=()):
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def one(con, sql, params=()):
    r = rows(con, sql, params)
    return r[0] if r else None


def jsonable(v):
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def window_end(st):
    """The newest date in the archive: the "now" of `--since` (a live archive's is today)."""
    dates = st.dates()
    return dt.date.fromisoformat(dates[-1]) if dates else None


def since_dates(st, days):
    end = window_end(st)
    if end is None:
        return [], None, None
    start = end - dt.timedelta(days=days - 1)
    return [d for d in st.dates() if start.isoformat() <= d <= end.isoformat()], start, end


# ------------------------------------------------------------------------------------- why

def why(st, request_id, history_days=7):
    con = st.con
    hit = one(con, f"SELECT date, shop FROM {st.relation('request_index')} WHERE request_id = ? LIMIT 1", [request_id])
    if hit is None:
        dates = st.dates()
        return {"request_id": request_id, "found": False,
                "archive_dates": [dates[0], dates[-1]] if dates else []}
    date, shop = hit["date"].isoformat(), hit["shop"]
    shop_part = shop if shop is not None else "NULL"
    req = one(con, f"SELECT * EXCLUDE (date) FROM {st.relation('requests', [date], shop_part)} WHERE request_id = ? LIMIT 1",
              [request_id])
    calls = rows(con, f"SELECT target, method, endpoint, status, ms, retries, error_body, cost_micros, ts "
                      f"FROM {st.relation('external_calls', [date], shop_part)} WHERE request_id = ? ORDER BY ts, logged_at",
                 [request_id])
    out = {"request_id": request_id, "found": True, "date": date, "shop": shop, "request": req,
           "external_calls": calls, "d1": d1_context(st, req, date, shop_part)}
    out["alert"] = fed_alert(st, req, date, shop)
    out["build"] = build_context(st, req)
    out["error_class_history"] = class_history(st, req["error_class"], shop, history_days) if req["error_class"] else None
    return jsonable(out)


def d1_context(st, req, date, shop_part):
    if not req["d1_slowest_sql"]:
        return {"queries": req["d1_queries"], "slowest": None, "n_plus_one": None}
    typical = one(st.con, f"SELECT count(*) AS n, quantile_cont(d1_slowest_ms, 0.5) AS p50_ms, quantile_cont(d1_slowest_ms, 0.95) AS p95_ms "
                          f"FROM {st.relation('requests', [date], shop_part)} WHERE d1_slowest_sql = ?", [req["d1_slowest_sql"]])
    n1 = ({"signature": req["d1_n_plus_one_sql"], "count": req["d1_n_plus_one_count"]} if req["d1_n_plus_one_sql"] else None)
    return {"queries": req["d1_queries"], "slowest": {"sql": req["d1_slowest_sql"], "ms": req["d1_slowest_ms"],
            "same_day_in_shop": typical}, "n_plus_one": n1}


def rules_fed(req):
    """The rules this request counts toward."""
    out = []
    if (req["status"] or 0) >= 500:
        out.append("http_5xx_rate")
    if (req["ms"] or 0) > SLOW_MS:
        out.append("request_p95")
    if (req["d1_slowest_ms"] or 0) > SLOW_MS:
        out.append("d1_p95")
    if req["error_class"] == "StripeSignatureInvalid":
        out.append("stripe_signature_failures")
    if (req["cost_twilio_micros"] or 0) > 0:
        out.append("twilio_cost_projection")
    if (req["cost_claude_micros"] or 0) > 0:
        out.append("ai_cost_projection")
    return out


def fed_alert(st, req, date, shop):
    """The incident of the request's shop this request counted toward: one that names it
    (`recent_request_ids`), else one of a rule it feeds that was pending or firing within the
    rule's window after it."""
    rules = rules_fed(req)
    if shop is None or req["ts"] is None:
        return {"rules": rules, "incident": None}
    ts = req["ts"]
    horizon = max([RULE_WINDOWS_S[r] for r in rules] + [RULE_WINDOWS_S["http_5xx_rate"]])
    day = dt.date.fromisoformat(date)
    dates = [(day + dt.timedelta(days=k)).isoformat() for k in range(-1, 2 + horizon // 86400)]
    rel = st.relation("alerts", dates, shop)
    rule_list = "[" + ", ".join(sql_str(r) for r in rules) + "]" if rules else "[]::VARCHAR[]"
    windows = "MAP {" + ", ".join(f"{sql_str(r)}: {w}" for r, w in RULE_WINDOWS_S.items()) + "}"
    incidents = rows(st.con, f"""
      WITH a AS (
        SELECT *, coalesce(dedup_key, rule || ':' || coalesce(incident_seq::VARCHAR, '')) AS incident FROM {rel}
        WHERE kind IN ('alert_state_change', 'cron_alert') AND rule IS NOT NULL
      ), inc AS (
        SELECT rule, incident,
               min(ts) FILTER (WHERE state IN ('pending', 'firing')) AS started,
               min(ts) FILTER (WHERE state = 'firing') AS fired,
               max(ts) FILTER (WHERE state IN ('resolved', 'inactive')) AS ended,
               bool_or(list_contains(coalesce(recent_request_ids, []), ?)) AS names_it,
               list({{'ts': ts, 'state': state, 'value': value, 'summary': summary}} ORDER BY ts) AS changes
        FROM a GROUP BY ALL
      )
      SELECT * FROM inc
      WHERE names_it OR (list_contains({rule_list}, rule) AND started IS NOT NULL
             AND started <= ?::TIMESTAMP + to_seconds({windows}[rule])
             AND coalesce(ended, TIMESTAMP '9999-12-31') >= ?::TIMESTAMP)
      ORDER BY names_it DESC, started LIMIT 1""", [req["request_id"], ts, ts])
    inc = incidents[0] if incidents else None
    if inc:
        inc = {k: v for k, v in inc.items() if k != "names_it"} | {"named_in_alert": bool(incidents[0]["names_it"])}
    return {"rules": rules, "incident": inc}


def build_context(st, req):
    b = req["build_version"]
    first = one(st.con, f"SELECT min(first_ts) AS first_served, sum(requests) AS requests, count(DISTINCT shop) AS shops "
                        f"FROM {st.relation('build_rollup')} WHERE build_version = ?", [b])
    return {"build_version": b, **(first or {})}


def class_history(st, error_class, shop, days):
    con = st.con
    rel = st.relation("error_rollup")
    first = one(con, f"SELECT first_ts, build_version, shop, first_request_id, source FROM {rel} "
                     f"WHERE error_class = ? ORDER BY first_ts, shop, first_request_id LIMIT 1", [error_class])
    dates, start, end = since_dates(st, days)
    date_list = "[" + ", ".join(f"DATE {sql_str(d)}" for d in dates) + "]::DATE[]"
    per_build = rows(con, f"""
      WITH e AS (SELECT build_version, sum(n) AS n, count(DISTINCT shop) AS shops, min(first_ts) AS first_ts, max(last_ts) AS last_ts
                 FROM {rel} WHERE error_class = ? AND list_contains({date_list}, date) GROUP BY ALL),
           b AS (SELECT build_version, sum(requests) AS requests FROM {st.relation('build_rollup')}
                 WHERE list_contains({date_list}, date) GROUP BY ALL)
      SELECT e.*, b.requests, round(1000.0 * e.n / nullif(b.requests, 0), 3) AS per_1k_requests
      FROM e LEFT JOIN b USING (build_version) ORDER BY e.first_ts, e.build_version""", [error_class])
    others = rows(con, f"SELECT shop, sum(n) AS n, max(last_ts) AS last_ts FROM {rel} "
                       f"WHERE error_class = ? AND shop IS DISTINCT FROM ? AND list_contains({date_list}, date) "
                       f"GROUP BY shop ORDER BY n DESC, shop", [error_class, shop])
    total_shops = one(con, f"SELECT count(DISTINCT shop) AS shops, sum(n) AS n FROM {rel} WHERE error_class = ?", [error_class])
    return {"error_class": error_class, "first_seen": first,
            "window": [start.isoformat(), end.isoformat()] if start else None,
            "per_build": per_build, "other_shops": others, "all_time": total_shops}


# ------------------------------------------------------------------------------------- errors

def errors(st, days=7, shop=None):
    con = st.con
    dates, start, end = since_dates(st, days)
    date_list = "[" + ", ".join(f"DATE {sql_str(d)}" for d in dates) + "]::DATE[]"
    rel = st.relation("error_rollup")
    shop_filter = "AND shop = ?" if shop else ""
    params = [shop] if shop else []
    data = rows(con, f"""
      WITH firsts AS (SELECT error_class, arg_min(build_version, (first_ts, shop, first_request_id)) AS first_build, min(first_ts) AS class_first_ts
                      FROM {rel} GROUP BY ALL),
           w AS (SELECT error_class, build_version, source, sum(n) AS n, count(DISTINCT shop) AS shops,
                        min(first_ts) AS first_seen, max(last_ts) AS last_seen, min(status_min) AS status
                 FROM {rel} WHERE list_contains({date_list}, date) {shop_filter} GROUP BY ALL),
           b AS (SELECT build_version, sum(requests) AS requests FROM {st.relation('build_rollup')}
                 WHERE list_contains({date_list}, date) {shop_filter} GROUP BY ALL)
      SELECT w.*, b.requests, round(1000.0 * w.n / nullif(b.requests, 0), 3) AS per_1k_requests,
             firsts.first_build = w.build_version AS first_seen_here, firsts.first_build, firsts.class_first_ts
      FROM w JOIN firsts USING (error_class) LEFT JOIN b USING (build_version)
      ORDER BY sum(w.n) OVER (PARTITION BY w.error_class) DESC, w.error_class, w.first_seen, w.build_version, w.source""", params + params)
    return jsonable({"window": [start.isoformat(), end.isoformat()] if start else None, "shop": shop, "rows": data})


def first_seen(st, error_class):
    con = st.con
    rel = st.relation("error_rollup")
    first = one(con, f"SELECT first_ts, build_version, shop, first_request_id, source, date FROM {rel} "
                     f"WHERE error_class = ? ORDER BY first_ts, shop, first_request_id LIMIT 1", [error_class])
    if first is None:
        known = [r["error_class"] for r in rows(con, f"SELECT DISTINCT error_class FROM {rel} ORDER BY 1")]
        return jsonable({"error_class": error_class, "found": False, "known_classes": known})
    builds = rows(con, f"""
      WITH b AS (SELECT build_version, min(first_ts) AS first_served, max(last_ts) AS last_served, sum(requests) AS requests,
                        count(DISTINCT shop) AS shops FROM {st.relation('build_rollup')} GROUP BY ALL),
           e AS (SELECT build_version, sum(n) AS n, min(first_ts) AS first_ts, max(last_ts) AS last_ts, count(DISTINCT shop) AS shops_with
                 FROM {rel} WHERE error_class = ? GROUP BY ALL)
      SELECT coalesce(b.build_version, e.build_version) AS build_version, b.first_served, b.last_served, b.requests, b.shops,
             coalesce(e.n, 0) AS n, e.first_ts, e.last_ts, coalesce(e.shops_with, 0) AS shops_with,
             round(1000.0 * coalesce(e.n, 0) / nullif(b.requests, 0), 3) AS per_1k_requests
      FROM b FULL JOIN e USING (build_version) ORDER BY coalesce(b.first_served, e.first_ts), build_version""", [error_class])
    return jsonable({"error_class": error_class, "found": True, "first": first, "builds": builds})


# ------------------------------------------------------------------------------------- slow

def slow(st, days=1, path=None, shop=None, limit=10):
    con = st.con
    dates, start, end = since_dates(st, days)
    rel = st.relation("requests", dates, shop)
    out = {"window": [start.isoformat(), end.isoformat()] if start else None, "shop": shop}
    if path:
        route = route_of(path)
        out["route"] = route
        out["summary"] = one(con, f"SELECT count(*) AS n, quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.95) AS p95_ms, "
                                  f"quantile_cont(ms, 0.99) AS p99_ms, max(ms) AS max_ms, count(error_class) AS errors "
                                  f"FROM {rel} WHERE route = ?", [route])
        out["slowest_requests"] = rows(con, f"SELECT request_id, ts, shop, method, status, ms, d1_queries, d1_slowest_ms, error_class, build_version "
                                            f"FROM {rel} WHERE route = ? ORDER BY ms DESC LIMIT {int(limit)}", [route])
        out["d1_signatures"] = rows(con, f"SELECT d1_slowest_sql AS sql, count(*) AS n, quantile_cont(d1_slowest_ms, 0.5) AS p50_ms, "
                                         f"quantile_cont(d1_slowest_ms, 0.95) AS p95_ms, max(d1_slowest_ms) AS max_ms "
                                         f"FROM {rel} WHERE route = ? AND d1_slowest_sql IS NOT NULL GROUP BY 1 ORDER BY p95_ms DESC LIMIT {int(limit)}", [route])
        out["by_build"] = rows(con, f"SELECT build_version, count(*) AS n, quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.95) AS p95_ms "
                                    f"FROM {rel} WHERE route = ? GROUP BY 1 ORDER BY min(ts)", [route])
    else:
        out["routes"] = rows(con, f"SELECT route, method, count(*) AS n, quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.95) AS p95_ms, "
                                  f"max(ms) AS max_ms FROM {rel} GROUP BY 1, 2 ORDER BY p95_ms DESC LIMIT {int(limit)}")
        out["d1_signatures"] = rows(con, f"SELECT d1_slowest_sql AS sql, count(*) AS n, quantile_cont(d1_slowest_ms, 0.5) AS p50_ms, "
                                         f"quantile_cont(d1_slowest_ms, 0.95) AS p95_ms, max(d1_slowest_ms) AS max_ms, "
                                         f"count(d1_n_plus_one_sql) AS n_plus_one FROM {rel} WHERE d1_slowest_sql IS NOT NULL "
                                         f"GROUP BY 1 ORDER BY p95_ms DESC LIMIT {int(limit)}")
    return jsonable(out)


# ------------------------------------------------------------------------------------- customer-builds

def load_audit_export(con, path):
    """The `audit_events` rows of a D1 export into a DuckDB temp table `audit`: a `.sql` file
    (`wrangler d1 export`) is loaded into an in-memory SQLite first (it is SQLite's SQL); a
    `.json` file is `wrangler d1 execute --json` output (`[{"results": [...]}]`)."""
    fd, tmp = tempfile.mkstemp(suffix=".ndjson")
    try:
        with os.fdopen(fd, "w") as out:
            if path.endswith(".json"):
                with open(path) as f:
                    doc = json.load(f)
                for block in doc if isinstance(doc, list) else [doc]:
                    for r in block.get("results", []):
                        out.write(json.dumps({k: r.get(k) for k in ("id", "shop", "content", "build_version")}) + "\n")
            else:
                db = sqlite3.connect(":memory:")
                with open(path) as f:
                    db.executescript(f.read())
                for r in db.execute("SELECT id, shop, content, build_version FROM audit_events"):
                    out.write(json.dumps(dict(zip(("id", "shop", "content", "build_version"), r))) + "\n")
        con.execute(f"CREATE OR REPLACE TEMP TABLE audit AS SELECT * FROM read_json({sql_str(tmp)}, format='newline_delimited', "
                    f"columns={{id: 'BIGINT', shop: 'VARCHAR', content: 'VARCHAR', build_version: 'VARCHAR'}})")
    finally:
        os.remove(tmp)
    return con.execute("SELECT count(*) FROM audit").fetchone()[0]


def customer_builds(con, export_path, customer_id):
    """SELECT DISTINCT build_version FROM audit_events WHERE context_customer_id = ?, with when,
    where and what: the builds this customer's records flowed through."""
    total = load_audit_export(con, export_path)
    builds = rows(con, """
      SELECT build_version, count(*) AS rows, min(content->>'ts') AS first_ts, max(content->>'ts') AS last_ts,
             list(DISTINCT shop ORDER BY shop) AS shops, list(DISTINCT content->>'action' ORDER BY content->>'action') AS actions,
             min(id) AS first_id, max(id) AS last_id
      FROM audit WHERE TRY_CAST(content->>'context_customer_id' AS BIGINT) = ?
      GROUP BY build_version ORDER BY min(id)""", [customer_id])
    return jsonable({"customer_id": customer_id, "export": export_path, "audit_rows": total, "builds": builds})
