"""The Logpush archive's shape, written: Workers trace events (dataset `workers_trace_events`)
as gzip NDJSON objects under a date prefix, exactly as Cloudflare Logpush writes them to R2
(forensics/README.md cites the sources). Used by `scripts/dev` (the Worker's stdout, streamed)
and by the e2e harness (a server's log file, at once). Standard library only.

    wrangler dev stdout ──► lines ──► EventGrouper ──► trace events ──► ArchiveWriter
                                      (one event per invocation)       {YYYYMMDD}/{start}_{end}_{hash}.log.gz

One trace event per invocation, its console lines in `Logs` (`{"Level": "log", "Message":
[<the line>], "TimestampMs": ...}`):
- a request: its `external_call` lines, then its request line (which ends the invocation),
  grouped by `request_id`; `EventType` `fetch`, `Event.Request`/`Event.Response` rebuilt from
  the request line (path only: the line has no host or query string);
- a cron trigger: the summary lines (and `cron_*` lines of the scheduled handler) until wrangler
  reports the `/__scheduled` (or `/cdn-cgi/handler/scheduled`) request; `EventType` `scheduled`;
- a Durable Object line (alerts, check-ins, monitor errors): one event per line, `EventType`
  `alarm` for alert lines, `fetch` otherwise (workerd groups them per object invocation; the
  forensic tools read lines, not events, so nothing depends on this);
- any other JSON line: its own event.
Lines that are not JSON objects (wrangler's banner, its request log) are not Worker output and
are not archived; in stream mode every line is still echoed unchanged to stdout.
"""

import argparse
import datetime as dt
import gzip
import json
import os
import secrets
import select
import signal
import sys
import time

# Lines a Durable Object prints (kind values), and which of them an alarm prints.
DO_KINDS = {
    "alert_state_change", "cron_alert", "cron_check_in", "cron_watchdog_lag", "alert_delivery_failed",
    "ai_resumed", "monitor_ingest_rejected", "monitor_ingest_refused", "monitor_restore_error",
    "monitor_storage_error", "monitor_alarm_error",
}
ALARM_KINDS = {"alert_state_change", "cron_alert", "cron_watchdog_lag", "alert_delivery_failed"}
# Lines of the scheduled handler besides the summary lines.
CRON_KINDS = {"cron_unwatched", "cron_check_in_failed"}
# An unfinished group (a request whose line never came) is written after this long.
STALE_MS = 30_000
# A cron group with no `/__scheduled` marker is closed after this much quiet.
CRON_QUIET_MS = 2_000


def now_ms():
    return int(time.time() * 1000)


