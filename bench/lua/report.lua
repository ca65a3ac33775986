-- wrk reporter: when the run ends, prints one line "BENCH_WRK_JSON {...}" for bench/run.ts.
-- wrk's latency histogram counts microseconds. `pacing` is set by a pacing script that
-- loads this file (fixed-rate.lua); a plain run saturates.
-- env BENCH_REQUEST: unset for GETs; "post" sends a small JSON POST; "keyed-post" the same POST
-- with an Idempotency-Key of its own on every request, unique across runs.
pacing = pacing or "saturation"

local shape = os.getenv("BENCH_REQUEST") or ""
if shape == "post" or shape == "keyed-post" then
  wrk.method = "POST"
  wrk.body = '{"amount":4200,"currency":"EUR","customer":"cus_4fdAW5ftNQow1a"}'
  wrk.headers["Content-Type"] = "application/json"
end
if shape == "keyed-post" then
  math.randomseed(os.time())
  local run = string.format("%x%x", os.time(), math.random(0, 0x7fffffff))
  local sent = 0
  -- A function `request` makes wrk build every request anew, so the plain POST row is built the
  -- same way (below) to keep the two rows' wrk costs alike.
  request = function()
    sent = sent + 1
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Idempotency-Key"] = run .. "-" .. sent
    return wrk.format(nil, nil, headers, nil)
  end
elseif shape == "post" then
  request = function()
    return wrk.format(nil, nil, nil, nil)
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_WRK_JSON {"requests":%d,"durationUs":%d,"bytes":%d,"pacing":"%s",' ..
    '"latencyUs":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes, pacing,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
