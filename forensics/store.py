"""The forensic store: the Logpush archive (gzip NDJSON trace events, a local folder or an R2/S3
bucket) compacted by DuckDB into Parquet tables partitioned by date and shop, and the DuckDB
connection the queries run on. No formatting here (cli.py), no SQL of the commands (queries.py).

    archive  {YYYYMMDD}/{start}_{end}_{hash}.log.gz   (what Logpush writes; read-only to us)
    store    requests/date=D/shop=S/{run}_{i}.parquet          one row per request line
             external_calls/date=D/shop=S/{run}_{i}.parquet    one row per `external_call` line
             cron_runs/date=D/shop=S/{run}_{i}.parquet         one row per cron summary line
             alerts/date=D/shop=S/{run}_{i}.parquet            cron_alert, alert_state_change, ...
             other_lines/date=D/{run}_{i}.parquet              every other line, raw text kept
             request_index/date=D/{run}_{i}.parquet            request_id -> shop, sorted by id
             error_rollup/{run}.parquet, build_rollup/{run}.parquet   per day, shop, build
             _manifest.parquet                                  what was compacted, current runs

Compaction is incremental: a date folder whose object list changed since the last run is read
again, the event dates its objects hold are rebuilt from every folder the manifest knows to hold
events of those dates (a Logpush batch can straddle midnight, so a folder holds more than its
own day), and each rebuilt date points to the new run in the manifest. Readers only read files
of the current run of each date, so a half-finished run is never seen; on a local store the
superseded files are deleted afterwards (on R2 they stay until deleted by hand or by a lifecycle
rule).
"""

import datetime as dt
import glob
import hashlib
import json
import os
import re
import sysconfig
import tempfile
import time
import uuid

import duckdb

DUCKDB_VERSION = "1.4.4"

# Every field any lookout line may carry, typed; one parse per line (absent keys are NULL).
LINE_SCHEMA = json.dumps({
    "ts": "VARCHAR", "kind": "VARCHAR", "request_id": "VARCHAR", "shop": "VARCHAR",
    "staff_id": "BIGINT", "staff_label": "VARCHAR", "path": "VARCHAR", "method": "VARCHAR",
    "status": "BIGINT", "ms": "DOUBLE", "d1_queries": "BIGINT",
    "d1_slowest": {"sql": "VARCHAR", "ms": "DOUBLE"},
    "d1_n_plus_one": {"signature": "VARCHAR", "count": "BIGINT"},
    "r2_ops": "BIGINT", "external_calls": ["VARCHAR"], "cost_micros": "JSON",
    "error_class": "VARCHAR", "error_msg": "VARCHAR", "error_context": "JSON", "build_version": "VARCHAR",
    "target": "VARCHAR", "endpoint": "VARCHAR", "retries": "BIGINT", "error_body": "VARCHAR",
    "cron": "VARCHAR", "run_id": "VARCHAR", "results": "JSON", "errors": "JSON",
    "rule": "VARCHAR", "state": "VARCHAR", "severity": "VARCHAR", "dedup_key": "VARCHAR",
    "summary": "VARCHAR", "queued": "BIGINT", "delivery": "BIGINT", "error": "VARCHAR",
    "recent_request_ids": ["VARCHAR"],
    "change": {"at_ms": "BIGINT", "from": "VARCHAR", "to": "VARCHAR", "rule": "VARCHAR",
               "value": "DOUBLE", "incident_seq": "BIGINT"},
})

# The trace-event fields compaction reads (a Logpush job must include EventTimestampMs and Logs;
# the others are NULL when the job leaves them out).
EVENT_COLUMNS = (
    "{EventTimestampMs: 'BIGINT', EventType: 'VARCHAR', Outcome: 'VARCHAR', ScriptName: 'VARCHAR', "
    "ScriptVersion: 'STRUCT(ID VARCHAR, \"Message\" VARCHAR, Tag VARCHAR)', "
    "Logs: 'STRUCT(\"Level\" VARCHAR, \"Message\" JSON[], TimestampMs BIGINT)[]'}"
)

ALERT_KINDS = ("cron_alert", "alert_state_change", "alert_delivery_failed", "ai_resumed", "cron_watchdog_lag")