def parse_ts_ms(ts):
    """Milliseconds of an RFC 3339 UTC timestamp (`2026-05-10T14:23:11.000Z`), or None."""
    if not isinstance(ts, str):
        return None
    try:
        return int(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def classify(obj):
    """What kind of Worker line this is: request, external_call, cron, do, or other."""
    kind = obj.get("kind")
    if kind is None and "request_id" in obj and "path" in obj:
        return "request"
    if kind == "external_call" or (kind is not None and "request_id" in obj):
        return "external_call" if kind == "external_call" else "request_part"
    if kind is None and "cron" in obj and "run_id" in obj:
        return "cron"
    if kind in CRON_KINDS:
        return "cron"
    if kind in DO_KINDS:
        return "do"
    return "other"


def log_entry(text, at_ms):
    return {"Level": "log", "Message": [text], "TimestampMs": at_ms}


def trace_event(event_type, event, event_ms, logs, script_name, wall_ms=0):
    """One Workers trace event, with the dataset's fields in Logpush's (alphabetical) order."""
    return {
        "CPUTimeMs": 0,
        "DispatchNamespace": "",
        "Entrypoint": "",
        "Event": event,
        "EventTimestampMs": event_ms,
        "EventType": event_type,
        "Exceptions": [],
        "Logs": logs,
        "Outcome": "ok",
        "ScriptName": script_name,
        "ScriptTags": [],
        "ScriptVersion": {"ID": "", "Message": "", "Tag": ""},
        "WallTimeMs": wall_ms,
    }


class EventGrouper:
    """Groups console lines into invocations. `feed` and `tick` return finished events."""

    def __init__(self, script_name="lookout"):
        self.script_name = script_name
        self.requests = {}  # request_id -> [first_seen_ms, [log entries]]
        self.cron = None  # [first_seen_ms, last_seen_ms, [log entries]]
        self.last_ms = None

    def feed(self, text, at_ms=None):
        """One line of output. `at_ms`: when it was printed; None (a log file read afterwards):
        the line's own time (`ts`, an alert change's `at_ms`), else the last time seen."""
        text = text.rstrip("\r\n")
        out = []
        if text.startswith("[wrangler:info]") and ("/__scheduled" in text or "/cdn-cgi/handler/scheduled" in text):
            out.extend(self._close_cron(trigger=_cron_of(text)))
            return out
        if not text.startswith("{"):
            return out
        try:
            obj = json.loads(text)
        except ValueError:
            return out
        if not isinstance(obj, dict):
            return out
        if at_ms is None:
            change = obj.get("change")
            at_ms = parse_ts_ms(obj.get("ts")) or (change.get("at_ms") if isinstance(change, dict) else None)
            at_ms = at_ms if isinstance(at_ms, int) else (self.last_ms or now_ms())
            out.extend(self.tick(at_ms))
        self.last_ms = at_ms
        entry = log_entry(text, at_ms)
        what = classify(obj)
        if what in ("external_call", "request_part"):
            rid = str(obj.get("request_id"))
            self.requests.setdefault(rid, [at_ms, []])[1].append(entry)
        elif what == "request":
            rid = str(obj.get("request_id"))
            _, logs = self.requests.pop(rid, [at_ms, []])
            logs.append(entry)
            out.append(self._fetch_event(obj, logs, at_ms))
        elif what == "cron":
            if self.cron is None:
                self.cron = [at_ms, at_ms, []]
            self.cron[1] = at_ms
            self.cron[2].append(entry)
        elif what == "do":
            event_type = "alarm" if obj.get("kind") in ALARM_KINDS else "fetch"
            out.append(trace_event(event_type, {}, at_ms, [entry], self.script_name))
        else:
            out.append(trace_event("fetch", {}, at_ms, [entry], self.script_name))
        return out

    def tick(self, at_ms):
        """Close groups that waited too long (a lost request line, a cron without marker)."""
        out = []
        for rid in [r for r, (first, _) in self.requests.items() if at_ms - first > STALE_MS]:
            first, logs = self.requests.pop(rid)
            out.append(trace_event("fetch", {}, first, logs, self.script_name))
        if self.cron is not None and at_ms - self.cron[1] > CRON_QUIET_MS:
            out.extend(self._close_cron())
        return out

    def close(self):
        out = self.tick(float("inf"))
        return out

    def _close_cron(self, trigger=None):
        if self.cron is None:
            return []
        first, _, logs = self.cron
        self.cron = None
        event = {"Cron": trigger} if trigger else {}
        return [trace_event("scheduled", event, first, logs, self.script_name)]

    def _fetch_event(self, line, logs, at_ms):
        start = parse_ts_ms(line.get("ts")) or at_ms
        rid = str(line.get("request_id", ""))
        ray = rid.rsplit("-", 1)[0] if not rid.startswith("req_") and "-" in rid else ""
        event = {
            "RayID": ray,
            "Request": {"URL": "http://localhost" + str(line.get("path", "")), "Method": line.get("method")},
            "Response": {"Status": line.get("status")},
        }
        wall = line.get("ms")
        return trace_event("fetch", event, start, logs, self.script_name, int(wall) if isinstance(wall, (int, float)) else 0)


def _cron_of(text):
    """The trigger of a `[wrangler:info] GET /__scheduled?cron=0+7+*+*+* 200 OK` line."""
    for part in text.split():
        if "cron=" in part:
            from urllib.parse import parse_qs, urlsplit

            q = parse_qs(urlsplit(part).query)
            if q.get("cron"):
                return q["cron"][0]
    return None


def stamp(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class ArchiveWriter:
    """Writes batches of trace events as Logpush objects: `{out}/{YYYYMMDD}/{start}_{end}_{hash}.log.gz`
    (`{DATE}` of the batch's first event, UTC), each written to a temporary name and renamed,
    so a reader never sees half an object."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.pending = []

    def add(self, events):
        self.pending.extend(events)

    def flush(self):
        if not self.pending:
            return None
        events, self.pending = self.pending, []
        times = [e["EventTimestampMs"] for e in events]
        start, end = min(times), max(times)
        folder = os.path.join(self.out_dir, stamp(start)[:8])
        os.makedirs(folder, exist_ok=True)
        name = f"{stamp(start)}_{stamp(end)}_{secrets.token_hex(4)}.log.gz"
        tmp = os.path.join(folder, "." + name + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for e in events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        path = os.path.join(folder, name)
        os.replace(tmp, path)
        return path


def convert_file(log_path, out_dir, script_name="lookout"):
    """Batch mode: a whole log file (e.g. an e2e server's) into one archive object."""
    g, w = EventGrouper(script_name), ArchiveWriter(out_dir)
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            w.add(g.feed(line))
    w.add(g.close())
    return w.flush()


def stream(fd_in, out_dir, flush_s, script_name="lookout", echo=sys.stdout.buffer, stop=lambda: False):
    """Stream mode: echo every line, group, write an object every `flush_s` seconds (and at EOF
    or when `stop()` says so)."""
    g, w = EventGrouper(script_name), ArchiveWriter(out_dir)
    buf = b""
    last_flush = time.monotonic()
    done = False
    while not done:
        ready, _, _ = select.select([fd_in], [], [], 0.5)
        if stop():
            done = True
        elif ready:
            chunk = os.read(fd_in, 65536)
            if not chunk:
                done = True
            else:
                if echo is not None:
                    echo.write(chunk)
                    echo.flush()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    w.add(g.feed(raw.decode("utf-8", "replace"), now_ms()))
        w.add(g.tick(now_ms()))
        if done or time.monotonic() - last_flush >= flush_s:
            if done and buf:
                w.add(g.feed(buf.decode("utf-8", "replace"), now_ms()))
            if done:
                w.add(g.close())
            w.flush()
            last_flush = time.monotonic()


def main(argv=None):
    p = argparse.ArgumentParser(description="Write Worker console lines into a Logpush-shaped archive folder.")
    p.add_argument("--out", required=True, help="archive folder (date folders are created inside)")
    p.add_argument("--from-file", help="convert this log file at once (default: stream stdin, echoing it)")
    p.add_argument("--flush-s", type=float, default=5.0, help="stream mode: seconds between objects (default 5)")
    p.add_argument("--script-name", default="lookout", help="ScriptName of the events (the Worker's name)")
    a = p.parse_args(argv)
    if a.from_file:
        path = convert_file(a.from_file, a.out, a.script_name)
        print(path or "", flush=True)
        return 0
    # Ctrl-C reaches the whole process group: let wrangler exit and read on to its EOF. A
    # SIGTERM writes what is pending and stops.
    stopped = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    try:
        stream(sys.stdin.fileno(), a.out, a.flush_s, a.script_name, stop=lambda: bool(stopped))
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
