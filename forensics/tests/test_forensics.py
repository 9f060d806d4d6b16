"""Tests of the forensics tools on small archives: the Logpush writer (grouping, object layout,
stream mode), compaction (typed tables, incremental runs, objects straddling midnight, bad
input kept apart), the questions (why, errors, first-seen over two builds, slow,
customer-builds from both D1 export formats), the same answers from an S3 API (moto standing in
for R2), and the generator's model. Run by scripts/test:
`python -m unittest discover -s forensics/tests` in the forensics test venv.
"""

import datetime as dt
import gzip
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FORENSICS = os.path.dirname(HERE)
ROOT = os.path.dirname(FORENSICS)
sys.path.insert(0, FORENSICS)

import logpush  # noqa: E402
import queries  # noqa: E402
from store import Store  # noqa: E402

A, B = "0.4.10+aaaaaaa", "0.4.11+bbbbbbb"
DATASET_FIELDS = {"CPUTimeMs", "DispatchNamespace", "Entrypoint", "Event", "EventTimestampMs", "EventType", "Exceptions",
                  "Logs", "Outcome", "ScriptName", "ScriptTags", "ScriptVersion", "WallTimeMs"}
DECLINE = '{"error":{"type":"card_error","message":"Your card [redacted] was declined for [redacted]","decline_code":"insufficient_funds"}}'


def ts(day, h, m=0, s=0, ms=0):
    return f"2026-05-{day:02d}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"


def req(rid, shop, at, build, status=200, error_class=None, path="/api/tickets/2506", method="GET", ms=20.0,
        d1=("SELECT id FROM tickets WHERE id = ? AND shop = ?", 3.0), cost=(0, 0), msg=None, ctx=None):
    return json.dumps({
        "ts": at, "request_id": rid, "shop": shop, "staff_id": 3, "staff_label": "Robbie", "path": path,
        "method": method, "status": status, "ms": ms, "d1_queries": 2 if d1 else 0,
        "d1_slowest": {"sql": d1[0], "ms": d1[1]} if d1 else None, "d1_n_plus_one": None, "r2_ops": 0,
        "external_calls": ["stripe:0", "twilio:0", "claude:0", "gbp:0"], "cost_micros": {"twilio": cost[0], "claude": cost[1]},
        "error_class": error_class, "error_msg": msg or (error_class and "a fixed message"), "error_context": ctx,
        "build_version": build}, separators=(",", ":"))


def call(rid, at, status=402, body=DECLINE, target="stripe", retries=0):
    return json.dumps({"ts": at, "kind": "external_call", "request_id": rid, "target": target, "method": "POST",
                       "endpoint": "/v1/payment_intents", "status": status, "ms": 84.0, "retries": retries,
                       "error_body": body if status >= 400 else None, "cost_micros": None}, separators=(",", ":"))


def change(shop, at_ms, rule, frm, to, seq=1, value=0.3):
    return json.dumps({"change": {"at_ms": at_ms, "from": frm, "incident_seq": seq, "rule": rule, "to": to, "value": value},
                       "kind": "alert_state_change", "shop": shop})


def cron(shop, at, build, errors=()):
    return json.dumps({"ts": at, "cron": "daily_reconciliation", "run_id": "cron_d_" + at[:10].replace("-", "_"), "shop": shop,
                       "ms": 840, "results": {"sales_reconciled": 4}, "errors": list(errors), "d1_queries": 3,
                       "d1_slowest": {"sql": "SELECT id FROM audit_events WHERE shop = ?", "ms": 41.0}, "build_version": build})


def ms_of(at):
    return logpush.parse_ts_ms(at)


def write_archive(folder, lines):
    """Lines (with their print times) through the writer into one object; returns its path."""
    g, w = logpush.EventGrouper(), logpush.ArchiveWriter(folder)
    for text, at in lines:
        w.add(g.feed(text, at))
    w.add(g.close())
    return w.flush()


