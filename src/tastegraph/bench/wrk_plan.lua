-- wrk script for `tastegraph bench serve` (driven by loadgen.py, which explains why).
--
-- The plan (a Lua table written by loadgen.py, path in TASTEGRAPH_WRK_PLAN) gives each wrk
-- thread one stream (feed, related, events or health) and a share of its slots: thread i
-- sends slots first, first + stride, ... of its stream, slot k due at start + k / rate.
-- Each thread has one connection, so its Lua state sees its own requests and answers in
-- turn: delay() holds the connection until the next slot is due, request() builds it, and
-- response() counts its latency from when it was due (open loop: a request that waited
-- for the previous answer on its connection is charged that wait), or from when it was
-- really sent if the millisecond timer fired a little early. done() prints what every
-- thread recorded, one line per thread, for loadgen.parse_output.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } tastegraph_timespec;
int clock_gettime(int clock, tastegraph_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("tastegraph_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

local plan = dofile(os.getenv("TASTEGRAPH_WRK_PLAN"))

-- The main Lua state: hand each thread its place in the plan and one common start.

local threads = {}
local common_start_us = nil

function setup(thread)
  common_start_us = common_start_us or now_us() + plan.lead_ms * 1000
  threads[#threads + 1] = thread
  thread:set("thread_index", #threads) -- globals of the thread's Lua state
  thread:set("start_us", common_start_us)
end

function done(summary, latency, requests)
  for i, thread in ipairs(threads) do
    local stream = plan.threads[i]
    local answered = thread:get("answered_us")
    local line = { "tastegraph-latency-us", tostring(i) }
    for _, us in ipairs(answered) do
      line[#line + 1] = string.format("%d", us)
    end
    io.write(string.format(
      "tastegraph-thread %d %s planned=%d ok=%d non2xx=%d lost=%d\n",
      i, stream.kind, stream.planned, #answered, thread:get("non_2xx"), thread:get("lost")
    ))
    io.write(table.concat(line, " "), "\n")
  end
end

-- A thread's Lua state: its one connection's schedule, requests and answers.

local stream = nil
local next_slot = 0
local started = false -- false while wrk checks the script by calling request() once
local outstanding = false -- a request written and not answered yet
local spare = false -- the outstanding request is a filler sent after the last slot
local origin = 0 -- what its latency counts from
local finished = false

answered_us = {}
non_2xx = 0
lost = 0

local json_headers = { ["Content-Type"] = "application/json" }
local plain_headers = {}

local function cycled(list, slot)
  return list[(slot % #list) + 1]
end

local function build(slot)
  local kind = stream.kind
  if kind == "feed" then
    local path = "/v1/users/" .. cycled(plan.users, slot) .. "/feed?n=" .. plan.n
    return wrk.format("GET", path, plain_headers)
  elseif kind == "related" then
    local path = "/v1/items/" .. cycled(plan.items, slot) .. "/related?n=" .. plan.n
    return wrk.format("GET", path, plain_headers)
  elseif kind == "events" then
    json_headers["Authorization"] = "Bearer " .. plan.token
    local body = string.format(
      '{"event_id":"bench-%s-%d","user_id":"%s","item_id":"%s","action":"save"}',
      plan.run, slot, cycled(plan.users, slot), cycled(plan.items, slot)
    )
    return wrk.format("POST", "/v1/events", json_headers, body)
  elseif kind == "health" then
    return wrk.format("GET", "/healthz", plain_headers)
  end
  error("unknown stream kind " .. tostring(kind))
end

local function due_us(slot)
  return start_us + slot * 1e6 / stream.rate
end

function init(args)
  stream = plan.threads[thread_index]
  next_slot = stream.first
end

function delay()
  started = true
  if next_slot >= stream.slots then
    if not finished then
      finished = true
      io.write(string.format("tastegraph-finished %d\n", thread_index))
      io.stdout:flush()
    end
    return 3600 * 1000 -- nothing left to send: idle until wrk stops
  end
  local wait_us = due_us(next_slot) - now_us()
  if wait_us <= 0 then
    return 0
  end
  return math.floor(wait_us / 1000)
end

function request()
  if not started then
    return build(stream.first)
  end
  if outstanding and not spare then
    lost = lost + 1 -- written, then the connection broke: wrk sends again on a new one
  end
  outstanding = true
  if next_slot >= stream.slots then
    spare = true
    return wrk.format("GET", "/healthz", plain_headers)
  end
  spare = false
  local slot = next_slot
  next_slot = next_slot + stream.stride
  origin = math.min(due_us(slot), now_us())
  return build(slot)
end

function response(status, headers, body)
  local now = now_us()
  if not outstanding then
    return
  end
  outstanding = false
  if spare then
    return
  end
  local ok = status >= 200 and status < 300
  if ok and stream.kind == "events" then
    ok = string.find(body, '"stored"%s*:%s*1[,}%s]') ~= nil
  end
  if ok then
    answered_us[#answered_us + 1] = now - origin
  else
    non_2xx = non_2xx + 1
  end
end
