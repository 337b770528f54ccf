-- wrk script for benchmarks/serve.py: GET /v1/members/{id}/offers for random member ids.
--
--   wrk -t2 -c16 -d30s -s benchmarks/serve_offers.lua http://127.0.0.1:PORT -- IDS_FILE KEY [CHANNEL [RATE]]
--
-- IDS_FILE holds one member id a line; KEY is sent as X-API-Key (a reader key). Each wrk
-- thread draws ids with its own seed and notes the decision ids in its 200 answers. done()
-- prints one line "wrk-json: {...}" with the counts and latency percentiles (microseconds) for
-- the Python script to read, and writes the distinct decision ids served to the file named by
-- the environment variable WRK_DECISIONS_FILE (if set), one a line.
--
-- RATE (requests/s per wrk thread; absent or 0: as fast as the connections go) paces the load:
-- request k of a thread is due at start + k / RATE, and a connection that comes free waits for
-- the next due slot. wrk times a request from when it is written, so a request that waited
-- for a free connection past its slot would hide that wait (coordinated omission). Each
-- thread therefore counts the requests sent more than 1 ms behind their slot ("behind_1ms")
-- and notes the furthest behind ("behind_max_us"), and done() gives "p99_bound_us", an upper
-- bound on the p99 of latencies timed from the schedule: the late share s of the requests
-- may be anything, every other one is at most 1 ms late, so that p99 is at most wrk's
-- percentile 99 + s, plus 1 ms (-1 when s reaches 1 %).

local counter = 0
local threads = {}

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
   threads[#threads + 1] = thread
end

-- per thread (globals, so that done() can read them with thread:get)
served = 0 -- decisions in 200 answers, repeats included
seen = {} -- decision id -> true
behind_max_us = 0 -- the furthest behind its slot a paced request was sent
behind_1ms = 0 -- paced requests sent more than 1 ms behind their slot
paced = false

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } nbo_timespec;
int clock_gettime(int clock_id, nbo_timespec *tp);
]])
local clock = ffi.new("nbo_timespec")
local CLOCK_MONOTONIC = 1

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
   return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

local interval_us -- microseconds between due slots (paced runs)
local next_slot_us = nil

function paced_delay()
   local now = now_us()
   next_slot_us = next_slot_us or now
   local slot = next_slot_us
   next_slot_us = next_slot_us + interval_us
   local wait = slot - now
   if wait < 0 then
      behind_max_us = math.max(behind_max_us, -wait)
      if wait < -1000 then
         behind_1ms = behind_1ms + 1
      end
      return 0
   end
   return math.floor(wait / 1000) -- wrk waits whole milliseconds; the next slot catches up
end

local ids = {}
local channel = "email"

function init(args)
   local path, key = args[1], args[2]
   if path == nil or key == nil then
      error("usage: wrk ... -s serve_offers.lua URL -- IDS_FILE API_KEY [CHANNEL [RATE]]")
   end
   for line in io.lines(path) do
      if line ~= "" then
         ids[#ids + 1] = line
      end
   end
   if #ids == 0 then
      error("no member ids in " .. path)
   end
   channel = args[3] or channel
   local rate = tonumber(args[4] or "0")
   if rate and rate > 0 then
      interval_us = 1e6 / rate
      paced = true
      delay = paced_delay -- wrk looks for delay() after init(): unpaced runs have none
   end
   wrk.headers["X-API-Key"] = key
   math.randomseed(1000 + (seed or 0))
end

function request()
   local member_id = ids[math.random(#ids)]
   return wrk.format("GET", "/v1/members/" .. member_id .. "/offers?channel=" .. channel)
end

function response(status, headers, body)
   if status == 200 then
      for decision_id in string.gmatch(body, '"decision_id":"([^"]+)"') do
         served = served + 1
         seen[decision_id] = true
      end
   end
end

function done(summary, latency, requests)
   local errors = summary.errors
   local total, distinct, behind, late, paced = 0, 0, 0, 0, false
   local path = os.getenv("WRK_DECISIONS_FILE")
   local out = path and assert(io.open(path, "w"))
   for _, thread in ipairs(threads) do
      total = total + thread:get("served")
      behind = math.max(behind, thread:get("behind_max_us"))
      late = late + thread:get("behind_1ms")
      paced = paced or thread:get("paced")
      for decision_id in pairs(thread:get("seen")) do
         distinct = distinct + 1
         if out then
            out:write(decision_id, "\n")
         end
      end
   end
   if out then
      out:close()
   end
   local bound = latency:percentile(99)
   if paced then
      local q = 99 + 100 * late / math.max(summary.requests, 1)
      bound = q < 100 and latency:percentile(q) + 1000 or -1
   end
   io.write(string.format(
      'wrk-json: {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
         .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, '
         .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "served": %d, "distinct": %d, '
         .. '"behind_max_us": %d, "behind_1ms": %d, "p99_bound_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency.max, latency.mean, total, distinct,
      behind, late, bound
   ))
end
