-- Counts answers by status across wrk's threads and prints one JSON line.
-- With WRK_KEYS (comma-separated secrets), thread i sends key i: run with as many
-- threads as connections for one key per connection.
local threads = {}
local keys = {}
for k in string.gmatch(os.getenv("WRK_KEYS") or "", "[^,]+") do
  table.insert(keys, k)
end

function setup(thread)
  table.insert(threads, thread)
  if #keys > 0 then
    thread:set("key", keys[(#threads - 1) % #keys + 1])
  end
end

function init(args)
  statuses = {}
  if key then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      agg[status] = (agg[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(agg) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
