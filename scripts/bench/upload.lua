-- wrk: POST a 4 KiB body under a new name each time. Args: TOKEN.
local counter = 0
function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000000)))
end
function init(args)
  token = args[1]
  body = string.rep("x", 4096)
end
function request()
  counter = counter + 1
  local path = "/v1/files?category=exports&filename=f-" .. id .. "-" .. counter .. ".txt"
  return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "text/plain" }, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %.2f %.2f %.2f %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
