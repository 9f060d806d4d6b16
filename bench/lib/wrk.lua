-- wrk script of the bench: the shop's Host and session cookie on every request, and one JSON
-- summary line at the end (latencies in microseconds, from wrk's own histogram).
wrk.headers["Host"] = "swicked.localhost"
wrk.headers["Cookie"] = "session=sess_robbie"

-- BENCH_FLEET_SHOPS=N: spread the requests over the shops fleet-01 .. fleet-N, in turn.
local fleet = tonumber(os.getenv("BENCH_FLEET_SHOPS") or "0")
if fleet > 0 then
  local n = 0
  request = function()
    n = n + 1
    wrk.headers["Host"] = string.format("fleet-%02d.localhost", (n % fleet) + 1)
    return wrk.format(nil)
  end
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, summary.errors.connect, summary.errors.read, summary.errors.write, non2xx,
    summary.errors.timeout))
end
