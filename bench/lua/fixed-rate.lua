-- Fixed request rate for wrk (wrk2 is not packaged in Debian).
-- All connections of a wrk thread share one schedule of send slots, BENCH_RATE per second:
-- before each request a connection takes the next free slot and waits until it comes. The
-- rate is therefore exact over the run as long as enough connections are idle, unlike a
-- random think time whose rate drifts with the latency. A slot already past is sent at once,
-- so a proxy that falls behind is caught up with rather than given a break.
-- Latency is measured by wrk from the actual send, so it is only meaningful while the target
-- keeps up with the rate: check the achieved req/s.
-- env: BENCH_RATE (requests per second per wrk thread), BENCH_LUA_DIR (folder of report.lua).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]

local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate == nil or rate <= 0 then
  error("fixed-rate.lua: set BENCH_RATE to the requests per second of one wrk thread")
end
local slot_ms = 1000 / rate
local next_slot = nil

-- wrk calls delay() before each request and sends it that many milliseconds later.
delay = function()
  local now = now_ms()
  next_slot = (next_slot or now) + slot_ms
  local wait = next_slot - now
  if wait <= 0 then
    return 0
  end
  return math.floor(wait + 0.5)
end

pacing = "fixed-rate"
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
