"""`scripts/forensics`: from a request id to its root cause, over the Logpush archive, with DuckDB.
Parses the command line, opens the store (store.py; compacting what is new in the archive
first), asks the question (queries.py) and prints the answer for a person, or as JSON (`--json`).
See forensics/README.md for the archive, the tables and the configuration.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import queries
from store import Store, StoreError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.join(ROOT, ".wrangler", "logpush")


def log(msg):
    print(f"[forensics] {msg}", file=sys.stderr)


def days(text):
    m = re.fullmatch(r"(\d+)d", text or "")
    if not m or int(m.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of days such as 7d")
    return int(m.group(1))


def fmt_ms(v):
    return "-" if v is None else f"{v:.1f} ms"


def fmt_ts(v):
    return "-" if v is None else str(v).replace("T", " ").replace("Z", "")[:23] + "Z"


def cell(v):
    if v is None:
        return "-"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def table(rows, cols, out):
    """A plain text table of `rows` (dicts) with `cols` [(key, header)]."""
    cells = [[h for _, h in cols]] + [[cell(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    for n, c in enumerate(cells):
        out.append("  " + "  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))


# ----------------------------------------------------------------------------------- printing

def print_why(r):
    out = []
    if not r["found"]:
        span = " to ".join(r["archive_dates"]) if r["archive_dates"] else "nothing compacted yet"
        return f"request {r['request_id']}: not in the archive ({span})"
    q = r["request"]
    out.append(f"request {r['request_id']}")
    out.append(f"  when       {fmt_ts(q['ts'])}  ({q['ms']} ms)")
    out.append(f"  shop       {r['shop'] or '(none: the host named no shop)'}")
    out.append(f"  route      {q['method']} {q['route']}  (path {q['path']})")
    out.append(f"  status     {q['status']}")
    if q["staff_id"] is not None:
        out.append(f"  staff      {q['staff_id']} ({q['staff_label']})")
    b = r["build"]
    first = f", first served {fmt_ts(b.get('first_served'))}" if b.get("first_served") else ""
    out.append(f"  build      {q['build_version']}{first}")
    if q["error_class"]:
        ctx = f"  context {q['error_context']}" if q["error_context"] else ""
        out.append(f"  error      {q['error_class']}: {q['error_msg']}{ctx}")
    else:
        out.append("  error      none")
    out.append("")
    calls = r["external_calls"]
    out.append(f"external calls ({len(calls)})" if calls else "external calls: none")
    for c in calls:
        ok = "failed" if c["status"] is None or c["status"] >= 400 else "ok"
        out.append(f"  {c['target']} {c['method']} {c['endpoint']} -> {c['status'] if c['status'] is not None else 'network error'} "
                   f"({ok}) in {fmt_ms(c['ms'])}, {c['retries']} retries"
                   + (f", cost {c['cost_micros']} micro-USD" if c.get("cost_micros") else ""))
        if c["error_body"]:
            out.append(f"    body (redacted): {c['error_body']}")
    out.append("")
    d1 = r["d1"]
    if d1["slowest"]:
        s = d1["slowest"]
        t = s["same_day_in_shop"] or {}
        out.append(f"D1: {d1['queries']} queries; slowest {fmt_ms(s['ms'])}")
        out.append(f"  {s['sql']}")
        if t.get("n"):
            out.append(f"  that signature in this shop that day: {plural(t['n'], 'request')}, p50 {fmt_ms(t['p50_ms'])}, p95 {fmt_ms(t['p95_ms'])}")
        if d1["n_plus_one"]:
            out.append(f"  N+1: {d1['n_plus_one']['count']} x {d1['n_plus_one']['signature']}")
    else:
        out.append(f"D1: {d1['queries'] or 0} queries")
    out.append("")
    a = r["alert"]
    if a["incident"]:
        i = a["incident"]
        how = "named in the alert" if i.get("named_in_alert") else "within the rule's window"
        out.append(f"alert fed: {i['rule']} ({how}), active from {fmt_ts(i['started'])}"
                   + (f", fired {fmt_ts(i['fired'])}" if i.get("fired") else ", never fired")
                   + (f", ended {fmt_ts(i['ended'])}" if i.get("ended") else ", not resolved in the archive"))
    elif a["rules"]:
        out.append(f"alert fed: none (counts toward {', '.join(a['rules'])}; no incident of those rules around it for this shop)")
    else:
        out.append("alert fed: none (the request counts toward no alert rule)")
    h = r["error_class_history"]
    if h:
        out.append("")
        out.append(f"error class {h['error_class']}")
        f = h["first_seen"]
        if f:
            mark = "  <- this request's build" if f["build_version"] == q["build_version"] else ""
            out.append(f"  first seen  {fmt_ts(f['first_ts'])} in build {f['build_version']} (shop {f['shop']}, {f['source']} {f['first_request_id']}){mark}")
        if h["window"]:
            out.append(f"  per build, {h['window'][0]} to {h['window'][1]}:")
            table(h["per_build"], [("build_version", "build"), ("n", "count"), ("requests", "requests"),
                                   ("per_1k_requests", "per 1k"), ("shops", "shops"), ("first_ts", "first"), ("last_ts", "last")], out)
        others = h["other_shops"]
        out.append(f"  other shops with it ({len(others)}): " + (", ".join(f"{o['shop']} ({o['n']})" for o in others[:12]) or "none")
                   + (" ..." if len(others) > 12 else ""))
        at = h["all_time"] or {}
        out.append(f"  all time: {plural(at.get('n') or 0, 'occurrence')} in {plural(at.get('shops') or 0, 'shop')}")
    return "\n".join(out)


def print_errors(r):
    out = []
    if not r["window"]:
        return "no errors: nothing compacted yet"
    out.append(f"error classes by build, {r['window'][0]} to {r['window'][1]}" + (f", shop {r['shop']}" if r["shop"] else ""))
    rows = [dict(x, new="first seen here" if x["first_seen_here"] else "") for x in r["rows"]]
    table(rows, [("error_class", "class"), ("source", "source"), ("build_version", "build"), ("n", "count"),
                 ("per_1k_requests", "per 1k"), ("shops", "shops"), ("first_seen", "first seen"), ("last_seen", "last seen"), ("new", "note")], out)
    return "\n".join(out)


def print_first_seen(r):
    if not r["found"]:
        return f"{r['error_class']}: never seen in the archive (classes seen: {', '.join(r['known_classes']) or 'none'})"
    f = r["first"]
    out = [f"{r['error_class']} first appears in build {f['build_version']}",
           f"  at {fmt_ts(f['first_ts'])}, shop {f['shop']}, {f['source']} {f['first_request_id']}", "",
           "  builds in the order they were first served:"]
    table(r["builds"], [("build_version", "build"), ("first_served", "first served"), ("requests", "requests"),
                        ("n", "count"), ("per_1k_requests", "per 1k"), ("shops_with", "shops with it"),
                        ("first_ts", "first"), ("last_ts", "last")], out)
    return "\n".join(out)


def print_customer_builds(r):
    out = [f"customer {r['customer_id']}: {plural(len(r['builds']), 'build')} over {plural(sum(b['rows'] for b in r['builds']), 'audit row')} "
           f"(of {r['audit_rows']} in the export)"]
    table(r["builds"], [("build_version", "build"), ("rows", "rows"), ("first_ts", "first"), ("last_ts", "last"),
                        ("shops", "shops"), ("actions", "actions")], out)
    return "\n".join(out)


def print_slow(r):
    if not r["window"]:
        return "nothing compacted yet"
    head = f"{r['window'][0]} to {r['window'][1]}" + (f", shop {r['shop']}" if r["shop"] else "")
    out = []
    if "route" in r:
        s = r["summary"]
        out.append(f"route {r['route']}, {head}: {plural(s['n'], 'request')}, p50 {fmt_ms(s['p50_ms'])}, p95 {fmt_ms(s['p95_ms'])}, "
                   f"p99 {fmt_ms(s['p99_ms'])}, max {fmt_ms(s['max_ms'])}, {s['errors']} errors")
        out.append("  slowest requests:")
        table(r["slowest_requests"], [("request_id", "request"), ("ts", "when"), ("shop", "shop"), ("status", "status"),
                                      ("ms", "ms"), ("d1_slowest_ms", "D1 ms"), ("error_class", "error"), ("build_version", "build")], out)
        out.append("  D1 signatures (slowest per request):")
        table(r["d1_signatures"], [("n", "n"), ("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max"), ("sql", "signature")], out)
        out.append("  by build:")
        table(r["by_build"], [("build_version", "build"), ("n", "n"), ("p50_ms", "p50"), ("p95_ms", "p95")], out)
    else:
        out.append(f"slowest routes, {head} (by p95):")
        table(r["routes"], [("method", "method"), ("route", "route"), ("n", "n"), ("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max")], out)
        out.append("")
        out.append("slowest D1 signatures (the slowest query of each request, by p95):")
        table(r["d1_signatures"], [("n", "n"), ("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max"),
                                   ("n_plus_one", "N+1"), ("sql", "signature")], out)
    return "\n".join(out)


# ----------------------------------------------------------------------------------- commands

def d1_local_export(state=None):
    """`wrangler d1 export` of the local dev database (scripts/dev's `.wrangler/state`)."""
    state = state or os.environ.get("LOOKOUT_STATE", os.path.join(ROOT, ".wrangler", "state"))
    out = tempfile.mkstemp(suffix=".sql")[1]
    work = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(work, ".wrangler"))
        os.symlink(os.path.abspath(state), os.path.join(work, ".wrangler", "state"))
        with open(os.path.join(ROOT, "wrangler.toml")) as f, open(os.path.join(work, "wrangler.toml"), "w") as g:
            g.write(f.read())
        env = dict(os.environ, CI="true", WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false")
        p = subprocess.run(["npx", "wrangler", "d1", "export", "DB", "--local", "--config", os.path.join(work, "wrangler.toml"),
                            "--table", "audit_events", "--output", out], cwd=ROOT, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise StoreError(f"wrangler d1 export failed:\n{p.stdout}\n{p.stderr}")
    finally:
        os.unlink(os.path.join(work, ".wrangler", "state"))
    return out


def main(argv=None):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `scripts/forensics errors | head` ends quietly
    p = argparse.ArgumentParser(prog="scripts/forensics", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Archive: --archive or LOOKOUT_ARCHIVE (a folder, or r2://bucket/prefix); "
                                       "default .wrangler/logpush (what scripts/dev writes). Store: --store or "
                                       "LOOKOUT_STORE, default <archive>/_parquet.")
    p.add_argument("--archive", default=os.environ.get("LOOKOUT_ARCHIVE", DEFAULT_ARCHIVE))
    p.add_argument("--store", default=os.environ.get("LOOKOUT_STORE"))
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-compact", action="store_true", help="query the store as it is (do not compact new archive objects first)")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("why", help="a request's line, calls, D1, alert, and its error class's history")
    w.add_argument("request_id")
    w.add_argument("--history", type=days, default=7, metavar="Nd", help="error class window (default 7d)")
    e = sub.add_parser("errors", help="error classes by build, with first/last seen")
    e.add_argument("--since", type=days, default=7, metavar="Nd")
    e.add_argument("--shop")
    f = sub.add_parser("first-seen", help="the build where an error class first appears")
    f.add_argument("error_class")
    c = sub.add_parser("customer-builds", help="the builds a customer's audit rows flowed through (a D1 export)")
    c.add_argument("customer_id", type=int)
    src = c.add_mutually_exclusive_group()
    src.add_argument("--d1-export", metavar="FILE", help="`wrangler d1 export` (.sql) or `wrangler d1 execute --json` (.json) output")
    src.add_argument("--d1-local", nargs="?", const="", metavar="STATE_DIR",
                     help="export the local dev database (default .wrangler/state) with wrangler d1 export")
    s = sub.add_parser("slow", help="the slowest route templates and D1 signatures")
    s.add_argument("--path", help="one route (a template such as /api/tickets/{id}/charge, or a raw path)")
    s.add_argument("--since", type=days, default=1, metavar="Nd")
    s.add_argument("--shop")
    s.add_argument("--limit", type=int, default=10)
    k = sub.add_parser("compact", help="compact new archive objects into the Parquet store")
    k.add_argument("--all", action="store_true", help="rebuild every date")
    q = sub.add_parser("sql", help="run a query over the tables (requests, external_calls, cron_runs, alerts, other_lines, "
                                   "error_rollup, build_rollup)")
    q.add_argument("query")
    a = p.parse_args(argv)

    try:
        if a.cmd == "customer-builds":
            import duckdb
            export = a.d1_export or d1_local_export(a.d1_local or None)
            r = queries.customer_builds(duckdb.connect(), export, a.customer_id)
            return emit(a, r, print_customer_builds)
        st = Store(a.archive, a.store)
        if a.cmd == "compact" or not a.no_compact:
            done = st.compact(everything=a.cmd == "compact" and a.all, log=log)
            if done["changed_folders"] or a.cmd == "compact":
                log(f"compacted {done['changed_folders']} date folders ({len(done['dates'])} dates) in {done['seconds']} s")
            if a.cmd == "compact":
                return emit(a, done, lambda d: json.dumps(d, indent=1, default=str))
        if a.cmd == "why":
            r = queries.why(st, a.request_id, a.history)
            code = emit(a, r, print_why)
            return code if r["found"] else 1
        if a.cmd == "errors":
            return emit(a, queries.errors(st, a.since, a.shop), print_errors)
        if a.cmd == "first-seen":
            r = queries.first_seen(st, a.error_class)
            code = emit(a, r, print_first_seen)
            return code if r["found"] else 1
        if a.cmd == "slow":
            return emit(a, queries.slow(st, a.since, a.path, a.shop, a.limit), print_slow)
        if a.cmd == "sql":
            for t in ("requests", "external_calls", "cron_runs", "alerts", "other_lines", "error_rollup", "build_rollup", "request_index"):
                st.con.execute(f"CREATE OR REPLACE TEMP VIEW {t} AS SELECT * FROM {st.relation(t)}")
            r = queries.rows(st.con, a.query)
            return emit(a, queries.jsonable(r), lambda rs: "\n".join(json.dumps(x, default=str) for x in rs))
    except StoreError as e:
        log(str(e))
        return 2
    return 0


def emit(a, r, printer):
    print(json.dumps(r, indent=1, default=str) if a.json else printer(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