def two_builds():
    """Three days, two shops; build A, then B from day 2 noon (swicked) and day 3 (demo).
    TicketLockTimeout appears in B only; NotFound in both; one failed charge on day 1 fed an
    http_5xx_rate incident."""
    out = []
    n = 0

    def add(text, at, after_ms=5):
        out.append((text, ms_of(at) + after_ms))

    for day in (1, 2, 3):
        for shop in ("swicked", "demo"):
            for i in range(10):
                n += 1
                at = ts(day, 9 + i)
                build = B if (day == 3 or (day == 2 and shop == "swicked" and 9 + i >= 12)) else A
                err = "NotFound" if i == 0 else None
                add(req(f"req_{n:012d}", shop, at, build, 404 if err else 200, err), at)
    add(call("req_fail00000001", ts(1, 20, 0, 0, 50)), ts(1, 20, 0, 0, 50))
    add(req("req_fail00000001", "swicked", ts(1, 20), A, 502, "UpstreamError", "/api/tickets/2507/charge", "POST", 91.0,
            ctx={"service": "stripe", "status": 402}), ts(1, 20), after_ms=91)
    t = ms_of(ts(1, 20))
    add(change("swicked", t + 60_000, "http_5xx_rate", "inactive", "pending"), ts(1, 20, 1))
    add(change("swicked", t + 180_000, "http_5xx_rate", "pending", "firing"), ts(1, 20, 3))
    add(change("swicked", t + 600_000, "http_5xx_rate", "firing", "resolved", value=0.0), ts(1, 20, 10))
    for k, (day, h, shop) in enumerate([(2, 13, "swicked"), (2, 15, "swicked"), (3, 10, "demo")]):
        add(req(f"req_lock{k:08d}", shop, ts(day, h, 30), B, 503, "TicketLockTimeout", "/api/tickets/2506/lines", "POST", 250.0),
            ts(day, h, 30))
    add(cron("swicked", ts(2, 7), A, [{"class": "D1Error", "message": "D1_ERROR: [redacted]"}]), ts(2, 7))
    add(cron("demo", ts(2, 7), A), ts(2, 7))
    out.sort(key=lambda x: x[1])
    return out


class WriterTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_one_event_per_invocation_with_the_lines_in_logs(self):
        g = logpush.EventGrouper()
        t = ms_of(ts(1, 12))
        events = []
        events += g.feed(call("req_a00000000001", ts(1, 12)), t)
        events += g.feed(req("req_b00000000001", "demo", ts(1, 12), A), t + 1)
        self.assertEqual(len(events), 1, "a request line ends its invocation")
        events += g.feed(req("req_a00000000001", "swicked", ts(1, 12), A, 502, "UpstreamError"), t + 2)
        events += g.feed(cron("swicked", ts(1, 7), A), t + 3)
        events += g.feed(cron("demo", ts(1, 7), A), t + 4)
        events += g.feed("[wrangler:info] GET /__scheduled?cron=0+7+*+*+* 200 OK (12ms)", t + 5)
        events += g.feed(change("swicked", t, "http_5xx_rate", "inactive", "pending"), t + 6)
        events += g.feed("[wrangler:info] Ready on http://127.0.0.1:8787", t + 7)
        events += g.close()
        self.assertEqual([e["EventType"] for e in events], ["fetch", "fetch", "scheduled", "alarm"])
        a = events[1]
        self.assertEqual([json.loads(x["Message"][0]).get("kind") for x in a["Logs"]], ["external_call", None])
        self.assertEqual(a["EventTimestampMs"], ms_of(ts(1, 12)))
        self.assertEqual(a["Event"]["Request"], {"URL": "http://localhost/api/tickets/2506", "Method": "GET"})
        self.assertEqual(a["Event"]["Response"], {"Status": 502})
        self.assertEqual(events[2]["Event"], {"Cron": "0 7 * * *"})
        self.assertEqual(len(events[2]["Logs"]), 2)
        for e in events:
            self.assertEqual(set(e), DATASET_FIELDS)
            for entry in e["Logs"]:
                self.assertEqual(set(entry), {"Level", "Message", "TimestampMs"})
                self.assertEqual(entry["Level"], "log")
                self.assertEqual(len(entry["Message"]), 1)

    def test_a_request_whose_line_never_came_is_written_after_a_while(self):
        g = logpush.EventGrouper()
        t = ms_of(ts(1, 12))
        self.assertEqual(g.feed(call("req_a00000000001", ts(1, 12)), t), [])
        self.assertEqual(g.tick(t + 1000), [])
        late = g.tick(t + logpush.STALE_MS + 1)
        self.assertEqual(len(late), 1)
        self.assertEqual(len(late[0]["Logs"]), 1)

    def test_objects_are_gzip_ndjson_under_a_date_prefix_named_as_logpush_names_them(self):
        path = write_archive(self.dir, two_builds())
        rel = os.path.relpath(path, self.dir)
        self.assertRegex(rel, r"^20260501/20260501T\d{6}Z_20260503T\d{6}Z_[0-9a-f]{8}\.log\.gz$")
        with gzip.open(path, "rt") as f:
            events = [json.loads(line) for line in f]
        self.assertEqual(sum(len(e["Logs"]) for e in events), len(two_builds()))
        self.assertEqual([f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")], [])

    def test_stream_mode_echoes_everything_and_writes_at_its_end(self):
        lines = [req("req_s00000000001", "demo", ts(1, 1), A), "[wrangler:info] GET /health 200 OK (3ms)",
                 call("req_s00000000002", ts(1, 1)), req("req_s00000000002", "demo", ts(1, 1), A, 502, "UpstreamError")]
        text = "\n".join(lines) + "\n"
        p = subprocess.run([sys.executable, os.path.join(FORENSICS, "logpush.py"), "--out", self.dir, "--flush-s", "60"],
                           input=text.encode(), capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), text, "every line echoed unchanged")
        objects = [os.path.join(r, f) for r, _, fs in os.walk(self.dir) for f in fs]
        self.assertEqual(len(objects), 1)
        with gzip.open(objects[0], "rt") as f:
            events = [json.loads(x) for x in f]
        self.assertEqual([len(e["Logs"]) for e in events], [1, 2])


class StoreCase(unittest.TestCase):
    """A two-build archive, compacted once per class."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.archive = os.path.join(cls.dir, "archive")
        write_archive(cls.archive, two_builds())
        cls.st = Store(cls.archive)
        cls.done = cls.st.compact()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)


class CompactionTest(StoreCase):
    def test_one_row_per_line_in_typed_tables(self):
        self.assertEqual(self.done["dates"], ["2026-05-01", "2026-05-02", "2026-05-03"])
        self.assertEqual(self.done["lines"], {"request": 64, "external_call": 1, "alert": 3, "cron_run": 2})
        con, st = self.st.con, self.st
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {st.relation('requests')})").fetchall())
        self.assertEqual((types["ts"], types["status"], types["ms"], types["date"], types["external_calls"]),
                         ("TIMESTAMP", "INTEGER", "DOUBLE", "DATE", "VARCHAR[]"))
        self.assertEqual(con.execute(f"SELECT count(*), count(DISTINCT request_id) FROM {st.relation('requests')}").fetchone(), (64, 64))
        c = queries.one(con, f"SELECT * FROM {st.relation('external_calls')}")
        self.assertEqual((c["shop"], c["status"], c["build_version"], c["date"]), ("swicked", 402, A, dt.date(2026, 5, 1)))
        r = queries.one(con, f"SELECT * FROM {st.relation('cron_runs')} WHERE shop = 'swicked'")
        self.assertEqual((r["errors_count"], r["error_classes"]), (1, ["D1Error"]))
        a = queries.rows(con, f"SELECT state, from_state, rule FROM {st.relation('alerts')} ORDER BY ts")
        self.assertEqual([x["state"] for x in a], ["pending", "firing", "resolved"])
        # Partitioned by date and shop.
        files = sorted(os.path.relpath(os.path.join(r, f), st.store) for r, _, fs in os.walk(os.path.join(st.store, "requests")) for f in fs)
        self.assertTrue(all(re.match(r"requests/date=2026-05-0[123]/shop=(swicked|demo)/r\w+_\d+\.parquet$", f) for f in files), files)
        self.assertEqual(len(files), 6)

    def test_nothing_new_compacts_nothing(self):
        self.assertEqual(self.st.compact()["changed_folders"], 0)


class QuestionsTest(StoreCase):
    def test_first_seen_finds_the_build_where_a_class_first_appears(self):
        r = queries.first_seen(self.st, "TicketLockTimeout")
        self.assertEqual((r["first"]["build_version"], r["first"]["shop"], r["first"]["first_request_id"]),
                         (B, "swicked", "req_lock00000000"))
        by = {b["build_version"]: b for b in r["builds"]}
        self.assertEqual([b["build_version"] for b in r["builds"]], [A, B], "builds in the order first served")
        self.assertEqual((by[A]["n"], by[B]["n"]), (0, 3))
        self.assertGreater(by[A]["requests"], 0, "A served requests and never had it")
        self.assertEqual(queries.first_seen(self.st, "NotFound")["first"]["build_version"], A)
        self.assertFalse(queries.first_seen(self.st, "NoSuchClass")["found"])

    def test_errors_by_build_mark_where_each_class_first_appeared(self):
        r = queries.errors(self.st, 7)
        self.assertEqual(r["window"], ["2026-04-27", "2026-05-03"])
        got = {(x["error_class"], x["build_version"]): x for x in r["rows"]}
        self.assertEqual(got[("TicketLockTimeout", B)]["n"], 3)
        self.assertTrue(got[("TicketLockTimeout", B)]["first_seen_here"])
        self.assertNotIn(("TicketLockTimeout", A), got)
        self.assertTrue(got[("NotFound", A)]["first_seen_here"])
        self.assertFalse(got[("NotFound", B)]["first_seen_here"])
        self.assertEqual(got[("D1Error", A)]["source"], "cron")
        self.assertEqual(got[("NotFound", A)]["n"] + got[("NotFound", B)]["n"], 6)
        last_day = queries.errors(self.st, 1)
        self.assertEqual({x["build_version"] for x in last_day["rows"]}, {B})
        demo = queries.errors(self.st, 7, "demo")
        self.assertEqual(sum(x["n"] for x in demo["rows"] if x["error_class"] == "TicketLockTimeout"), 1)

    def test_why_gives_the_line_calls_d1_alert_and_class_history(self):
        r = queries.why(self.st, "req_fail00000001")
        self.assertTrue(r["found"])
        q = r["request"]
        self.assertEqual((q["error_class"], q["status"], q["route"], q["build_version"]),
                         ("UpstreamError", 502, "/api/tickets/{id}/charge", A))
        self.assertEqual([(c["target"], c["status"], c["retries"]) for c in r["external_calls"]], [("stripe", 402, 0)])
        self.assertIn("insufficient_funds", r["external_calls"][0]["error_body"])
        self.assertEqual(r["d1"]["slowest"]["sql"], "SELECT id FROM tickets WHERE id = ? AND shop = ?")
        inc = r["alert"]["incident"]
        self.assertEqual((inc["rule"], inc["started"], inc["fired"]),
                         ("http_5xx_rate", "2026-05-01T20:01:00.000Z", "2026-05-01T20:03:00.000Z"))
        h = r["error_class_history"]
        self.assertEqual(h["first_seen"]["build_version"], A)
        self.assertEqual([(b["build_version"], b["n"]) for b in h["per_build"]], [(A, 1)])
        self.assertEqual(h["other_shops"], [])

    def test_a_request_that_feeds_no_incident_says_so(self):
        r = queries.why(self.st, "req_lock00000002")
        self.assertEqual(r["alert"]["rules"], ["http_5xx_rate", "request_p95"])
        self.assertIsNone(r["alert"]["incident"])
        self.assertEqual([o["shop"] for o in r["error_class_history"]["other_shops"]], ["swicked"])

    def test_an_unknown_request_is_not_found(self):
        self.assertFalse(queries.why(self.st, "req_nope")["found"])

    def test_slow_takes_a_route_template_or_a_raw_path(self):
        a = queries.slow(self.st, 7, "/api/tickets/{id}/lines")
        b = queries.slow(self.st, 7, "/api/tickets/2506/lines")
        self.assertEqual(a["route"], "/api/tickets/{id}/lines")
        self.assertEqual(a["summary"], b["summary"])
        self.assertEqual(a["summary"]["n"], 3)
        top = queries.slow(self.st, 7)
        self.assertEqual(top["routes"][0]["route"], "/api/tickets/{id}/lines")

    def test_the_cli_prints_for_a_person_and_as_json(self):
        cli = [sys.executable, os.path.join(FORENSICS, "cli.py"), "--archive", self.archive]
        p = subprocess.run(cli + ["why", "req_fail00000001"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        for want in ("UpstreamError", "stripe POST /v1/payment_intents -> 402", "insufficient_funds", A, "http_5xx_rate"):
            self.assertIn(want, p.stdout)
        p = subprocess.run(cli + ["--json", "first-seen", "TicketLockTimeout"], capture_output=True, text=True)
        self.assertEqual(json.loads(p.stdout)["first"]["build_version"], B)
        p = subprocess.run(cli + ["first-seen", "Nope"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("never seen", p.stdout)
        p = subprocess.run(cli + ["sql", "SELECT count(*) AS n FROM requests WHERE build_version = '" + B + "'"], capture_output=True, text=True)
        self.assertEqual(json.loads(p.stdout), {"n": 7 + 20 + 3})


class IncrementalTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.archive = os.path.join(self.dir, "archive")
        write_archive(self.archive, two_builds())
        Store(self.archive).compact()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_new_objects_are_compacted_once_even_across_midnight(self):
        # A batch under day 2's prefix with a request of day 1 (it straddles midnight), and day 4.
        path = write_archive(os.path.join(self.dir, "tmp"), [
            (req("req_late00000001", "demo", ts(1, 23, 59, 59, 900), A), ms_of(ts(1, 23, 59, 59, 900))),
            (req("req_late00000002", "demo", ts(2, 0, 0, 1), A), ms_of(ts(2, 0, 0, 1)))])
        os.makedirs(os.path.join(self.archive, "20260502"))
        os.replace(path, os.path.join(self.archive, "20260502", os.path.basename(path)))
        write_archive(self.archive, [(req("req_day400000001", "demo", ts(4, 9), B, 404, "NotFound"), ms_of(ts(4, 9)))])
        st = Store(self.archive)
        done = st.compact()
        self.assertEqual(done["dates"], ["2026-05-01", "2026-05-02", "2026-05-04"], "day 3 is untouched")
        self.assertEqual(st.con.execute(f"SELECT count(*), count(DISTINCT request_id) FROM {st.relation('requests')}").fetchone(), (67, 67))
        self.assertEqual(queries.why(st, "req_late00000001")["date"], "2026-05-01")
        self.assertEqual(queries.errors(st, 1)["rows"][0]["error_class"], "NotFound")
        current = st.manifest()["dates"]
        for root, _, files in os.walk(st.store):
            d = re.search(r"date=([0-9-]+)", root)
            for f in files:
                if d:
                    self.assertTrue(f.startswith(current[d.group(1)] + "_"), f"{root}/{f}: superseded files are deleted")
        self.assertEqual(Store(self.archive).compact()["changed_folders"], 0)

    def test_bad_input_is_kept_apart_and_good_lines_beside_it_kept(self):
        folder = os.path.join(self.archive, "20260504")
        os.makedirs(folder)
        good = logpush.trace_event("fetch", {}, ms_of(ts(4, 8)), [
            logpush.log_entry("panicked at src/app.rs:12", ms_of(ts(4, 8))),
            logpush.log_entry('{"ts":"' + ts(4, 8) + '","request_id":"req_bad000000001","shop":"demo","path":"/x","status":"abc"}', ms_of(ts(4, 8))),
            logpush.log_entry(req("req_good00000001", "demo", ts(4, 8), B), ms_of(ts(4, 8))),
        ], "lookout")
        with gzip.open(os.path.join(folder, "20260504T080000Z_20260504T080000Z_0badf00d.log.gz"), "wt") as f:
            f.write("this is not json\n" + json.dumps(good) + "\n")
        st = Store(self.archive)
        st.compact()
        self.assertTrue(queries.why(st, "req_good00000001")["found"])
        # The line with a mistyped status is a request with no status, and its text is kept.
        bad = queries.why(st, "req_bad000000001")
        self.assertEqual((bad["found"], bad["request"]["status"]), (True, None))
        kept = queries.rows(st.con, f"SELECT also_in, text FROM {st.relation('other_lines', ['2026-05-04'])} ORDER BY also_in")
        self.assertEqual([k["also_in"] for k in kept], ["other", "request"])
        self.assertEqual(kept[0]["text"], "panicked at src/app.rs:12")
        self.assertIn('"status":"abc"', kept[1]["text"])


class ChunkedTest(unittest.TestCase):
    def test_compacting_in_many_small_chunks_gives_the_same_answers(self):
        d = tempfile.mkdtemp()
        try:
            lines = two_builds()
            # One object per day (a day's batch may hold the next day's first events).
            for day in (1, 2, 3):
                write_archive(os.path.join(d, "a"), [x for x in lines if logpush.stamp(x[1]).startswith(f"202605{day:02d}")])
            whole = Store(os.path.join(d, "a"), os.path.join(d, "whole"))
            whole.compact()
            os.environ["LOOKOUT_COMPACT_CHUNK_MB"] = "0.000001"
            try:
                chunked = Store(os.path.join(d, "a"), os.path.join(d, "chunked"))
                done = chunked.compact()
            finally:
                del os.environ["LOOKOUT_COMPACT_CHUNK_MB"]
            self.assertEqual(done["chunks"], 3)
            for q in (lambda s: queries.why(s, "req_fail00000001"), lambda s: queries.errors(s, 7),
                      lambda s: queries.first_seen(s, "TicketLockTimeout"), lambda s: queries.first_seen(s, "NotFound")):
                self.assertEqual(q(chunked), q(whole))
        finally:
            shutil.rmtree(d)


class CustomerBuildsTest(unittest.TestCase):
    """Both export formats (the e2e test runs a real `wrangler d1 export`)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        db = sqlite3.connect(":memory:")
        migrations = os.path.join(ROOT, "examples/shop/migrations")
        for f in sorted(os.listdir(migrations)) + ["../seed.sql"]:
            with open(os.path.join(migrations, f)) as sql:
                db.executescript(sql.read())
        self.sql = os.path.join(self.dir, "audit.sql")
        with open(self.sql, "w") as f:
            f.write("\n".join(db.iterdump()))
        self.json = os.path.join(self.dir, "audit.json")
        cols = ("id", "shop", "content", "build_version")
        rows = [dict(zip(cols, r)) for r in db.execute("SELECT id, shop, content, build_version FROM audit_events")]
        with open(self.json, "w") as f:
            json.dump([{"results": rows, "success": True, "meta": {}}], f)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_the_builds_of_a_customers_audit_rows(self):
        import duckdb
        for path in (self.sql, self.json):
            r = queries.customer_builds(duckdb.connect(), path, 1)
            self.assertEqual([(b["build_version"], b["rows"]) for b in r["builds"]], [("0.0.9+seed", 4), ("0.1.0+seed", 1)], path)
            self.assertEqual(r["builds"][0]["shops"], ["demo", "swicked"])
            self.assertNotIn("Marguerite", json.dumps(r))
        self.assertEqual(queries.customer_builds(duckdb.connect(), self.json, 999)["builds"], [])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")


@unittest.skipUnless(os.path.exists(MOTO), "moto_server is in the forensics test venv (scripts/test installs it)")
class S3Test(unittest.TestCase):
    """The same questions over an R2-style bucket (a local moto S3 server), through DuckDB's httpfs."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.port = free_port()
        self.moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.port}/lookout-logs", method="PUT"))
        self.env = dict(os.environ, LOOKOUT_S3_ENDPOINT=f"http://127.0.0.1:{self.port}", LOOKOUT_S3_ACCESS_KEY_ID="test",
                        LOOKOUT_S3_SECRET_ACCESS_KEY="test", LOOKOUT_S3_REGION="us-east-1")

    def tearDown(self):
        self.moto.terminate()
        self.moto.wait(10)
        shutil.rmtree(self.dir)

    def test_the_same_answers_from_the_bucket(self):
        local = os.path.join(self.dir, "archive")
        path = write_archive(local, two_builds())
        key = "workers/" + os.path.relpath(path, local)
        import boto3  # comes with moto
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
        s3.upload_file(path, "lookout-logs", key)
        remote = Store("r2://lookout-logs/workers", env=self.env)
        done = remote.compact()
        self.assertEqual(done["dates"], ["2026-05-01", "2026-05-02", "2026-05-03"])
        st = Store(local)
        st.compact()
        for q in (lambda s: queries.why(s, "req_fail00000001"), lambda s: queries.errors(s, 7),
                  lambda s: queries.first_seen(s, "TicketLockTimeout"), lambda s: queries.slow(s, 7)):
            self.assertEqual(q(remote), q(st))
        # Written back to the bucket, and read by a fresh process.
        cli = [sys.executable, os.path.join(FORENSICS, "cli.py"), "--archive", "r2://lookout-logs/workers", "--json"]
        p = subprocess.run(cli + ["first-seen", "TicketLockTimeout"], capture_output=True, text=True, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["first"]["build_version"], B)

    def test_missing_credentials_are_named(self):
        from store import StoreError
        with self.assertRaises(StoreError) as e:
            Store("r2://lookout-logs/workers", env={})
        self.assertIn("LOOKOUT_S3_ACCESS_KEY_ID", str(e.exception))


class GeneratorTest(unittest.TestCase):
    def test_the_bench_model_introduces_and_fixes_classes_in_the_stated_builds(self):
        import generate
        d = tempfile.mkdtemp()
        try:
            r = generate.generate(os.path.join(d, "a"), shops=2, days=10, per_day=400, start=dt.date(2026, 4, 1),
                                  log=lambda *_: None, build_days=1, hours=24)
            self.assertEqual(r["requests"], 2 * 10 * 400)
            names = [f for _, _, fs in os.walk(os.path.join(d, "a")) for f in fs]
            self.assertTrue(all(re.fullmatch(r"\d{8}T\d{6}Z_\d{8}T\d{6}Z_[0-9a-f]{8}\.log\.gz", n) for n in names), names[:3])
            st = Store(os.path.join(d, "a"))
            st.compact()
            # TicketLockTimeout never appears before its build, though earlier builds served traffic.
            new = queries.first_seen(st, "TicketLockTimeout")
            self.assertGreaterEqual(generate.BUILDS.index(new["first"]["build_version"]), generate.NEW_CLASS_BUILD)
            before = [b for b in new["builds"] if generate.BUILDS.index(b["build_version"]) < generate.NEW_CLASS_BUILD]
            self.assertEqual(len(before), generate.NEW_CLASS_BUILD)
            self.assertTrue(all(b["n"] == 0 and b["requests"] > 0 for b in before), before)
            fixed = queries.first_seen(st, "JsError")["builds"]
            after = [b for b in fixed if generate.BUILDS.index(b["build_version"]) >= generate.FIXED_CLASS_BUILD]
            self.assertTrue(after and all(b["n"] == 0 and b["requests"] > 0 for b in after), after)
            self.assertGreater(sum(b["n"] for b in fixed), 0)
            self.assertEqual(st.con.execute(f"SELECT count(*) FROM {st.relation('requests')}").fetchone()[0], 2 * 10 * 400)
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main()
