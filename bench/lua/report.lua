-- wrk reporter: when the run ends, prints one line "BENCH_WRK_JSON {...}" for bench/run.ts.
-- wrk's latency histogram counts microseconds. `pacing` is set by a pacing script that
-- loads this file (fixed-rate.lua); a plain run saturates.
pacing = pacing or "saturation"

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