# Path segments that are ids become `{id}` (a route template); a template stays as it is.
ID_SEGMENT = r"[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}"


def route_sql(p):
    """SQL of the route template of the path expression `p` (see `route_of`)."""
    return (f"array_to_string(list_transform(string_split({p}, '/'), "
            f"s -> CASE WHEN regexp_full_match(s, '{ID_SEGMENT}') THEN '{{id}}' ELSE s END), '/')")


def route_of(path):
    """The route template of a path, as compaction computes the `route` column."""
    return "/".join("{id}" if re.fullmatch(ID_SEGMENT, s) else s for s in path.split("/"))


TABLES_BY_SHOP = ("requests", "external_calls", "cron_runs", "alerts")
TABLES_BY_DATE = ("other_lines", "request_index")
ROLLUPS = ("error_rollup", "build_rollup")


class StoreError(Exception):
    """A problem a person can fix (configuration, missing archive): printed without a trace."""


def is_remote(url):
    return url.startswith(("s3://", "r2://", "gcs://", "http://", "https://"))


def join(base, *parts):
    return "/".join([base.rstrip("/"), *parts])


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def sql_list(items):
    return "[" + ", ".join(sql_str(i) for i in items) + "]"


class Store:
    """An archive and its Parquet store, with one DuckDB connection."""

    def __init__(self, archive, store=None, env=os.environ, memory_limit=None):
        self.archive = archive.rstrip("/") if archive else None
        self.store = (store or (join(self.archive, "_parquet") if self.archive else None))
        if not self.store:
            raise StoreError("no archive and no store: set --archive (LOOKOUT_ARCHIVE) or --store (LOOKOUT_STORE)")
        self.store = self.store.rstrip("/")
        self.remote = is_remote(self.store) or (self.archive is not None and is_remote(self.archive))
        self.con = duckdb.connect()
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute(f"SET memory_limit = '{memory_limit or env.get('LOOKOUT_DUCKDB_MEMORY', '4GB')}'")
        self.con.execute(f"SET temp_directory = {sql_str(os.path.join(tempfile.gettempdir(), 'lookout-duckdb'))}")
        if self.remote:
            self._remote_setup(env)
        self._manifest = None

    # ---------------------------------------------------------------- configuration

    def _remote_setup(self, env):
        """httpfs from the pinned PyPI package (DuckDB cannot download extensions here), and an
        S3 secret for R2 (or any S3 API, such as a local moto server in the tests)."""
        ext_dir = os.path.join(sysconfig.get_paths()["purelib"], "duckdb_ext", "extensions")
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        self.con.execute(f"SET extension_directory = {sql_str(ext_dir)}")
        try:
            self.con.execute("LOAD httpfs")
        except duckdb.Error as e:
            raise StoreError(f"cannot load DuckDB's httpfs extension from {ext_dir} "
                             f"(pip package duckdb-ext-httpfs for DuckDB {DUCKDB_VERSION}): {e}") from None
        endpoint = env.get("LOOKOUT_S3_ENDPOINT")
        account = env.get("R2_ACCOUNT_ID")
        if not endpoint and account:
            endpoint = f"{account}.r2.cloudflarestorage.com"
        key, secret = env.get("LOOKOUT_S3_ACCESS_KEY_ID"), env.get("LOOKOUT_S3_SECRET_ACCESS_KEY")
        if not (endpoint and key and secret):
            raise StoreError("an r2:// or s3:// archive needs LOOKOUT_S3_ACCESS_KEY_ID, LOOKOUT_S3_SECRET_ACCESS_KEY and "
                             "R2_ACCOUNT_ID (or LOOKOUT_S3_ENDPOINT for another S3 API); see forensics/README.md")
        use_ssl = "false" if endpoint.startswith("http://") else "true"
        endpoint = endpoint.split("://", 1)[-1].rstrip("/")
        region = env.get("LOOKOUT_S3_REGION", "auto")
        self.con.execute(
            f"CREATE SECRET lookout_s3 (TYPE s3, KEY_ID {sql_str(key)}, SECRET {sql_str(secret)}, "
            f"ENDPOINT {sql_str(endpoint)}, REGION {sql_str(region)}, URL_STYLE 'path', USE_SSL {use_ssl})"
        )

    @staticmethod
    def url(u):
        """`r2://bucket/x` is R2's S3 API: DuckDB reads it as `s3://bucket/x` with the secret."""
        return "s3://" + u[len("r2://"):] if u.startswith("r2://") else u

    # ---------------------------------------------------------------- the manifest

    def manifest(self):
        """{"folders": {YYYYMMDD: hash of its object list}, "folder_dates": {YYYYMMDD: [dates its
        events have]}, "dates": {date: current run}, "rollup": run of the current rollups}."""
        if self._manifest is None:
            m = {"folders": {}, "folder_dates": {}, "dates": {}, "rollup": None}
            path = self.url(join(self.store, "_manifest.parquet"))
            if self._exists(path):
                for section, name, value in self.con.execute(f"SELECT section, name, value FROM read_parquet({sql_str(path)})").fetchall():
                    if section == "rollup":
                        m["rollup"] = value
                    elif section == "folder_dates":
                        m[section][name] = json.loads(value)
                    else:
                        m[section][name] = value
            self._manifest = m
        return self._manifest

    def _exists(self, path):
        if not is_remote(path):
            return os.path.exists(path)
        # A pattern, so the object store is listed (a plain path is returned as it is).
        pattern = path[:-1] + "[" + path[-1] + "]"
        return bool(self.con.execute(f"SELECT count(*) FROM glob({sql_str(pattern)})").fetchone()[0])

    def _write_manifest(self, m):
        rows = [("folders", k, v) for k, v in m["folders"].items()]
        rows += [("folder_dates", k, json.dumps(v)) for k, v in m["folder_dates"].items()]
        rows += [("dates", k, v) for k, v in m["dates"].items()]
        if m["rollup"]:
            rows.append(("rollup", "", m["rollup"]))
        self.con.execute("CREATE OR REPLACE TEMP TABLE manifest_rows (section VARCHAR, name VARCHAR, value VARCHAR)")
        if rows:
            self.con.executemany("INSERT INTO manifest_rows VALUES (?, ?, ?)", rows)
        target = join(self.store, "_manifest.parquet")
        if is_remote(target):
            self.con.execute(f"COPY manifest_rows TO {sql_str(self.url(target))} (FORMAT parquet)")
        else:
            os.makedirs(self.store, exist_ok=True)
            tmp = target + ".tmp"
            self.con.execute(f"COPY manifest_rows TO {sql_str(tmp)} (FORMAT parquet)")
            os.replace(tmp, target)
        self._manifest = m

    # ---------------------------------------------------------------- compaction

    def archive_objects(self):
        """{YYYYMMDD: [object url, ...]} of the archive (objects outside a date folder are ignored)."""
        if not self.archive:
            return {}
        if not is_remote(self.archive) and not os.path.isdir(self.archive):
            return {}
        pattern = self.url(join(self.archive, "*", "*.log.gz"))
        out = {}
        for (f,) in self.con.execute(f"SELECT file FROM glob({sql_str(pattern)}) ORDER BY file").fetchall():
            folder = f.rstrip("/").split("/")[-2]
            if re.fullmatch(r"\d{8}", folder):
                out.setdefault(folder, []).append(f)
        return out

    @staticmethod
    def _folder_hash(files):
        return hashlib.sha1("\n".join(sorted(os.path.basename(f) for f in files)).encode()).hexdigest()[:16]

    def compact(self, everything=False, log=lambda *_: None):
        """Bring the store up to date with the archive. Returns what it did (dict).

        A date folder is changed when its list of objects differs from the last run's. The
        event dates its objects hold are rebuilt, from every folder known (manifest) to hold
        events of those dates, so an event is in the store once whatever folder carries it."""
        t0 = time.monotonic()
        objects = self.archive_objects()
        m = self.manifest()
        hashes = {f: self._folder_hash(files) for f, files in objects.items()}
        changed = sorted(f for f, h in hashes.items() if everything or m["folders"].get(f) != h)
        if not changed:
            return {"changed_folders": 0, "dates": [], "seconds": round(time.monotonic() - t0, 3)}
        if len(changed) == len(objects):
            dates, inputs = None, [f for fs in objects.values() for f in fs]  # everything
        else:
            files = [f for c in changed for f in objects[c]]
            dates = sorted(str(d) for (d,) in self.con.execute(
                f"SELECT DISTINCT epoch_ms(EventTimestampMs)::DATE FROM read_json({sql_list(files)}, "
                f"format='newline_delimited', columns={{EventTimestampMs: 'BIGINT'}}, ignore_errors=true) "
                f"WHERE EventTimestampMs IS NOT NULL").fetchall())
            holding = {f for f, ds in m["folder_dates"].items() if set(ds) & set(dates)}
            inputs = [f for folder in sorted((holding | set(changed)) & set(objects)) for f in objects[folder]]
        run = dt.datetime.now(dt.timezone.utc).strftime("r%Y%m%dT%H%M%S") + uuid.uuid4().hex[:6]
        chunks = self._chunks(inputs)
        log(f"compacting {len(inputs)} objects ({len(changed)} changed date folders) in {len(chunks)} chunks, run {run}")
        # Each chunk is parsed, written and dropped before the next, so memory stays bounded
        # whatever the archive's size; its files are `{run}_c{k}_{i}`, its rollup rows gathered.
        staged_dates, folder_dates, counts = set(), {}, {}
        self.con.execute("CREATE OR REPLACE TEMP TABLE new_error_rollup AS SELECT * FROM (" + self._empty_select("error_rollup") + ")")
        self.con.execute("CREATE OR REPLACE TEMP TABLE new_build_rollup AS SELECT * FROM (" + self._empty_select("build_rollup") + ")")
        for k, chunk in enumerate(chunks):
            got_dates, got_folders = self._stage(chunk, dates)
            staged_dates |= set(got_dates)
            for f, ds in got_folders.items():
                folder_dates.setdefault(f, set()).update(ds)
            if got_dates:
                self._write_tables(f"{run}_c{k}")
                self.con.execute(f"INSERT INTO new_error_rollup BY NAME {self.ROLLUP_SELECTS['error_rollup']}")
                self.con.execute(f"INSERT INTO new_build_rollup BY NAME {self.ROLLUP_SELECTS['build_rollup']}")
            for c, n in self.con.execute("SELECT class, count(*) FROM staged GROUP BY class").fetchall():
                counts[c] = counts.get(c, 0) + n
            self.con.execute("DROP TABLE staged")
            if len(chunks) > 1:
                log(f"  chunk {k + 1}/{len(chunks)}: {counts.get('request', 0):,} request lines so far, {time.monotonic() - t0:.0f} s")
        staged_dates = sorted(staged_dates)
        for f in changed:
            m["folders"][f] = hashes[f]
            m["folder_dates"][f] = sorted(folder_dates.get(f, []))
        if staged_dates:
            self._write_rollups(run, m, staged_dates)
            old_runs = {d: m["dates"].get(d) for d in staged_dates}
            m["dates"].update({d: run for d in staged_dates})
            m["rollup"] = run
        self._write_manifest(m)
        if staged_dates:
            self._gc(old_runs, run)
        return {"changed_folders": len(changed), "objects_read": len(inputs), "chunks": len(chunks), "dates": staged_dates,
                "lines": counts, "run": run if staged_dates else None, "seconds": round(time.monotonic() - t0, 3)}

    def _chunks(self, inputs):
        """The inputs in groups of at most LOOKOUT_COMPACT_CHUNK_MB of gzip (default 48: about
        600,000 events, a few GB once parsed), whole date folders together when they fit (so a
        shop's day is mostly one file), in archive order."""
        limit = float(os.environ.get("LOOKOUT_COMPACT_CHUNK_MB", "48")) * 1048576
        if is_remote(inputs[0]):
            sizes = dict(self.con.execute(f"SELECT filename, size FROM read_blob({sql_list(inputs)})").fetchall())
        else:
            sizes = {f: os.path.getsize(f) for f in inputs}
        folders = {}
        for f in inputs:
            folders.setdefault(f.rstrip("/").split("/")[-2], []).append(f)
        chunks, cur, total = [], [], 0
        for files in folders.values():
            size = sum(sizes.get(f, 0) for f in files)
            if cur and total + size > limit:
                chunks.append(cur)
                cur, total = [], 0
            if size <= limit:
                cur, total = cur + files, total + size
                continue
            for f in files:  # a folder larger than a chunk: split it
                if cur and total + sizes.get(f, 0) > limit:
                    chunks.append(cur)
                    cur, total = [], 0
                cur.append(f)
                total += sizes.get(f, 0)
        return chunks + ([cur] if cur else [])

    def _stage(self, inputs, dates):
        """Parse the inputs' lines once into a typed temp table `staged` (only `dates`, if given).
        Returns the dates staged and {folder: [dates its objects hold]}."""
        date_filter = (f"WHERE epoch_ms(EventTimestampMs)::DATE IN ({', '.join('DATE ' + sql_str(d) for d in dates)})"
                       if dates else "WHERE EventTimestampMs IS NOT NULL")
        self.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE staged AS
        WITH ev AS (
          SELECT epoch_ms(EventTimestampMs)::DATE AS date, EventTimestampMs AS event_ms, EventType AS event_type,
                 ScriptName AS script_name, ScriptVersion.ID AS script_version, Outcome AS outcome,
                 split_part(filename, '/', -2) AS folder,
                 list_transform(coalesce(Logs, []), lg -> {{
                   'log_ms': lg.TimestampMs,
                   'text': array_to_string(list_reverse(list_transform(lg.Message, m -> coalesce(json_extract_string(m, '$'), m::VARCHAR))), ' ')
                 }}) AS entries
          FROM read_json({sql_list(inputs)}, format='newline_delimited', columns={EVENT_COLUMNS}, ignore_errors=true, filename=true)
          {date_filter}
        ), parsed AS (
          SELECT *, list_transform(entries, e -> TRY(from_json(e.text, '{LINE_SCHEMA}'))) AS lines FROM ev
        ), ev2 AS (
          SELECT *, list_filter(lines, l -> l.kind IS NULL AND l.request_id IS NOT NULL AND l.path IS NOT NULL)[1] AS req
          FROM parsed
        ), flat AS (
          SELECT date, event_ms, event_type, script_name, script_version, outcome, folder,
                 req.shop AS event_shop, req.build_version AS event_build,
                 unnest(entries) AS e, unnest(lines) AS j
          FROM ev2
        ), classed AS (
          SELECT *,
                 CASE
                   WHEN j IS NULL THEN 'other'
                   WHEN j.kind IS NULL AND j.request_id IS NOT NULL AND j.path IS NOT NULL THEN 'request'
                   WHEN j.kind = 'external_call' THEN 'external_call'
                   WHEN j.kind IS NULL AND j.cron IS NOT NULL AND j.run_id IS NOT NULL THEN 'cron_run'
                   WHEN j.kind IN {ALERT_KINDS} THEN 'alert'
                   ELSE 'other'
                 END AS class
          FROM flat
        )
        SELECT date, event_ms, event_type, script_name, script_version, outcome, folder, event_shop, event_build,
               e.log_ms AS log_ms, j, class,
               -- The raw line is kept (other_lines) when it is not one of the tables' lines, or when
               -- a field the table needs did not have its type (so the row has a NULL there).
               CASE WHEN class = 'other'
                      OR (class = 'request' AND (j.status IS NULL OR j.ms IS NULL))
                      OR (class IN ('external_call', 'cron_run') AND j.ms IS NULL)
                    THEN e.text END AS text
        FROM classed
        """)
        # An external call whose request line came in another event (a writer that split them):
        # its shop and build from the request line with the same id.
        self.con.execute("""
        UPDATE staged SET event_shop = r.shop, event_build = r.build
        FROM (SELECT j.request_id AS rid, any_value(j.shop) AS shop, any_value(j.build_version) AS build FROM staged
              WHERE class = 'request' AND j.request_id IN (SELECT j.request_id FROM staged WHERE class = 'external_call' AND event_shop IS NULL)
              GROUP BY 1) r
        WHERE staged.class = 'external_call' AND staged.event_shop IS NULL AND staged.j.request_id = r.rid
        """)
        staged_dates = [str(d) for (d,) in self.con.execute("SELECT DISTINCT date FROM staged ORDER BY 1").fetchall()]
        folder_dates = {}
        for folder, d in self.con.execute("SELECT DISTINCT folder, date FROM staged ORDER BY 1, 2").fetchall():
            folder_dates.setdefault(folder, []).append(str(d))
        return staged_dates, folder_dates

    SELECTS = {
        "requests": f"""
          SELECT date, j.shop AS shop, TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP) AS ts, j.request_id AS request_id,
                 j.staff_id AS staff_id, j.staff_label AS staff_label, j.path AS path, {route_sql('j.path')} AS route,
                 j.method AS method, j.status::INTEGER AS status, j.ms AS ms, j.d1_queries::INTEGER AS d1_queries,
                 j.d1_slowest.sql AS d1_slowest_sql, j.d1_slowest.ms AS d1_slowest_ms,
                 j.d1_n_plus_one.signature AS d1_n_plus_one_sql, j.d1_n_plus_one.count::INTEGER AS d1_n_plus_one_count,
                 j.r2_ops::INTEGER AS r2_ops, j.external_calls AS external_calls,
                 TRY_CAST(j.cost_micros->>'twilio' AS BIGINT) AS cost_twilio_micros,
                 TRY_CAST(j.cost_micros->>'claude' AS BIGINT) AS cost_claude_micros,
                 j.error_class AS error_class, j.error_msg AS error_msg, j.error_context::VARCHAR AS error_context,
                 j.build_version AS build_version, epoch_ms(log_ms) AS logged_at, epoch_ms(event_ms) AS event_at,
                 event_type, script_name, script_version, outcome
          FROM staged WHERE class = 'request'""",
        "external_calls": """
          SELECT date, coalesce(event_shop, j.shop) AS shop, TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP) AS ts,
                 j.request_id AS request_id, j.target AS target, j.method AS method, j.endpoint AS endpoint,
                 j.status::INTEGER AS status, j.ms AS ms, j.retries::INTEGER AS retries, j.error_body AS error_body,
                 TRY_CAST(j.cost_micros::VARCHAR AS BIGINT) AS cost_micros, event_build AS build_version,
                 epoch_ms(log_ms) AS logged_at, script_name, script_version
          FROM staged WHERE class = 'external_call'""",
        "cron_runs": """
          SELECT date, j.shop AS shop, TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP) AS ts, j.cron AS cron,
                 j.run_id AS run_id, j.ms AS ms, j.results::VARCHAR AS results, j.errors::VARCHAR AS errors,
                 coalesce(json_array_length(j.errors), 0)::INTEGER AS errors_count,
                 coalesce(json_extract_string(j.errors, '$[*].class'), []) AS error_classes,
                 j.d1_queries::INTEGER AS d1_queries, j.d1_slowest.sql AS d1_slowest_sql, j.d1_slowest.ms AS d1_slowest_ms,
                 j.build_version AS build_version, epoch_ms(log_ms) AS logged_at, script_name, script_version
          FROM staged WHERE class = 'cron_run'""",
        "alerts": """
          SELECT date, j.shop AS shop,
                 coalesce(TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP), epoch_ms(j.change.at_ms), epoch_ms(log_ms)) AS ts,
                 j.kind AS kind, coalesce(j.rule, j.change.rule) AS rule, coalesce(j.state, j.change.to) AS state,
                 j.change.from AS from_state, j.change.value AS value, j.change.incident_seq AS incident_seq,
                 j.cron AS cron, j.run_id AS run_id, j.severity AS severity, j.dedup_key AS dedup_key,
                 j.summary AS summary, j.queued AS queued, j.delivery AS delivery, j.error AS error,
                 j.recent_request_ids AS recent_request_ids, epoch_ms(log_ms) AS logged_at, script_name, script_version
          FROM staged WHERE class = 'alert'""",
        "other_lines": """
          SELECT date, j.shop AS shop, epoch_ms(coalesce(log_ms, event_ms)) AS ts, j.kind AS kind, j.request_id AS request_id,
                 class AS also_in, text, event_type, script_name, script_version, outcome
          FROM staged WHERE text IS NOT NULL""",
        "request_index": """
          SELECT date, j.request_id AS request_id, j.shop AS shop
          FROM staged WHERE class = 'request' ORDER BY request_id""",
    }

    def _write_tables(self, run):
        if not is_remote(self.store):
            os.makedirs(self.store, exist_ok=True)
        for table, select in self.SELECTS.items():
            parts = "date, shop" if table in TABLES_BY_SHOP else "date"
            extra = ", ROW_GROUP_SIZE 20000" if table == "request_index" else ""
            # The index keeps its sort, so each row group covers a narrow range of ids and a
            # lookup reads one of them.
            self.con.execute(f"SET preserve_insertion_order = {'true' if table == 'request_index' else 'false'}")
            self.con.execute(
                f"COPY ({select}) TO {sql_str(self.url(join(self.store, table)))} "
                f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({parts}), OVERWRITE_OR_IGNORE, "
                f"FILENAME_PATTERN '{run}_{{i}}'{extra})"
            )

    ROLLUP_SELECTS = {
        "error_rollup": """
          SELECT date, j.shop AS shop, j.build_version AS build_version, 'request' AS source, j.error_class AS error_class,
                 count(*) AS n, min(TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP)) AS first_ts,
                 max(TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP)) AS last_ts,
                 arg_min(j.request_id, (j.ts, j.request_id)) AS first_request_id, min(j.status)::INTEGER AS status_min,
                 max(j.status)::INTEGER AS status_max
          FROM staged WHERE class = 'request' AND j.error_class IS NOT NULL GROUP BY ALL
          UNION ALL
          SELECT date, shop, build_version, 'cron' AS source, cls AS error_class, count(*) AS n,
                 min(ts) AS first_ts, max(ts) AS last_ts, arg_min(run_id, (ts, run_id)) AS first_request_id,
                 NULL::INTEGER AS status_min, NULL::INTEGER AS status_max
          FROM (SELECT date, j.shop AS shop, j.build_version AS build_version, j.run_id AS run_id,
                       TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP) AS ts,
                       unnest(coalesce(json_extract_string(j.errors, '$[*].class'), [])) AS cls
                FROM staged WHERE class = 'cron_run')
          GROUP BY ALL""",
        "build_rollup": """
          SELECT date, j.shop AS shop, j.build_version AS build_version, count(*) AS requests,
                 count(j.error_class) AS errors, count(*) FILTER (WHERE j.status >= 500) AS errors_5xx,
                 min(TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP)) AS first_ts,
                 max(TRY_CAST(replace(j.ts, 'Z', '') AS TIMESTAMP)) AS last_ts
          FROM staged WHERE class = 'request' GROUP BY ALL""",
    }
    # The chunks' rows merged: a day, shop and build may come from two chunks.
    ROLLUP_MERGES = {
        "error_rollup": """
          SELECT date, shop, build_version, source, error_class, sum(n)::BIGINT AS n, min(first_ts) AS first_ts,
                 max(last_ts) AS last_ts, arg_min(first_request_id, (first_ts, first_request_id)) AS first_request_id,
                 min(status_min) AS status_min, max(status_max) AS status_max
          FROM new_error_rollup GROUP BY ALL""",
        "build_rollup": """
          SELECT date, shop, build_version, sum(requests)::BIGINT AS requests, sum(errors)::BIGINT AS errors,
                 sum(errors_5xx)::BIGINT AS errors_5xx, min(first_ts) AS first_ts, max(last_ts) AS last_ts
          FROM new_build_rollup GROUP BY ALL""",
    }

    def _write_rollups(self, run, m, dates):
        """The per-day summaries the history queries read: old rows for dates not rebuilt, new rows
        for the rebuilt ones, in one small file each."""
        date_list = ", ".join("DATE " + sql_str(d) for d in dates)
        for table, select in self.ROLLUP_MERGES.items():
            sources = [f"SELECT * FROM ({select})"]
            if m.get("rollup"):
                old = self.url(join(self.store, table, f"{m['rollup']}.parquet"))
                if self._exists(old):
                    sources.append(f"SELECT * FROM read_parquet({sql_str(old)}) WHERE date NOT IN ({date_list})")
            target = self.url(join(self.store, table, f"{run}.parquet"))
            if not is_remote(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
            self.con.execute(f"COPY ({' UNION ALL BY NAME '.join(sources)} ORDER BY date) TO {sql_str(target)} (FORMAT parquet)")
        self.con.execute("DROP TABLE new_error_rollup")
        self.con.execute("DROP TABLE new_build_rollup")

    def _gc(self, old_runs, run):
        """Local store: delete the files the new run superseded."""
        if is_remote(self.store):
            return
        for table in TABLES_BY_SHOP + TABLES_BY_DATE:
            for d, r in old_runs.items():
                if not r or r == run:
                    continue
                for root, _, files in os.walk(os.path.join(self.store, table, f"date={d}")):
                    for f in files:
                        if f.startswith(r + "_"):
                            os.remove(os.path.join(root, f))
        for table in ROLLUPS:
            folder = os.path.join(self.store, table)
            for f in os.listdir(folder) if os.path.isdir(folder) else []:
                if f.endswith(".parquet") and f != f"{run}.parquet":
                    os.remove(os.path.join(folder, f))

    # ---------------------------------------------------------------- reading

    def dates(self):
        return sorted(self.manifest()["dates"])

    def files(self, table, dates=None, shop=None):
        """Glob patterns of `table`'s current files for `dates` (all when None) and `shop`."""
        m = self.manifest()
        if table in ROLLUPS:
            return [self.url(join(self.store, table, f"{m['rollup']}.parquet"))] if m["rollup"] else []
        wanted = m["dates"] if dates is None else {d: m["dates"][d] for d in dates if d in m["dates"]}
        shop_part = ("shop=" + shop if shop else "*") if table in TABLES_BY_SHOP else None
        out = []
        for d, run in sorted(wanted.items()):
            parts = [f"date={d}"] + ([shop_part] if shop_part else []) + [f"{run}_*.parquet"]
            out.append(self.url(join(self.store, table, *parts)))
        return out

    def existing(self, patterns):
        """The patterns that match at least one file (one listing each)."""
        if not is_remote(self.store):
            return [p for p in patterns if glob.glob(p)]
        return [p for p in patterns if self.con.execute(f"SELECT count(*) FROM glob({sql_str(p)})").fetchone()[0]]

    def relation(self, table, dates=None, shop=None):
        """SQL for a FROM clause over `table`'s current files (for `dates`, `shop`); a relation
        of the right shape with no rows when there are none."""
        files = self.existing(self.files(table, dates, shop))
        if not files:
            return f"({self._empty_select(table)})"
        if table in ROLLUPS:
            return f"read_parquet({sql_list(files)})"
        types = "{'date': DATE, 'shop': VARCHAR}" if table in TABLES_BY_SHOP else "{'date': DATE}"
        return f"read_parquet({sql_list(files)}, hive_partitioning=true, union_by_name=true, hive_types={types})"

    def _empty_select(self, table):
        staged_empty = (f"(SELECT NULL::DATE AS date, NULL::BIGINT AS event_ms, NULL AS event_type, NULL AS script_name, "
                        f"NULL AS script_version, NULL AS outcome, NULL AS folder, NULL AS event_shop, NULL AS event_build, "
                        f"NULL::BIGINT AS log_ms, from_json('{{}}', '{LINE_SCHEMA}') AS j, 'none' AS class, "
                        f"NULL AS text WHERE false)")
        if table in ROLLUPS:
            return {"error_rollup": "SELECT NULL::DATE AS date, NULL::VARCHAR AS shop, NULL::VARCHAR AS build_version, "
                                    "NULL::VARCHAR AS source, NULL::VARCHAR AS error_class, 0::BIGINT AS n, NULL::TIMESTAMP AS first_ts, "
                                    "NULL::TIMESTAMP AS last_ts, NULL::VARCHAR AS first_request_id, NULL::INTEGER AS status_min, "
                                    "NULL::INTEGER AS status_max WHERE false",
                    "build_rollup": "SELECT NULL::DATE AS date, NULL::VARCHAR AS shop, NULL::VARCHAR AS build_version, 0::BIGINT AS requests, "
                                    "0::BIGINT AS errors, 0::BIGINT AS errors_5xx, NULL::TIMESTAMP AS first_ts, "
                                    "NULL::TIMESTAMP AS last_ts WHERE false"}[table]
        return self.SELECTS[table].replace("FROM staged", "FROM " + staged_empty)
