-- wrk script for `kilowatch bench` (kilowatch/bench/wrk.py runs it). Arguments after `--`:
--   ingest TAG DEVICES   POST /v1/ingest, one new event per request
--   get FILE             GET the paths listed in FILE (one a line), in a random order
-- ingest: device ids are <TAG>t<thread>d<k> with k = counter % DEVICES (odd k: a meter, even:
-- a vehicle), per wrk thread. A device's j-th event is stamped with the current UTC second plus
-- j microseconds: never older than the second it is sent in, and unique per device unless one
-- device got a million events within one second.
-- done() prints one line, "KWBENCH {json}", with responses by status, socket errors and latency
-- percentiles (microseconds).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

statuses = {} -- a global: done() reads it from every thread with thread:get()

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local mode, prefix, devices, paths
local counter = 0
local second, stamp = -1, ""
local json = { ["Content-Type"] = "application/json" }
local meter = '{"meterId":"%s%d","kwhConsumedAc":%.2f,"voltage":%.1f,"timestamp":"%s.%06dZ"}'
local vehicle = '{"vehicleId":"%s%d","soc":%.1f,"kwhDeliveredDc":%.2f,"batteryTemp":31.5,'
  .. '"timestamp":"%s.%06dZ"}'

function init(args)
  mode = args[1]
  if mode == "ingest" then
    prefix = args[2] .. "t" .. id .. "d"
    devices = tonumber(args[3])
  elseif mode == "get" then
    paths = {}
    for line in io.lines(args[2]) do
      if line ~= "" then
        table.insert(paths, line)
      end
    end
    math.randomseed(id + 1)
  else
    error("first argument: ingest or get, not " .. tostring(mode))
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", paths[math.random(#paths)])
  end
  local now = os.time()
  if now ~= second then
    second, stamp = now, os.date("!%Y-%m-%dT%H:%M:%S", now)
  end
  local k = counter % devices
  local us = math.floor(counter / devices) % 1000000
  counter = counter + 1
  local body
  if k % 2 == 1 then
    body = string.format(meter, prefix, k, 0.75 + (k % 7) / 100, 229 + k % 5, stamp, us)
  else
    body = string.format(vehicle, prefix, k, 40 + k % 50, 0.62 + (k % 7) / 100, stamp, us)
  end
  return wrk.format("POST", "/v1/ingest", json, body)
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'KWBENCH {"duration_us":%d,"requests":%d,"statuses":{%s},"connect":%d,"read":%d,'
      .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, table.concat(parts, ","), e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
